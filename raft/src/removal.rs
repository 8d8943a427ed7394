//! A member that was removed from its cluster stands down.
//!
//! A removed node often never sees the configuration that leaves it out (the leader
//! stops replicating to it), so on its own it would campaign for ever, its term rising,
//! and disrupt the cluster if the same process were added back. It learns it was
//! removed from the leader, which tells it right after the change
//! (`/raft/removed`), or, if it missed that, from any member whose *applied*
//! configuration leaves it out: such a member answers its vote, append or forwarded
//! request with [`GONE`] and that configuration's log index. A configuration applied
//! later in the log than the last one this node applied with itself in it can only be
//! its removal; a member that lags behind the node's own configuration is ignored.
//! (The node's own applied configurations are not evidence: a wiped node added again
//! replays the log, old removal included.)
//!
//! Then it stops campaigning, answers clients 503, refuses raft traffic (so adding the
//! same process back cannot bump anyone's term), and leaves a marker in its data
//! directory: restarted on that directory it refuses to start. The way back is a wiped
//! data directory and `--join`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::types::{NodeId, Raft, RaftMetrics};

/// The peer status of a refusal for membership: with a log index, "you are not in my
/// applied configuration at that index"; with [`STOOD_DOWN`], "I was removed".
pub const GONE: axum::http::StatusCode = axum::http::StatusCode::GONE;

/// The body of a removed node's refusals.
pub const STOOD_DOWN: &str = "this node was removed from the cluster";

/// The marker file a removed node leaves in its data directory.
pub const MARKER: &str = "removed";

/// Whether this node was removed, shared by the node, its peer client and its peer
/// listener.
#[derive(Debug)]
pub struct Removal {
    id: NodeId,
    dir: PathBuf,
    /// Log index of the configuration this node last applied (0: none yet).
    own_config: AtomicU64,
    reason: Mutex<Option<String>>,
    /// Set with `reason`: the check on every client request.
    removed: AtomicBool,
    marked: Notify,
}

impl Removal {
    /// Fails when `dir` holds the marker of an earlier removal.
    pub fn open(id: NodeId, dir: &Path) -> Result<Arc<Removal>> {
        if let Ok(why) = std::fs::read_to_string(dir.join(MARKER)) {
            return Err(Error::Invalid(format!(
                "node {id} was removed from its cluster ({}); its data dir {} cannot \
                 rejoin: move it away (or wipe it) and start the node with --join to add \
                 the machine again",
                why.trim(),
                dir.display()
            )));
        }
        Ok(Arc::new(Removal {
            id,
            dir: dir.to_path_buf(),
            own_config: AtomicU64::new(0),
            reason: Mutex::new(None),
            removed: AtomicBool::new(false),
            marked: Notify::new(),
        }))
    }

    /// Why this node was removed, once it knows it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().expect("removal lock").clone()
    }

    /// Whether this node knows it was removed.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// A peer's applied configuration at `index` leaves this node out.
    pub fn left_out_by(&self, peer: NodeId, index: u64) {
        let own = self.own_config.load(Ordering::Acquire);
        if own > 0 && index > own {
            self.mark(format!(
                "node {peer} applied a configuration without it at index {index}"
            ));
        }
    }

    fn mark(&self, why: String) {
        {
            let mut reason = self.reason.lock().expect("removal lock");
            if reason.is_some() {
                return;
            }
            tracing::error!(id = self.id, reason = %why,
                "this node was removed from the cluster: it stops serving; wipe its data dir and --join to add it again");
            if let Err(e) = std::fs::write(self.dir.join(MARKER), format!("{why}\n")) {
                tracing::warn!(error = %e, "cannot write the removal marker");
            }
            *reason = Some(why);
            self.removed.store(true, Ordering::Release);
        }
        self.marked.notify_one();
    }

    /// Follows this node's applied configuration until raft stops, and stops
    /// elections once the node knows it was removed.
    pub(crate) async fn follow(self: Arc<Self>, raft: Raft) {
        let mut metrics = raft.metrics();
        loop {
            self.observe(&metrics.borrow_and_update());
            if self.reason().is_some() {
                break;
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                () = self.marked.notified() => {}
            }
        }
        raft.runtime_config().elect(false);
        raft.runtime_config().heartbeat(false);
    }

    /// Records the configurations this node applies with itself in them.
    fn observe(&self, m: &RaftMetrics) {
        let stored = &m.membership_config;
        let Some(at) = stored.log_id().map(|l| l.index) else {
            return;
        };
        let applied = m.last_applied.map_or(0, |l| l.index);
        if at <= applied && stored.membership().get_node(&self.id).is_some() {
            self.own_config.fetch_max(at, Ordering::AcqRel);
        }
    }
}

/// The log index of `m`'s configuration when it is applied and leaves `node` out: the
/// answer to a vote or append from `node` is then [`GONE`].
pub fn leaves_out(m: &RaftMetrics, node: NodeId) -> Option<u64> {
    let stored = &m.membership_config;
    let at = stored.log_id().map(|l| l.index)?;
    let applied = m.last_applied.map_or(0, |l| l.index);
    let known = stored.membership().nodes().next().is_some();
    (known && at <= applied && stored.membership().get_node(&node).is_none()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_directory_refuses_to_start_and_says_how_to_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let r = Removal::open(3, dir.path()).unwrap();
        r.own_config.store(10, Ordering::Release);
        r.left_out_by(1, 9);
        assert_eq!(r.reason(), None, "an older configuration is a lagging peer");
        r.left_out_by(1, 12);
        assert!(r.reason().unwrap().contains("index 12"));
        let err = Removal::open(3, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("removed from its cluster") && err.contains("--join"),
            "{err}"
        );
    }

    #[test]
    fn a_node_that_never_was_a_member_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let r = Removal::open(4, dir.path()).unwrap();
        r.left_out_by(1, 50);
        assert_eq!(r.reason(), None);
    }
}
