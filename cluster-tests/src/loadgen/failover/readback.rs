//! The read-back of a failover run: every acknowledged key is read from the survivors with
//! a linearizable read by `readers` concurrent tasks; a read that fails is retried on the
//! next survivor for [`READ_RETRY_FOR`], after which the run fails (a harness or cluster
//! problem, not a lost write).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{value_of, FailoverSpec, Found, KvStore};

/// Result of reading back every acknowledged key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadBack {
    pub checked: u64,
    pub lost: u64,
    pub wrong: u64,
    /// A few keys that were lost or wrong.
    pub examples: Vec<String>,
}

/// How long the read-back keeps retrying one key on the survivors.
const READ_RETRY_FOR: Duration = Duration::from_secs(30);

/// Reads `key` from the survivors, retrying on errors for [`READ_RETRY_FOR`].
async fn check_key<S: KvStore>(
    store: &S,
    reader: usize,
    i: usize,
    key: &str,
    value: &str,
    survivors: &[usize],
    pause: Duration,
) -> Result<Found> {
    let deadline = Instant::now() + READ_RETRY_FOR;
    let mut attempt = 0;
    loop {
        let node = survivors[(i + attempt) % survivors.len()];
        match store.check(node, reader, key, value).await {
            Ok(found) => return Ok(found),
            Err(e) if Instant::now() >= deadline => {
                bail!("reading back key {key}: {e} (node {node}, after {READ_RETRY_FOR:?})")
            }
            Err(_) => tokio::time::sleep(pause).await,
        }
        attempt += 1;
    }
}

/// Reads back `keys` with `spec.readers` concurrent readers spread over `survivors`.
pub(super) async fn read_back<S: KvStore>(
    store: Arc<S>,
    keys: Vec<String>,
    survivors: &[usize],
    filler: &Arc<str>,
    spec: &FailoverSpec,
) -> Result<ReadBack> {
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..spec.readers.max(1))
        .map(|reader| {
            let (store, keys, next) = (store.clone(), keys.clone(), next.clone());
            let (survivors, filler, spec) = (survivors.to_vec(), filler.clone(), spec.clone());
            tokio::spawn(async move {
                let mut rb = ReadBack::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(key) = keys.get(i) else {
                        return Ok::<_, anyhow::Error>(rb);
                    };
                    let value = value_of(key, &filler, spec.value_size);
                    let found =
                        check_key(&*store, reader, i, key, &value, &survivors, spec.pause).await?;
                    rb.record(key, found);
                }
            })
        })
        .collect();
    let mut total = ReadBack::default();
    for t in tasks {
        total.merge(t.await.context("reader task panicked")??);
    }
    Ok(total)
}

impl ReadBack {
    const EXAMPLES: usize = 5;

    fn record(&mut self, key: &str, found: Found) {
        self.checked += 1;
        let bad = match found {
            Found::Same => return,
            Found::Missing => &mut self.lost,
            Found::Different => &mut self.wrong,
        };
        *bad += 1;
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push(format!("{key} ({found:?})"));
        }
    }

    fn merge(&mut self, other: ReadBack) {
        self.checked += other.checked;
        self.lost += other.lost;
        self.wrong += other.wrong;
        let room = Self::EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }
}
