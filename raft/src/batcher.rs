//! Group commit on the leader: concurrent submissions are packed into one log entry
//! (bounded by command count and approximate bytes, [`crate::coalesce`]), so many
//! small writes share one raft round and one fsync. Each submitter still gets its own
//! responses.

use std::sync::Arc;

use futures::FutureExt;
use metacenter_storage::{Command, Response};
use openraft::error::{ClientWriteError, RaftError};

pub use crate::coalesce::BatchLimits;
use crate::coalesce::{Coalescer, Work};
use crate::error::{Error, Result};
use crate::types::{NodeId, Raft, Request};

/// Handle to the group-commit task.
#[derive(Clone)]
pub struct Batcher(Coalescer);

impl Batcher {
    /// Spawns the group-commit task for `raft`.
    pub fn spawn(raft: Raft, limits: BatchLimits) -> Batcher {
        let work: Work = Arc::new(move |commands| commit(raft.clone(), commands).boxed());
        Batcher(Coalescer::spawn(limits, work))
    }

    /// Commits `commands` (as part of some entry) and returns their responses.
    pub async fn submit(&self, commands: Vec<Command>) -> Result<Vec<Response>> {
        self.0.submit(commands).await
    }
}

/// Commits one entry of `commands` and returns their responses, in order.
async fn commit(raft: Raft, commands: Vec<Command>) -> Result<Vec<Response>> {
    let started = std::time::Instant::now();
    let resp = raft
        .client_write(Request { commands })
        .await
        .map_err(map_write_error)?;
    // Propose -> committed and applied on the leader.
    metrics::histogram!("replication_latency_seconds").record(started.elapsed().as_secs_f64());
    Ok(resp.data.responses)
}

pub(crate) fn map_write_error(
    e: RaftError<NodeId, ClientWriteError<NodeId, crate::types::NodeAddr>>,
) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => Error::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            Error::Invalid(c.to_string())
        }
        RaftError::Fatal(f) => Error::from(f),
    }
}
