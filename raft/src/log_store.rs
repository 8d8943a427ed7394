//! openraft's `RaftLogStorage` over the storage crate's [`Wal`].
//!
//! Durability: `append` writes the entries and has them made durable by the
//! [`crate::flusher`] (queued for its thread's group fsync, or synced inline when
//! lightly loaded) before its `LogFlushed` callback completes; `save_vote` waits for
//! a durable flush of its own. A sync that stalls fails (see the flusher), and a failed
//! log write stops raft on this node (openraft's contract), so the node answers 503
//! until restarted.
//!
//! The state machine (sled) is not flushed with the log: after a crash it may
//! recover to an earlier applied index, and raft re-applies the entries after it
//! from this log. So `purge` first waits for the state machine to reach the purged
//! index (a snapshot being installed) and makes it durable: no entry leaves the log
//! before the state it produced is on disk.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use std::path::Path;
use std::sync::Arc;

use metacenter_storage::{codec, Store, Wal};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, LogState, RaftLogReader, StorageIOError};

use crate::flusher::{Flusher, Waiter, INLINE_MAX_COMMANDS};

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

pub use crate::flusher::FLUSH_STALL;

/// How long a purge waits for the state machine to reach it (a snapshot install).
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(300);
const PURGE_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// The raft log of one node. Clones share the log and the flusher.
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Wal>,
    /// The state machine's store, made durable before a purge.
    store: Store,
    flusher: Flusher,
    /// Whether a purge waits for the state machine to reach it (see `wait_applied`).
    purge_waits_for_apply: bool,
    /// Bytes of entries appended since the node started (paces snapshots).
    appended: Arc<std::sync::atomic::AtomicU64>,
    /// Whether entries are zstd-packed (`raft.pack_log`).
    pack: bool,
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
    /// Opens the log in `dir` (moving an older database's log out of `store` first,
    /// the storage crate's last upgrade step) and spawns its flusher thread.
    pub fn open(store: Store, dir: &Path) -> Result<LogStore, StorageError> {
        LogStore::open_with(store, dir, metacenter_storage::wal::SEGMENT_BYTES)
    }

    /// [`LogStore::open`] with log segments of `segment_bytes`.
    pub fn open_with(
        store: Store,
        dir: &Path,
        segment_bytes: u64,
    ) -> Result<LogStore, StorageError> {
        // At least a megabyte: a segment per entry would be absurd.
        let segment_bytes = segment_bytes.max(1 << 20);
        let wal = Arc::new(Wal::open_with(dir, segment_bytes).map_err(read_err)?);
        let purged_index = |id: &[u8]| Ok(codec::decode::<LogId>(id)?.index);
        store
            .upgrade_raft_log(&wal, purged_index)
            .map_err(write_err)?;
        let flusher = Flusher::spawn(wal.clone());
        Ok(LogStore {
            wal,
            store,
            flusher,
            purge_waits_for_apply: true,
            appended: Default::default(),
            pack: false,
        })
    }

    /// This log with its entries zstd-packed from now on (entries already written are
    /// read either way): a log of point batches shrinks about three times, for CPU that
    /// three nodes on two cores notice (BENCHMARKS.md).
    pub fn with_packing(mut self, pack: bool) -> LogStore {
        self.pack = pack;
        self
    }

    /// This log with purges that do not wait for the state machine: for a harness that
    /// drives the log alone and never applies (openraft's conformance suite).
    pub fn without_purge_wait(mut self) -> LogStore {
        self.purge_waits_for_apply = false;
        self
    }

    /// The commit index last saved by raft on this node (0 if none).
    pub fn committed_index(&self) -> u64 {
        self.wal
            .committed()
            .and_then(|b| codec::decode::<Option<LogId>>(&b).ok())
            .flatten()
            .map_or(0, |l| l.index)
    }

    /// Bytes the log's files hold.
    pub fn size_on_disk(&self) -> u64 {
        self.wal.size_on_disk()
    }

    /// The highest index to purge so that the entries up to `upto` left behind hold at
    /// most `keep_bytes` (`None`: they already do).
    pub fn purge_point(&self, upto: u64, keep_bytes: u64) -> Option<u64> {
        self.wal.purge_point(upto, keep_bytes)
    }

    /// Bytes of entries appended to this log since the node started.
    pub fn appended_bytes(&self) -> u64 {
        self.appended.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the state machine has applied `index`. openraft purges only what a
    /// snapshot covers, but after a follower accepts a snapshot it asks for the purge
    /// while the state machine is still installing it: entries purged then, with the
    /// old state on disk and the new snapshot not yet published, would leave a crash
    /// with neither (and openraft refusing to start on a purge past its snapshot). An
    /// install publishes the applied index only once its snapshot and state are durable.
    async fn wait_applied(&self, index: u64) -> Result<(), StorageError> {
        let deadline = tokio::time::Instant::now() + PURGE_WAIT;
        while self.purge_waits_for_apply && self.store.applied_index() < index {
            if tokio::time::Instant::now() > deadline {
                let msg = format!("purge up to {index}: not applied within {PURGE_WAIT:?}");
                return Err(write_err(std::io::Error::other(msg)));
            }
            tokio::time::sleep(PURGE_POLL).await;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.flusher.queue(Waiter::Direct(tx)).map_err(write_err)?;
        let stopped = || write_err(std::io::Error::other("log flusher stopped"));
        rx.await.map_err(|_| stopped())?.map_err(write_err)
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
        let raw = self.wal.range(start, end).map_err(read_err)?;
        raw.iter()
            .map(|v| codec::decode(v).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = match self.wal.purged() {
            Some(b) => Some(codec::decode(&b).map_err(read_err)?),
            None => None,
        };
        let last = match self.wal.last_entry().map_err(read_err)? {
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
        let bytes = codec::encode(vote).map_err(write_err)?;
        self.wal.set_vote(&bytes).map_err(write_err)?;
        self.flush().await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let v = self.wal.vote();
        v.map(|b| codec::decode(&b)).transpose().map_err(read_err)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = codec::encode(&committed).map_err(write_err)?;
        self.wal.set_committed(&bytes);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let c = self.wal.committed();
        let c: Option<Option<LogId>> =
            c.map(|b| codec::decode(&b)).transpose().map_err(read_err)?;
        Ok(c.flatten())
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
        let (mut batch, mut commands) = (Vec::new(), 0);
        for e in entries {
            if let EntryPayload::Normal(req) = &e.payload {
                commands += req.commands.len();
            }
            let bytes = if self.pack {
                codec::encode_packed(&e)
            } else {
                codec::encode(&e)
            };
            batch.push((e.log_id.index, bytes.map_err(write_err)?));
        }
        let bytes: usize = batch.iter().map(|(_, b)| b.len()).sum();
        self.appended
            .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
        self.wal.append(batch).map_err(write_err)?;
        let waiter = Waiter::Append(callback);
        let r = if commands <= INLINE_MAX_COMMANDS {
            self.flusher.sync_inline(waiter)
        } else {
            self.flusher.queue(waiter)
        };
        r.map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.wal.truncate_from(log_id.index).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.wait_applied(log_id.index).await?;
        let bytes = codec::encode(&log_id).map_err(write_err)?;
        let (store, wal) = (self.store.clone(), self.wal.clone());
        tokio::task::spawn_blocking(move || {
            // What is applied now reaches past `log_id` (waited for above): once it is
            // durable the entries are no longer needed.
            store.flush_durable()?;
            wal.purge_upto(log_id.index, &bytes)
        })
        .await
        .map_err(|e| write_err(std::io::Error::other(e.to_string())))?
        .map_err(write_err)
    }
}
