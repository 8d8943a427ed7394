//! openraft's `RaftLogStorage` over the storage crate's log keyspace.
//!
//! Durability: `append` inserts the entries and hands its `LogFlushed` callback to a
//! flusher thread, which makes the store durable once for every callback queued
//! meanwhile (group fsync) and completes them in order; `save_vote` and `purge` queue
//! a waiter of their own on the same flusher and return once it is durable. The flusher is one long-lived thread calling the
//! synchronous flush: sled's `flush_async` wakes its whole I/O thread pool per call,
//! which cost more CPU than the fsync itself under load.
//!
//! A flush that does not finish within [`FLUSH_STALL`] fails: sled 0.34 can block a
//! flush forever after a write error (a full disk), and a log that never reports
//! would hang every client write instead of failing it. A failed log write stops raft
//! on this node (openraft's contract), so the node answers 503 until restarted.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use metacenter_storage::{codec, Store};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader, StorageIOError};

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// How long a flush may take before the disk counts as failed.
pub const FLUSH_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// The raft log of one node. Clones share the store and the flusher.
#[derive(Clone)]
pub struct LogStore {
    store: Store,
    flusher: std::sync::mpsc::Sender<Waiter>,
}

/// Who waits for the next durable flush.
enum Waiter {
    /// An `append`'s callback into openraft.
    Append(LogFlushed<TypeConfig>),
    /// `save_vote` or `purge`, awaiting the answer.
    Direct(tokio::sync::oneshot::Sender<std::io::Result<()>>),
}

impl Waiter {
    fn complete(self, r: std::io::Result<()>) {
        match self {
            Waiter::Append(cb) => cb.log_io_completed(r),
            Waiter::Direct(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

pub(crate) fn io_err(
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, openraft::AnyError::new(&e)),
    }
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Write, e)
}

impl LogStore {
    /// Wraps `store`; spawns the flusher on the current tokio runtime.
    pub fn new(store: Store) -> LogStore {
        let (tx, rx) = std::sync::mpsc::channel();
        let s = store.clone();
        std::thread::Builder::new()
            .name("raft-log-flusher".into())
            .spawn(move || flusher(s, rx))
            .expect("spawn the log flusher thread");
        LogStore { store, flusher: tx }
    }

    fn value<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StorageError> {
        let v = self.store.raft_value(name).map_err(read_err)?;
        v.map(|b| codec::decode(&b)).transpose().map_err(read_err)
    }

    fn set_value<T: serde::Serialize>(&self, name: &str, v: &T) -> Result<(), StorageError> {
        let bytes = codec::encode(v).map_err(write_err)?;
        self.store.set_raft_value(name, bytes).map_err(write_err)
    }

    async fn flush(&self) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stopped = || write_err(std::io::Error::other("log flusher stopped"));
        self.flusher
            .send(Waiter::Direct(tx))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?.map_err(write_err)
    }
}

fn stalled() -> std::io::Error {
    std::io::Error::other(format!(
        "a flush of the database did not finish within {FLUSH_STALL:?} (disk full or failing)"
    ))
}

/// Runs flushes on their own thread so the flusher can give up on one that stalls.
struct Fsync {
    req: std::sync::mpsc::Sender<()>,
    done: std::sync::mpsc::Receiver<Result<(), String>>,
    stalled: bool,
}

impl Fsync {
    fn spawn(store: Store) -> Fsync {
        let (req, req_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-fsync".into())
            .spawn(move || {
                while req_rx.recv().is_ok() {
                    let r = store.flush_durable().map_err(|e| e.to_string());
                    if done_tx.send(r).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn the log fsync thread");
        Fsync {
            req,
            done,
            stalled: false,
        }
    }

    /// Flushes, or fails once a flush has taken longer than [`FLUSH_STALL`] (and
    /// every flush after it: the stuck one still holds the thread).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.stalled {
            return Err(stalled());
        }
        self.req
            .send(())
            .map_err(|_| std::io::Error::other("the fsync thread stopped"))?;
        match self.done.recv_timeout(FLUSH_STALL) {
            Ok(r) => r.map_err(std::io::Error::other),
            Err(_) => {
                self.stalled = true;
                tracing::error!("{}", stalled());
                Err(stalled())
            }
        }
    }
}

/// Runs until every sender is gone: one durable flush per group of callbacks.
fn flusher(store: Store, rx: std::sync::mpsc::Receiver<Waiter>) {
    let mut fsync = Fsync::spawn(store);
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let res = fsync.flush();
        for waiter in pending {
            let r = res
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()));
            waiter.complete(r);
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => Some(e + 1),
            Bound::Excluded(e) => Some(*e),
            Bound::Unbounded => None,
        };
        let raw = self.store.log_range(start, end).map_err(read_err)?;
        raw.iter()
            .map(|(_, v)| codec::decode(v).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.value(LAST_PURGED)?;
        let last = match self.store.log_last().map_err(read_err)? {
            Some(b) => Some(codec::decode::<Entry>(&b).map_err(read_err)?.log_id),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.set_value(VOTE, vote)?;
        self.flush().await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.value(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.set_value(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.value::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut batch = Vec::new();
        for e in entries {
            batch.push((e.log_id.index, codec::encode(&e).map_err(write_err)?));
        }
        self.store.log_append(batch).map_err(write_err)?;
        self.flusher
            .send(Waiter::Append(callback))
            .map_err(|_| write_err(std::io::Error::other("log flusher stopped")))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.store
            .log_truncate_from(log_id.index)
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // last_purged is durable before any entry goes; the state machine (written by
        // the same sled log) is flushed with it, so it never lags behind the purge.
        self.set_value(LAST_PURGED, &log_id)?;
        self.flush().await?;
        self.store.log_purge_upto(log_id.index).map_err(write_err)
    }
}

/// The commit index last persisted by raft on this node (0 if none).
pub fn committed_index(store: &Store) -> u64 {
    store
        .raft_value(COMMITTED)
        .ok()
        .flatten()
        .and_then(|b| codec::decode::<Option<LogId>>(&b).ok())
        .flatten()
        .map_or(0, |l| l.index)
}
