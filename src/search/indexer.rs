//! Keeps the search index in step with the catalog: at start-up it rebuilds the index
//! when it is missing or behind the store; then it follows the applied-event bus,
//! collects the documents the applied commands touched, and refreshes them in
//! batches (a tantivy commit fsyncs: at most one per [`FLUSH_AFTER`], or sooner when
//! [`FLUSH_DOCS`] documents are pending). A snapshot install or a lagging subscription
//! triggers a full rebuild. [`Indexed`] tells readers which raft index the searchable
//! index reflects.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use metacenter_raft::{Applied, RaftNode};
use metacenter_storage::{Command, Store};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::index::SearchIndex;

/// Longest a catalog change waits before it is searchable.
const FLUSH_AFTER: Duration = Duration::from_millis(100);
/// Pending documents that force a flush.
const FLUSH_DOCS: usize = 20_000;

/// The raft index the searchable index reflects.
#[derive(Clone)]
pub struct Indexed(watch::Receiver<u64>);

impl Indexed {
    /// Waits (up to `timeout`) until the index reflects raft index `at`; false on timeout.
    pub async fn wait_for(&self, at: u64, timeout: Duration) -> bool {
        let mut rx = self.0.clone();
        tokio::time::timeout(timeout, rx.wait_for(|i| *i >= at))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The raft index the index reflects now.
    pub fn current(&self) -> u64 {
        *self.0.borrow()
    }
}

#[derive(Default)]
struct Pending {
    docs: HashSet<(String, String)>,
    tenants: HashSet<String>,
    rebuild: bool,
    at: u64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.docs.is_empty() && self.tenants.is_empty() && !self.rebuild
    }

    fn note(&mut self, index: &SearchIndex, ev: &Applied) {
        self.at = self.at.max(ev.index);
        self.rebuild |= ev.snapshot_installed;
        for cmd in ev.commands.iter().flat_map(|c| c.iter()) {
            match cmd {
                Command::CatalogUpsert { tenant, docs, .. } => self
                    .docs
                    .extend(docs.iter().map(|d| (tenant.clone(), d.name.clone()))),
                Command::CatalogSyncFinish { tenant, full, .. } if *full => {
                    self.tenants.insert(tenant.clone());
                }
                Command::PointsWrite { tenant, points } => {
                    for p in points {
                        if !index.knows(tenant, &p.metric) {
                            self.docs.insert((tenant.clone(), p.metric.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Starts the indexer; returns the handle readers wait on.
pub fn start(
    index: Arc<SearchIndex>,
    node: Arc<RaftNode>,
    stop: CancellationToken,
) -> (Indexed, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(0);
    let task = tokio::spawn(run(index, node, tx, stop));
    (Indexed(rx), task)
}

async fn run(
    index: Arc<SearchIndex>,
    node: Arc<RaftNode>,
    tx: watch::Sender<u64>,
    stop: CancellationToken,
) {
    // Subscribe before reading the store, so no change falls between the two.
    let mut events = node.subscribe();
    let store = node.store().clone();
    let mut pending = Pending {
        rebuild: needs_rebuild(&index, &store),
        at: store.applied_index(),
        ..Pending::default()
    };
    loop {
        if !pending.is_empty() {
            let (cut, at) = (pending.rebuild, pending.at);
            if !flush(&index, &store, std::mem::take(&mut pending)).await {
                tracing::warn!("search index update failed; rebuilding it");
                pending.rebuild = true;
                pending.at = at;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            if cut {
                tracing::info!(at, "search index rebuilt from the catalog");
            }
            tx.send_replace(at);
        }
        let deadline = tokio::time::Instant::now() + FLUSH_AFTER;
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(deadline), if !pending.is_empty() => break,
                ev = events.recv() => ev,
            };
            match ev {
                Ok(ev) => pending.note(&index, &ev),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    pending.rebuild = true;
                    pending.at = store.applied_index();
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
            if pending.is_empty() {
                // Nothing for the index in what was applied: it is current.
                tx.send_if_modified(|cur| {
                    let grew = pending.at > *cur;
                    *cur = (*cur).max(pending.at);
                    grew
                });
            } else if pending.rebuild || pending.docs.len() >= FLUSH_DOCS {
                break;
            }
        }
    }
}

/// Whether the index on disk misses catalog changes the store has (or is ahead of
/// the store, as after the data directory was replaced).
fn needs_rebuild(index: &SearchIndex, store: &Store) -> bool {
    let changed = store.catalog_changed_at().unwrap_or(u64::MAX);
    match index.committed_at() {
        Some(at) => at < changed || at > store.applied_index(),
        None => true,
    }
}

async fn flush(index: &Arc<SearchIndex>, store: &Store, p: Pending) -> bool {
    let (index, store) = (index.clone(), store.clone());
    let r = tokio::task::spawn_blocking(move || {
        if p.rebuild {
            let at = store.applied_index();
            index.rebuild(&store, at).map(|_| ())
        } else {
            index.refresh(&store, &p.docs, &p.tenants, p.at)
        }
    })
    .await;
    match r {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "search index update failed");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "search index task failed");
            false
        }
    }
}
