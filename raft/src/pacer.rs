//! When to build a snapshot: once the log written since the last one is large next to
//! the state (more than `log_ratio` times the last snapshot's size, and at least
//! `min_log_bytes`), or holds `max_entries` entries, whichever comes first.
//!
//! A snapshot rewrites the whole state. Paced by entry count alone, a node under steady
//! point ingest rewrote all of it every minute or so however large it was; paced by log
//! bytes against state bytes, the bytes written to snapshots stay about `1 / log_ratio`
//! times the bytes written to the log, whatever the size of the state. The entry bound
//! keeps the log a restart replays short when entries are small.
//!
//! After a snapshot, openraft keeps `raft.keep_logs` entries behind it for followers that
//! lag; with point batches of tens of kilobytes each that is far more bytes than the
//! state itself. The pacer also purges what lies behind the snapshot beyond
//! `keep_bytes` of entries, so the log kept for laggards is bounded by bytes too (a
//! follower further behind gets the snapshot).

use std::time::Duration;

use crate::log_store::LogStore;
use crate::state_machine::StateMachine;
use crate::types::Raft;

/// How snapshots are paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub log_ratio: f64,
    pub min_log_bytes: u64,
    pub max_entries: u64,
    /// Most bytes of entries kept behind the last snapshot (0: no bound by bytes).
    pub keep_bytes: u64,
}

/// How often the pacer looks.
const EVERY: Duration = Duration::from_millis(500);

/// Whether a snapshot is due, given the log bytes and entries since the last one and
/// the last one's size (`None` before the first).
pub fn due(p: &Pace, log_bytes: u64, entries: u64, last_snapshot: Option<u64>) -> bool {
    let by_bytes = (p.log_ratio * last_snapshot.unwrap_or(0) as f64) as u64;
    entries >= p.max_entries || (entries > 0 && log_bytes >= by_bytes.max(p.min_log_bytes))
}

/// Triggers snapshots as [`due`] says until raft stops.
pub async fn run(raft: Raft, log: LogStore, sm: StateMachine, pace: Pace) {
    let mut metrics = raft.metrics();
    let mut bytes_at_last = log.appended_bytes();
    let mut built = sm.snapshot_stats().count;
    let mut ticker = tokio::time::interval(EVERY);
    let mut requested = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        let stats = sm.snapshot_stats();
        if stats.count != built {
            // A snapshot was built (by us or an install): count from there.
            (built, bytes_at_last) = (stats.count, log.appended_bytes());
        }
        let m = metrics.borrow().clone();
        let since = m.snapshot.map_or(0, |s| s.index);
        let entries = m.last_applied.map_or(0, |a| a.index).saturating_sub(since);
        let log_bytes = log.appended_bytes().saturating_sub(bytes_at_last);
        let last = (stats.count > 0).then_some(stats.last_bytes);
        if due(&pace, log_bytes, entries, last) {
            let _ = raft.trigger().snapshot().await;
            bytes_at_last = log.appended_bytes();
        }
        requested = purge_by_bytes(&raft, &log, &m, pace.keep_bytes, requested).await;
    }
}

/// Asks raft to purge the entries behind the snapshot beyond `keep_bytes` of them,
/// unless it was asked for as much already (`requested`); returns what was asked for.
async fn purge_by_bytes(
    raft: &Raft,
    log: &LogStore,
    m: &crate::types::RaftMetrics,
    keep_bytes: u64,
    requested: u64,
) -> u64 {
    let (Some(snapshot), true) = (m.snapshot.map(|s| s.index), keep_bytes > 0) else {
        return requested;
    };
    let purged = m.purged.map_or(0, |p| p.index);
    match log.purge_point(snapshot, keep_bytes) {
        Some(upto) if upto > purged.max(requested) => {
            let _ = raft.trigger().purge_log(upto).await;
            upto
        }
        _ => requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_follow_log_bytes_against_state_bytes() {
        let p = Pace {
            log_ratio: 0.5,
            min_log_bytes: 100,
            max_entries: 1000,
            keep_bytes: 0,
        };
        assert!(!due(&p, 99, 10, None), "under the floor");
        assert!(due(&p, 100, 10, None), "the floor, before any snapshot");
        assert!(!due(&p, 400, 10, Some(1000)), "less than half the state");
        assert!(due(&p, 500, 10, Some(1000)), "half the state");
        assert!(due(&p, 0, 1000, Some(1 << 40)), "the entry bound");
        assert!(!due(&p, 1 << 30, 0, None), "nothing new");
    }
}
