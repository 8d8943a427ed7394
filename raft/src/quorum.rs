//! Whether this node can take part in commits right now, for `/health` and `/ready`.
//!
//! Knowing a leader is not enough: a leader whose followers are gone (or whose
//! membership names a voter that never answers) still calls itself leader, and a
//! follower cut off from its leader still names it until an election. A node is in
//! touch when, within the leader lease, a leader heard from a quorum or a follower
//! heard from its leader. The leader learns it by confirming its leadership with a
//! quorum (a heartbeat round) every few heartbeats, off the write path; openraft's
//! own `millis_since_quorum_ack` is only refreshed when other metrics change.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;

use crate::types::Raft;
use crate::watchdog::Contact;

/// Proof of contact: `quorum` on a leader, `leader` on a follower or learner.
#[derive(Debug, Default)]
pub struct Touch {
    pub quorum: Contact,
    pub leader: Contact,
}

impl Touch {
    /// How long this node has been without proof that it can commit; `None` when it
    /// cannot be in touch at all (a candidate, a node shutting down).
    pub fn silence(&self, state: ServerState) -> Option<Duration> {
        match state {
            ServerState::Leader => Some(self.quorum.silence()),
            ServerState::Follower | ServerState::Learner => Some(self.leader.silence()),
            ServerState::Candidate | ServerState::Shutdown => None,
        }
    }
}

/// On the leader, confirms leadership with a quorum every `every` (each round waits at
/// most `lease`) and records each success in `touch.quorum`, until raft shuts down.
pub async fn probe(raft: Raft, touch: Arc<Touch>, every: Duration, lease: Duration) {
    let mut metrics = raft.metrics();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_leader = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                // A new leader probes at once: nothing touched it as a leader before.
                if was_leader || metrics.borrow().state != ServerState::Leader {
                    continue;
                }
            }
        }
        was_leader = metrics.borrow().state == ServerState::Leader;
        if !was_leader {
            continue;
        }
        let round = tokio::time::timeout(lease, raft.ensure_linearizable()).await;
        if let Ok(Ok(_)) = round {
            touch.quorum.touch();
        }
    }
}
