//! Group commit on the leader: concurrent submissions are packed into one log entry
//! (bounded by command count and approximate bytes), so many small writes share one
//! raft round and one fsync. Each submitter still gets its own responses.
//!
//! Batches form naturally: at most `max_in_flight` entries are being committed at a
//! time, and whatever arrives meanwhile waits and goes into the next entry. An idle
//! leader therefore commits a lone write at once, without a timer.

use std::sync::Arc;

use metacenter_storage::{Command, Response};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Error, Result};
use crate::types::{NodeId, Raft, Request};

/// Bounds of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most commands in one log entry.
    pub max_commands: usize,
    /// Most approximate bytes in one log entry.
    pub max_bytes: usize,
    /// Most entries being committed at once.
    pub max_in_flight: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_commands: 4096,
            max_bytes: 4 << 20,
            max_in_flight: 1,
        }
    }
}

struct Submission {
    commands: Vec<Command>,
    bytes: usize,
    reply: oneshot::Sender<Result<Vec<Response>>>,
}

/// Handle to the batching task.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Submission>,
}

impl Batcher {
    /// Spawns the batching task for `raft`.
    pub fn spawn(raft: Raft, limits: BatchLimits) -> Batcher {
        let (tx, rx) = mpsc::channel(65536);
        tokio::spawn(run(raft, rx, limits));
        Batcher { tx }
    }

    /// Commits `commands` (as part of some entry) and returns their responses.
    pub async fn submit(&self, commands: Vec<Command>) -> Result<Vec<Response>> {
        let bytes = commands.iter().map(Command::size_hint).sum();
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Submission {
                commands,
                bytes,
                reply,
            })
            .await
            .map_err(|_| Error::Fatal("batcher stopped".into()))?;
        rx.await
            .map_err(|_| Error::Fatal("batcher dropped the write".into()))?
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Submission>, limits: BatchLimits) {
    let permits = Arc::new(Semaphore::new(limits.max_in_flight));
    let mut carry: Option<Submission> = None;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = match carry.take() {
            Some(s) => s,
            None => match rx.recv().await {
                Some(s) => s,
                None => return,
            },
        };
        let (mut n, mut bytes) = (first.commands.len(), first.bytes);
        let mut subs = vec![first];
        while n < limits.max_commands && bytes < limits.max_bytes {
            let Ok(s) = rx.try_recv() else { break };
            if n + s.commands.len() > limits.max_commands || bytes + s.bytes > limits.max_bytes {
                carry = Some(s);
                break;
            }
            n += s.commands.len();
            bytes += s.bytes;
            subs.push(s);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, subs).await;
            drop(permit);
        });
    }
}

async fn commit(raft: &Raft, subs: Vec<Submission>) {
    let mut commands = Vec::with_capacity(subs.iter().map(|s| s.commands.len()).sum());
    let mut sizes = Vec::with_capacity(subs.len());
    let mut replies = Vec::with_capacity(subs.len());
    for s in subs {
        sizes.push(s.commands.len());
        commands.extend(s.commands);
        replies.push(s.reply);
    }
    let started = std::time::Instant::now();
    let result = raft.client_write(Request { commands }).await;
    if result.is_ok() {
        // Propose -> committed and applied on the leader.
        metrics::histogram!("replication_latency_seconds").record(started.elapsed().as_secs_f64());
    }
    match result {
        Ok(resp) => {
            let mut all = resp.data.responses.into_iter();
            for (size, reply) in sizes.into_iter().zip(replies) {
                let _ = reply.send(Ok(all.by_ref().take(size).collect()));
            }
        }
        Err(e) => {
            let err = map_write_error(e);
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
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
