//! Whether each peer answers, logged on changes only. openraft logs every failed
//! replication attempt (an ERROR and WARNs every few hundred milliseconds while a member
//! is down), so its replication targets are silenced in the log filter and this module
//! says instead, per peer: one WARN when it stops answering, at most one line a minute
//! while it stays so, one INFO when it is back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::types::NodeId;

/// How often a peer that stays unreachable is mentioned again.
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Down {
    since: Instant,
    reminded: Instant,
    failures: u64,
}

/// Reachability of the peers of one node.
#[derive(Debug, Default)]
pub struct Reach {
    down: Mutex<HashMap<NodeId, Down>>,
}

impl Reach {
    /// A request to `peer` got an answer.
    pub fn answered(&self, peer: NodeId) {
        let was = self.lock().remove(&peer);
        if let Some(d) = was {
            tracing::info!(
                peer,
                down_for = ?d.since.elapsed(),
                failures = d.failures,
                "peer reachable again"
            );
        }
    }

    /// A request to `peer` failed with `error`.
    pub fn failed(&self, peer: NodeId, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut down = self.lock();
        match down.get_mut(&peer) {
            None => {
                tracing::warn!(peer, %error, "peer unreachable");
                let d = Down {
                    since: now,
                    reminded: now,
                    failures: 1,
                };
                down.insert(peer, d);
            }
            Some(d) => {
                d.failures += 1;
                if now.duration_since(d.reminded) >= REMIND_EVERY {
                    d.reminded = now;
                    tracing::warn!(peer, %error, down_for = ?d.since.elapsed(),
                        failures = d.failures, "peer still unreachable");
                }
            }
        }
    }

    /// Whether `peer` is currently counted unreachable.
    #[cfg(test)]
    pub fn is_down(&self, peer: NodeId) -> bool {
        self.lock().contains_key(&peer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Down>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_once_then_back() {
        let r = Reach::default();
        r.failed(2, &"refused");
        r.failed(2, &"refused");
        assert!(r.is_down(2));
        assert_eq!(r.lock()[&2].failures, 2);
        r.answered(2);
        assert!(!r.is_down(2));
        r.answered(3);
        assert!(!r.is_down(3));
    }
}
