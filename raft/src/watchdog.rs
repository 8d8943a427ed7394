//! Fast failover when the leader's process is gone.
//!
//! openraft 0.9 lets a follower campaign only after the leader's lease (the maximum
//! election timeout) *plus* a randomized election timeout have passed without word
//! from the leader, and voters refuse votes while the lease holds. When the leader's
//! process died (kill -9, crash) but its host is up, its peer port refuses
//! connections: that is proof the leader cannot be heartbeating. A follower that has
//! heard nothing for a few heartbeats probes the port; on a refusal it waits until the
//! lease has run out on every voter and campaigns at once, skipping the randomized
//! timeout. Followers rank themselves by id (60 ms apart) so they do not split the
//! vote. A leader that is merely slow, paused or partitioned still accepts (or times
//! out) connections, so nothing changes for it: the ordinary timers apply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;

use crate::types::{NodeId, Raft};

/// When this node last heard from a leader (an append request, heartbeats included).
#[derive(Debug)]
pub struct Contact {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Default for Contact {
    fn default() -> Self {
        Contact {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Contact {
    /// Records word from the leader now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since the leader was last heard from.
    pub fn silence(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The watchdog's timing: the raft heartbeat interval and the leader lease.
pub struct Timing {
    pub heartbeat: Duration,
    pub lease: Duration,
}

/// Watches for a dead leader until raft shuts down.
pub async fn run(raft: Raft, me: NodeId, touch: Arc<crate::quorum::Touch>, t: Timing) {
    let contact = &touch.leader;
    let mut metrics = raft.metrics();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(t.heartbeat) => {}
            changed = metrics.changed() => if changed.is_err() { return },
        }
        let m = metrics.borrow().clone();
        let Some(leader) = m.current_leader.filter(|l| *l != me) else {
            continue;
        };
        if m.state != ServerState::Follower || contact.silence() < t.heartbeat * 3 {
            continue;
        }
        let membership = m.membership_config.membership();
        let Some(addr) = membership.get_node(&leader).map(|n| n.peer.clone()) else {
            continue;
        };
        if !refused(&addr).await {
            continue;
        }
        let mut others: Vec<NodeId> = membership.voter_ids().filter(|v| *v != leader).collect();
        others.sort_unstable();
        let Some(rank) = others.iter().position(|v| *v == me) else {
            continue;
        };
        let wait = t.lease.saturating_sub(contact.silence())
            + Duration::from_millis(50 + 60 * rank as u64);
        tokio::time::sleep(wait).await;
        let now = metrics.borrow().clone();
        let same = now.current_leader == Some(leader) && now.current_term == m.current_term;
        if same && now.state == ServerState::Follower && contact.silence() >= t.lease {
            tracing::info!(
                leader,
                "leader's peer port refuses connections: campaigning"
            );
            let _ = raft.trigger().elect().await;
            tokio::time::sleep(t.lease).await;
        }
    }
}

/// Whether a TCP connection to `addr` is actively refused (nothing listens there).
async fn refused(addr: &str) -> bool {
    let connect = tokio::net::TcpStream::connect(addr);
    match tokio::time::timeout(Duration::from_millis(200), connect).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}
