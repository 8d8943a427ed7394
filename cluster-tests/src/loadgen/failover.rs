//! Leader failover under write load (`loadgen failover`).
//!
//! `writers` tasks each put unique keys ([`key_of`]: `f`, two hex digits of the writer, its
//! sequence number in hex: 8 bytes) with a value derived from the key ([`value_of`],
//! `value_size` bytes), spread over the nodes (writer `i` starts on node `i % n`). A put
//! that fails is retried with the same key and value on the next node after a short
//! pause, so a retry of a write that did commit is harmless. Every acknowledgement is
//! recorded with the times its attempt was sent and answered.
//!
//! After the warm-up the driver asks its [`Faults`] for the leader and kills it (`loadgen`
//! sends SIGKILL to the leader's process, see [`stores::PidFaults`]), waits for the first
//! acknowledgement of a write sent after the kill, lets the writers go on for `after`, and
//! stops them. What it measures ([`Outage`], [`ReadBack`]):
//!
//! - `unavailable`: from the kill to the first acknowledgement of a write sent after it;
//! - `max_gap`: the longest time without any acknowledgement over the whole run (this
//!   one also counts writes that were in flight at the kill);
//! - read-back: every acknowledged key is read from the survivors with linearizable reads;
//!   `lost` keys are missing, `wrong` ones hold another value. Both must be 0.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{random_value, OpError, RunStats};

mod readback;
pub mod stores;
mod table;

pub use readback::ReadBack;
pub use table::render_failover_table;

/// Parameters of a failover run.
#[derive(Clone, Debug)]
pub struct FailoverSpec {
    /// Nodes of the cluster (indexes `0..nodes` for [`KvStore`] and [`Faults`]).
    pub nodes: usize,
    pub writers: usize,
    /// Concurrent readers of the read-back.
    pub readers: usize,
    pub value_size: usize,
    /// Writing before the kill.
    pub warmup: Duration,
    /// Writing after the first acknowledgement that follows the kill.
    pub after: Duration,
    /// The run fails when no write is acknowledged this long after the kill.
    pub max_outage: Duration,
    /// A writer waits this long after a failed put before retrying on the next node.
    pub pause: Duration,
}

/// How a key was found by the read-back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Same,
    Missing,
    Different,
}

/// A replicated key-value store with numbered nodes.
pub trait KvStore: Send + Sync + 'static {
    /// Puts `key` = `value` through `node` for `writer`; `Ok` only when acknowledged.
    fn put(
        &self,
        node: usize,
        writer: usize,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Reads `key` through `node` with a linearizable read and compares it with `value`.
    fn check(
        &self,
        node: usize,
        reader: usize,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<Found, OpError>> + Send;
}

/// Finds and kills the leader.
pub trait Faults: Send + Sync {
    /// The index of the current leader.
    fn leader(&self) -> impl Future<Output = Result<usize>> + Send;
    /// Kills node `node` at once (kill -9).
    fn kill(&self, node: usize) -> Result<()>;
}

/// The key of write `seq` of `writer`: `f` + 2 + 5 hex digits (longer past 2^20 writes).
pub fn key_of(writer: usize, seq: u64) -> String {
    format!("f{:02x}{seq:05x}", writer % 256)
}

/// The value of `key`: the key, then `filler`, `size` bytes in all (at least the key).
pub fn value_of(key: &str, filler: &str, size: usize) -> String {
    let pad = size.saturating_sub(key.len()).min(filler.len());
    format!("{key}{}", &filler[..pad])
}

/// Availability around the kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// Kill → first acknowledgement of a write sent after the kill.
    pub unavailable: Duration,
    /// Longest interval between consecutive acknowledgements (any writer).
    pub max_gap: Duration,
}

/// One acknowledged put: its sequence number and when the attempt was sent and answered.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    pub seq: u64,
    pub sent: Instant,
    pub acked: Instant,
}

/// The outage seen in `acks` around `kill`; `None` when no write sent after it was acked.
pub fn outage(acks: &[Ack], kill: Instant) -> Option<Outage> {
    let first = acks
        .iter()
        .filter(|a| a.sent >= kill)
        .map(|a| a.acked)
        .min()?;
    let mut times: Vec<Instant> = acks.iter().map(|a| a.acked).collect();
    times.sort_unstable();
    let max_gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    Some(Outage {
        unavailable: first - kill,
        max_gap,
    })
}

/// Everything a failover run measured.
#[derive(Debug)]
pub struct FailoverRun {
    /// Latency and errors of every put attempt over the whole run.
    pub stats: RunStats,
    pub killed: usize,
    pub outage: Outage,
    pub read_back: ReadBack,
}

/// State the driver shares with the writers.
struct Shared {
    stop: AtomicBool,
    kill_at: OnceLock<Instant>,
    recovered: AtomicBool,
    acked: AtomicU64,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn on_ack(&self, sent: Instant) {
        self.acked.fetch_add(1, Ordering::Relaxed);
        if self.kill_at.get().is_some_and(|&k| sent >= k) {
            self.recovered.store(true, Ordering::Relaxed);
        }
    }
}

/// What one writer did.
struct WriterLog {
    acks: Vec<Ack>,
    stats: RunStats,
}

async fn write_loop<S: KvStore>(
    store: Arc<S>,
    id: usize,
    spec: FailoverSpec,
    shared: Arc<Shared>,
    filler: Arc<str>,
) -> WriterLog {
    let mut log = WriterLog {
        acks: Vec::new(),
        stats: RunStats::new(),
    };
    let mut node = id % spec.nodes;
    let mut seq = 0u64;
    'keys: while !shared.stopped() {
        let key = key_of(id, seq);
        let value = value_of(&key, &filler, spec.value_size);
        loop {
            let sent = Instant::now();
            match store.put(node, id, &key, &value).await {
                Ok(()) => {
                    let acked = Instant::now();
                    let us = (acked - sent).as_micros() as u64;
                    log.stats.hist.saturating_record(us);
                    log.acks.push(Ack { seq, sent, acked });
                    shared.on_ack(sent);
                    break;
                }
                Err(e) => {
                    *log.stats.errors.entry(e.to_string()).or_default() += 1;
                    node = (node + 1) % spec.nodes;
                    if shared.stopped() {
                        break 'keys;
                    }
                    tokio::time::sleep(spec.pause).await;
                }
            }
        }
        seq += 1;
    }
    log
}

/// Warm-up (extended until a first write is acknowledged), kill of the leader, wait for
/// recovery, writing after it; returns the victim.
async fn disrupt<F: Faults>(faults: &F, shared: &Shared, spec: &FailoverSpec) -> Result<usize> {
    tokio::time::sleep(spec.warmup).await;
    let first_ack_by = Instant::now() + spec.max_outage;
    while shared.acked.load(Ordering::Relaxed) == 0 {
        if Instant::now() > first_ack_by {
            bail!(
                "no write was acknowledged within {:?}",
                spec.warmup + spec.max_outage
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = faults.leader().await.context("finding the leader")?;
    faults.kill(leader)?;
    let kill_at = Instant::now();
    let _ = shared.kill_at.set(kill_at);
    while !shared.recovered.load(Ordering::Relaxed) {
        if kill_at.elapsed() > spec.max_outage {
            bail!(
                "no write was acknowledged within {:?} of killing node {leader}",
                spec.max_outage
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(spec.after).await;
    Ok(leader)
}

/// Runs the writers, kills the leader, measures the outage and reads every acknowledged
/// key back from the survivors.
pub async fn run_failover<S: KvStore, F: Faults>(
    store: Arc<S>,
    faults: &F,
    spec: &FailoverSpec,
) -> Result<FailoverRun> {
    if spec.nodes < 2 || spec.writers == 0 || spec.writers > 256 {
        bail!("failover needs at least 2 nodes and 1..=256 writers");
    }
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        kill_at: OnceLock::new(),
        recovered: AtomicBool::new(false),
        acked: AtomicU64::new(0),
    });
    let filler: Arc<str> = random_value(spec.value_size).into();
    let start = Instant::now();
    let tasks: Vec<_> = (0..spec.writers)
        .map(|id| {
            let (s, sh, f) = (store.clone(), shared.clone(), filler.clone());
            tokio::spawn(write_loop(s, id, spec.clone(), sh, f))
        })
        .collect();
    let disrupted = disrupt(faults, &shared, spec).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut stats = RunStats::new();
    let mut keys = Vec::new();
    let mut acks = Vec::new();
    for (id, t) in tasks.into_iter().enumerate() {
        let log = t.await.context("writer task panicked")?;
        stats.merge(log.stats);
        keys.extend(log.acks.iter().map(|a| key_of(id, a.seq)));
        acks.extend(log.acks);
    }
    stats.elapsed = start.elapsed();
    let killed = disrupted?;
    let kill_at = *shared.kill_at.get().context("the leader was not killed")?;
    let outage = outage(&acks, kill_at).context("no write sent after the kill was acked")?;
    let survivors: Vec<usize> = (0..spec.nodes).filter(|&n| n != killed).collect();
    let read_back = readback::read_back(store, keys, &survivors, &filler, spec).await?;
    Ok(FailoverRun {
        stats,
        killed,
        outage,
        read_back,
    })
}

/// The failover figures of a report (flattened into its JSON object).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FailoverFigures {
    /// The API address of the killed leader.
    pub killed: String,
    pub unavailable_ms: f64,
    pub max_gap_ms: f64,
    /// Acknowledged keys read back.
    pub checked: u64,
    pub lost: u64,
    pub wrong: u64,
}

impl FailoverFigures {
    pub fn new(run: &FailoverRun, killed: String) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        FailoverFigures {
            killed,
            unavailable_ms: ms(run.outage.unavailable),
            max_gap_ms: ms(run.outage.max_gap),
            checked: run.read_back.checked,
            lost: run.read_back.lost,
            wrong: run.read_back.wrong,
        }
    }
}

/// Acknowledged writes were lost or read back wrong: a correctness failure.
#[derive(Debug)]
pub struct DataLoss {
    pub system: String,
    pub read_back: ReadBack,
}

impl std::fmt::Display for DataLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rb = &self.read_back;
        write!(
            f,
            "{}: ACKNOWLEDGED WRITES LOST: {} of {} keys missing, {} with another value (e.g. {})",
            self.system,
            rb.lost,
            rb.checked,
            rb.wrong,
            rb.examples.join(", ")
        )
    }
}

impl std::error::Error for DataLoss {}

#[cfg(test)]
mod tests;
