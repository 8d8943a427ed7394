//! openraft's `RaftStateMachine` over the storage crate's deterministic apply.
//!
//! Determinism: this adapter only translates entries into storage commands; it adds
//! no clock, randomness or node-local config. `last_applied` and the membership are
//! written in the same atomic batch as the entry's data.
//!
//! Snapshots are files under `<data>/snapshots`. openraft calls `get_snapshot_builder`
//! on the state-machine worker between applies, and it fixes the state there
//! ([`Store::begin_export`], no I/O); the builder then writes that state in its own
//! task while apply goes on, so a snapshot of a large state no longer holds up every
//! write. A snapshot install waits for a running build (`building`), so the two never
//! publish out of order.

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use metacenter_storage::{codec, ApplyEntry, Command, Export, Store};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use tokio::sync::broadcast;

use crate::log_store::io_err;
use crate::types::*;

/// What the applied-event bus carries: the commands of entries just applied.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Index of the last entry of this apply call (or of an installed snapshot).
    pub index: u64,
    /// The commands applied, per entry, in order. Empty after a snapshot install.
    pub commands: Vec<Arc<Vec<Command>>>,
    /// True when the whole state was replaced by a snapshot.
    pub snapshot_installed: bool,
}

/// Batches up to this many approximate bytes apply on the state-machine task itself;
/// larger ones (point batches) on a blocking thread.
const INLINE_APPLY_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct SmState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    current: Option<SnapshotMeta>,
    built: SnapshotStats,
}

/// The snapshots this node built since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// How many.
    pub count: u64,
    /// Size of the last one's file.
    pub last_bytes: u64,
    /// How long the last one took to write.
    pub last_build: std::time::Duration,
    /// Bytes of all of them.
    pub total_bytes: u64,
}

/// The state machine of one node.
#[derive(Clone)]
pub struct StateMachine {
    store: Store,
    dir: PathBuf,
    state: Arc<Mutex<SmState>>,
    events: broadcast::Sender<Arc<Applied>>,
    /// Held by a snapshot build from its start until it is published, and by a
    /// snapshot install.
    building: Arc<tokio::sync::Mutex<()>>,
}

fn sm_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::StateMachine, verb, e)
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e)
}

fn join_err(e: tokio::task::JoinError) -> StorageError {
    sm_err(ErrorVerb::Write, std::io::Error::other(e.to_string()))
}

impl StateMachine {
    /// Opens the state machine over `store`, keeping snapshot files in `snapshot_dir`.
    pub fn new(store: Store, snapshot_dir: PathBuf) -> Result<StateMachine, StorageError> {
        std::fs::create_dir_all(&snapshot_dir).map_err(snap_err)?;
        let mut st = SmState::default();
        if let Some(b) = store
            .applied_state()
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
        {
            let (la, m): (Option<LogId>, StoredMembership) =
                codec::decode(&b).map_err(|e| sm_err(ErrorVerb::Read, e))?;
            st.last_applied = la;
            st.membership = m;
        }
        st.current = crate::snapshot_files::latest_meta(&snapshot_dir).map_err(snap_err)?;
        if let Some(meta) = st.current.clone() {
            if meta.last_log_id > st.last_applied {
                restore_own_snapshot(&store, &snapshot_dir, &meta)?;
                st.last_applied = meta.last_log_id;
                st.membership = meta.last_membership;
            }
        }
        store.set_applied_index(st.last_applied.map_or(0, |l| l.index));
        let (events, _) = broadcast::channel(1024);
        Ok(StateMachine {
            store,
            dir: snapshot_dir,
            state: Arc::new(Mutex::new(st)),
            events,
            building: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The snapshots built since start-up.
    pub fn snapshot_stats(&self) -> SnapshotStats {
        self.lock().built
    }

    /// Bytes of the snapshot files (and any being written).
    pub fn snapshot_files_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }

    /// Index of the last entry applied to the store. Updated right after the store
    /// and before the applied event, so it never lags the data a reader sees.
    pub fn applied_index(&self) -> u64 {
        self.store.applied_index()
    }

    /// Subscribes to the applied-event bus.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Applied>> {
        self.events.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SmState> {
        self.state.lock().expect("state machine lock poisoned")
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let st = self.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let (mut last, mut membership) = {
            let st = self.lock();
            (st.last_applied, st.membership.clone())
        };
        let mut batch = Vec::new();
        for e in entries {
            let commands = match e.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(req) => req.commands,
                EntryPayload::Membership(m) => {
                    membership = StoredMembership::new(Some(e.log_id), m);
                    Vec::new()
                }
            };
            last = Some(e.log_id);
            batch.push(ApplyEntry {
                index: e.log_id.index,
                commands,
            });
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let applied =
            codec::encode(&(last, &membership)).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let weight: usize = batch
            .iter()
            .flat_map(|e| &e.commands)
            .map(Command::size_hint)
            .sum();
        let (batch, result) = if weight <= INLINE_APPLY_BYTES {
            // Small batches (load updates, heartbeats, metadata) apply in place: an
            // in-memory sled batch costs less than handing it to a blocking thread.
            let r = self.store.apply(&batch, &applied);
            (batch, r)
        } else {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || {
                let r = store.apply(&batch, &applied);
                (batch, r)
            })
            .await
            .map_err(join_err)?
        };
        let responses = result.map_err(|e| sm_err(ErrorVerb::Write, e))?;
        {
            let mut st = self.lock();
            st.last_applied = last;
            st.membership = membership;
        }
        self.publish(batch);
        Ok(responses
            .into_iter()
            .map(|responses| BatchResponse { responses })
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        let building = self.building.clone().lock_owned().await;
        let (last, membership) = {
            let st = self.lock();
            (st.last_applied, st.membership.clone())
        };
        let export = self.store.begin_export().map_err(snap_err).and_then(|e| {
            let last_index = last.map_or(0, |l| l.index);
            if e.applied_index() == last_index {
                return Ok(e);
            }
            let msg = format!(
                "export at {} for a snapshot at {last_index}",
                e.applied_index()
            );
            Err(snap_err(std::io::Error::other(msg)))
        });
        SnapshotBuilder {
            sm: self.clone(),
            last,
            membership,
            export,
            building: Some(building),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let f = crate::snapshot_files::incoming(&self.dir).map_err(snap_err)?;
        Ok(Box::new(tokio::fs::File::from_std(f)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let _no_build = self.building.lock().await;
        let mut file = snapshot.into_std().await;
        let store = self.store.clone();
        let dir = self.dir.clone();
        let meta_c = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            file.seek(SeekFrom::Start(0)).map_err(snap_err)?;
            import(&store, &mut file, &meta_c)?;
            // The published file is what a crash from here on recovers from (see
            // `restore_own_snapshot`); durable before it counts as applied, as the
            // watermark and a waiting log purge read the applied index.
            crate::snapshot_files::publish(&dir, &meta_c, file).map_err(snap_err)?;
            store.flush_durable().map_err(snap_err)?;
            store.set_applied_index(meta_c.last_log_id.map_or(0, |l| l.index));
            Ok(())
        })
        .await
        .map_err(join_err)??;
        {
            let mut st = self.lock();
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
            st.current = Some(meta.clone());
        }
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let _ = self.events.send(Arc::new(Applied {
            index,
            commands: Vec::new(),
            snapshot_installed: true,
        }));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(meta) = self.lock().current.clone() else {
            return Ok(None);
        };
        let f = crate::snapshot_files::open(&self.dir, &meta.snapshot_id).map_err(snap_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(f)),
        }))
    }
}

impl StateMachine {
    fn publish(&self, batch: Vec<ApplyEntry>) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let index = batch.last().map_or(0, |e| e.index);
        let commands = batch.into_iter().map(|e| Arc::new(e.commands)).collect();
        let _ = self.events.send(Arc::new(Applied {
            index,
            commands,
            snapshot_installed: false,
        }));
    }
}

/// Imports this node's own snapshot `meta` into a store that recovered to an earlier
/// applied index: after a crash in a snapshot install between publishing the received
/// file and flushing its state, or in a data dir of an earlier version, which published
/// built snapshots before the state machine was durable (see [`SnapshotBuilder`]).
/// openraft refuses to start on a snapshot past the commit index it recovers, which is
/// at most the applied index when the crash also lost the saved commit index. The
/// snapshot holds only committed entries, so applying it is what raft would have done.
fn restore_own_snapshot(
    store: &Store,
    dir: &Path,
    meta: &SnapshotMeta,
) -> Result<(), StorageError> {
    tracing::warn!(
        snapshot = %meta.snapshot_id,
        "the state machine recovered behind this node's own snapshot: installing it"
    );
    let mut file = crate::snapshot_files::open(dir, &meta.snapshot_id).map_err(snap_err)?;
    import(store, &mut file, meta)?;
    store.flush_durable().map_err(snap_err)
}

/// Replaces the store's state with snapshot `file` and records `meta` as applied (not
/// yet durable, nor published as the applied index).
fn import(
    store: &Store,
    file: &mut std::fs::File,
    meta: &SnapshotMeta,
) -> Result<(), StorageError> {
    let applied = codec::encode(&(meta.last_log_id, &meta.last_membership)).map_err(snap_err)?;
    store
        .import_snapshot(&mut std::io::BufReader::new(file))
        .map_err(snap_err)?;
    store.apply(&[], &applied).map_err(snap_err)?;
    Ok(())
}

/// Writes the state `get_snapshot_builder` fixed and publishes it once the state
/// machine is durable up to it: a published snapshot must never be ahead of what a
/// crash leaves of the state machine (openraft's invariant: snapshot <= committed at
/// start-up, where the recovered commit index may be no more than the applied one).
pub struct SnapshotBuilder {
    sm: StateMachine,
    last: Option<LogId>,
    membership: StoredMembership,
    export: Result<Export, StorageError>,
    /// Released when `build_snapshot` returns, whether or not the builder is dropped.
    building: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let _building = self.building.take();
        let export = std::mem::replace(
            &mut self.export,
            Err(snap_err(std::io::Error::other("snapshot already built"))),
        )?;
        let id = match self.last {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "0-0-0".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last,
            last_membership: self.membership.clone(),
            snapshot_id: id,
        };
        let (dir, store) = (self.sm.dir.clone(), self.sm.store.clone());
        let m = meta.clone();
        let started = std::time::Instant::now();
        let f = tokio::task::spawn_blocking(move || {
            let tmp = crate::snapshot_files::export(export, &dir).map_err(snap_err)?;
            // Everything up to `last` was applied before the export: flushed now.
            store.flush_durable().map_err(snap_err)?;
            crate::snapshot_files::publish_path(&dir, &m, &tmp).map_err(snap_err)
        })
        .await
        .map_err(join_err)??;
        let bytes = f.metadata().map_or(0, |m| m.len());
        let mut state = self.sm.lock();
        state.current = Some(meta.clone());
        let built = &mut state.built;
        built.count += 1;
        built.last_bytes = bytes;
        built.last_build = started.elapsed();
        built.total_bytes += bytes;
        drop(state);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(f)),
        })
    }
}

/// Bytes of the files under `dir`, recursively (0 for what cannot be read).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}
