//! openraft's `RaftLogStorage` over the storage crate's log keyspace.
//!
//! Durability: `append` inserts the entries and hands its `LogFlushed` callback to a
//! flusher thread, which makes the store durable once for every callback queued
//! meanwhile (group fsync) and completes them in order; `save_vote` and `purge` make
//! it durable before returning. The flusher is one long-lived thread calling the
//! synchronous flush: sled's `flush_async` wakes its whole I/O thread pool per call,
//! which cost more CPU than the fsync itself under load.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use metacenter_storage::{codec, Store};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader, StorageIOError};

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The raft log of one node. Clones share the store and the flusher.
#[derive(Clone)]
pub struct LogStore {
    store: Store,
    flusher: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
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
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush_durable())
            .await
            .map_err(|e| write_err(std::io::Error::other(e.to_string())))?
            .map_err(write_err)
    }
}

/// Runs until every sender is gone: one durable flush per group of callbacks.
fn flusher(store: Store, rx: std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let res = store.flush_durable();
        for cb in pending {
            let r = res
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()));
            cb.log_io_completed(r);
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
            .send(callback)
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
