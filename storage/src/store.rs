//! [`Store`]: the sled database of one node, its trees, and the apply entry point.

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use crate::apply::ApplyCtx;
use crate::export::Capture;
use crate::load_view::LoadView;
use crate::service_view::ServiceView;
use crate::txn::Txn;
use crate::{codec, keys, Command, Error, Response, Result};

/// Exports that may run at once: a snapshot build and a backup, each with room for
/// one more (each keeps the old values of keys changed ahead of its own scan).
pub(crate) const MAX_EXPORTS: usize = 4;

/// Pairs read per hold of the gate by [`Store::scan_paged`].
pub(crate) const SCAN_PAGE: usize = 1024;

/// One committed log entry as the state machine sees it.
#[derive(Debug, Clone, Default)]
pub struct ApplyEntry {
    /// Raft log index of the entry.
    pub index: u64,
    /// Its commands (empty for blank and membership entries).
    pub commands: Vec<Command>,
}

/// The durable state of one node. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: sled::Db,
    pub(crate) control: sled::Tree,
    /// The current state-machine tree; replaced as a whole by snapshot install.
    sm: Arc<RwLock<sled::Tree>>,
    /// Apply holds this exclusively while it commits a batch; reads that combine
    /// several keys of one object hold it shared. sled readers may otherwise see a
    /// batch half applied (a new value with an old version).
    gate: Arc<RwLock<()>>,
    /// Index of the last applied entry, published under the gate with its data.
    applied: Arc<std::sync::atomic::AtomicU64>,
    /// The applied index as of the last [`Store::flush_durable`] (0 before one).
    durable: Arc<std::sync::atomic::AtomicU64>,
    /// sled's data file, fdatasynced after each flush (see [`Store::flush_durable`]).
    data_file: Arc<std::fs::File>,
    /// The engine counters in memory, kept equal to the tree's.
    load_view: Arc<LoadView>,
    /// The service registrations in memory, kept equal to the tree's.
    service_view: Arc<ServiceView>,
    /// The running exports (a snapshot build, backups), which every commit tells
    /// what it changes.
    export: Arc<Mutex<Vec<Arc<Capture>>>>,
}

const CONTROL_SM_GEN: &[u8] = b"sm_generation";

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store> {
        let db = open_db(dir)?;
        let control = db.open_tree("control")?;
        let gen: u64 = match control.get(CONTROL_SM_GEN)? {
            Some(v) => codec::decode(&v)?,
            None => 0,
        };
        let sm = db.open_tree(sm_tree_name(gen))?;
        crate::upgrade::at_open(dir, &sm)?;
        let load_view = Arc::new(LoadView::build(&sm)?);
        let service_view = Arc::new(ServiceView::build(&sm)?);
        Ok(Store {
            db,
            control,
            load_view,
            service_view,
            export: Arc::new(Mutex::new(Vec::new())),
            sm: Arc::new(RwLock::new(sm)),
            gate: Arc::new(RwLock::new(())),
            applied: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            durable: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            data_file: Arc::new(
                std::fs::File::open(dir.join("db"))
                    .map_err(|e| Error::engine_io("open sled data file", e))?,
            ),
        })
    }

    /// Index of the last entry applied. Read under the gate: whatever data a reader
    /// saw before calling this, the index returned covers it.
    pub fn applied_index(&self) -> u64 {
        let _consistent = self.read_gate();
        self.applied.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sets the applied index (at start-up and after a snapshot install).
    pub fn set_applied_index(&self, index: u64) {
        let _exclusive = self.gate.write().expect("gate poisoned");
        self.applied
            .store(index, std::sync::atomic::Ordering::Release);
    }

    /// The applied index, for a caller that holds the gate.
    pub(crate) fn applied_unlocked(&self) -> u64 {
        self.applied.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Holds off apply commits (and reads that hold the gate).
    pub(crate) fn write_gate(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().expect("gate poisoned")
    }

    fn export_slot(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Capture>>> {
        self.export.lock().expect("export slot poisoned")
    }

    /// Adds `capture` to the running exports; fails if [`MAX_EXPORTS`] run.
    pub(crate) fn set_capture(&self, capture: Arc<Capture>) -> Result<()> {
        let mut slot = self.export_slot();
        if slot.len() >= MAX_EXPORTS {
            return Err(Error::Snapshot(format!(
                "{MAX_EXPORTS} exports are running already"
            )));
        }
        slot.push(capture);
        Ok(())
    }

    /// Ends `capture`'s part in commits, if it is still running.
    pub(crate) fn clear_capture(&self, capture: &Arc<Capture>) {
        self.export_slot().retain(|c| !Arc::ptr_eq(c, capture));
    }

    /// Holds off apply commits while a read combines several keys.
    pub(crate) fn read_gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().expect("gate poisoned")
    }

    /// Visits the pairs under `prefix` in key order, [`SCAN_PAGE`] at a time, each page
    /// read under the gate (so it shows whole applies) and visited after releasing it.
    /// A long scan thus holds off apply for one page at a time, not for all of it; the
    /// pages may come from different applied indexes. `visit` returns false to stop.
    pub(crate) fn scan_paged(
        &self,
        prefix: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut after: Option<sled::IVec> = None;
        loop {
            let page = {
                let _consistent = self.read_gate();
                let sm = self.sm();
                let from = match &after {
                    Some(k) => Bound::Excluded(k.clone()),
                    None => Bound::Included(sled::IVec::from(prefix)),
                };
                sm.range((from, Bound::Unbounded))
                    .take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
                    .take(SCAN_PAGE)
                    .collect::<std::result::Result<Vec<_>, _>>()?
            };
            for (k, v) in &page {
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            if page.len() < SCAN_PAGE {
                return Ok(());
            }
            after = page.last().map(|(k, _)| k.clone());
        }
    }

    /// The gate for reading if no apply holds it now, `None` if one does.
    pub(crate) fn try_read_gate(&self) -> Option<std::sync::RwLockReadGuard<'_, ()>> {
        match self.gate.try_read() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::WouldBlock) => None,
            Err(std::sync::TryLockError::Poisoned(_)) => panic!("gate poisoned"),
        }
    }

    /// The in-memory copy of the engine counters.
    pub(crate) fn load_view(&self) -> &LoadView {
        &self.load_view
    }

    /// The in-memory copy of the service registrations.
    pub(crate) fn service_view(&self) -> &ServiceView {
        &self.service_view
    }

    /// The current state-machine tree (a cheap handle).
    pub(crate) fn sm(&self) -> sled::Tree {
        self.sm.read().expect("sm lock poisoned").clone()
    }

    pub(crate) fn sm_generation(&self) -> Result<u64> {
        Ok(match self.control.get(CONTROL_SM_GEN)? {
            Some(v) => codec::decode(&v)?,
            None => 0,
        })
    }

    /// Switches to generation `gen` (already filled and flushed) and drops the old tree.
    pub(crate) fn switch_sm(&self, gen: u64, tree: sled::Tree) -> Result<()> {
        let old = self.sm_generation()?;
        crate::upgrade::at_install(&tree)?;
        let view = LoadView::build(&tree)?;
        let services = ServiceView::build(&tree)?;
        self.control.insert(CONTROL_SM_GEN, codec::encode(&gen)?)?;
        self.db.flush()?;
        for running in std::mem::take(&mut *self.export_slot()) {
            running.replaced();
        }
        *self.sm.write().expect("sm lock poisoned") = tree;
        self.load_view.replace(view);
        self.service_view.replace(services);
        if old != gen {
            self.db.drop_tree(sm_tree_name(old))?;
        }
        Ok(())
    }

    pub(crate) fn open_sm_generation(&self, gen: u64) -> Result<sled::Tree> {
        let name = sm_tree_name(gen);
        self.db.drop_tree(&name)?;
        Ok(self.db.open_tree(name)?)
    }

    /// Applies committed entries in order, atomically with `applied_state` (opaque
    /// bytes of the raft layer: last applied log id and membership). Returns the
    /// responses of each entry's commands. A command's own failure (not found, version
    /// mismatch) is a response. An `Err` before the commit writes nothing; one from the
    /// commit (sled failing) may leave the call half written until the next open
    /// finishes it from its redo record (the redo module), so the caller must stop
    /// applying (raft does).
    pub fn apply(
        &self,
        entries: &[ApplyEntry],
        applied_state: &[u8],
    ) -> Result<Vec<Vec<Response>>> {
        let tree = self.sm();
        let mut ctx = ApplyCtx::new(Txn::new(&tree))?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            ctx.index = e.index;
            let mut rs = Vec::with_capacity(e.commands.len());
            for c in &e.commands {
                rs.push(ctx.apply(c)?);
            }
            out.push(rs);
        }
        // Decoded before the commit: nothing can fail once it is written.
        let engines = LoadView::decode(ctx.txn.writes_under(&[keys::KS_LOAD_ENGINE]))?;
        let services = ServiceView::decode(ctx.txn.writes_under(&[keys::KS_SERVICE]))?;
        let _exclusive = self.write_gate();
        let exports = self.export_slot().clone();
        ctx.finish(applied_state, &exports)?;
        self.load_view.note(engines);
        self.service_view.note(services);
        if let Some(last) = entries.last() {
            self.applied
                .store(last.index, std::sync::atomic::Ordering::Release);
        }
        Ok(out)
    }

    /// The applied state last written by [`Store::apply`] or a snapshot install.
    pub fn applied_state(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.sm().get(keys::sys_applied())?.map(|v| v.to_vec()))
    }

    /// Makes everything written so far durable, synchronously.
    ///
    /// sled 0.34's flush ends in `sync_file_range`, which neither flushes the drive's
    /// write cache nor the file's metadata (its size, as the log grows), so a power
    /// loss could still take acknowledged writes. An `fdatasync` of sled's data file
    /// after the flush closes that gap (fdatasync acts on the file, whatever handle).
    pub fn flush_durable(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        // Read first: the data of every entry applied by now is in sled's buffers,
        // so the flush below covers it.
        let applied = self.applied.load(Ordering::Acquire);
        self.db.flush()?;
        self.data_file
            .sync_data()
            .map_err(|e| Error::engine_io("fdatasync", e))?;
        self.durable.fetch_max(applied, Ordering::AcqRel);
        Ok(())
    }

    /// The applied index that the last [`Store::flush_durable`] made durable: a crash
    /// now recovers at least this far (0 before the first flush of this process).
    pub fn durable_index(&self) -> u64 {
        self.durable.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// sled's segment size for a new database. sled writes a page (a tree node with its
/// values) larger than a quarter of a segment to a file of its own, created per write;
/// with the default 512 KiB a node of a dozen point chunks crosses that line, so 8 MiB
/// keeps nodes in the log.
const NEW_SEGMENT_SIZE: usize = 8 << 20;

/// The segment size to open `dir` with: sled refuses any size but the one a database
/// was created with, which it records in its `conf` file as a line `segment_size: N`
/// (followed, after the text, by a binary checksum).
fn segment_size(dir: &Path) -> usize {
    let conf = std::fs::read(dir.join("conf")).unwrap_or_default();
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size:")?.trim().parse().ok())
        .unwrap_or(NEW_SEGMENT_SIZE)
}

/// Opens the sled database. sled releases the directory lock of a database dropped
/// in this process from background threads, so a reopen right after a drop (an
/// in-process restart) retries the lock for a few seconds.
fn open_db(dir: &Path) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = sled::Config::new()
            .path(dir)
            .cache_capacity(256 * 1024 * 1024)
            .segment_size(segment_size(dir))
            .open();
        match r {
            // sled wraps the lock's EWOULDBLOCK in an error of kind Other.
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

fn sm_tree_name(gen: u64) -> String {
    format!("sm.{gen}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_keeps_the_segment_size_it_was_created_with() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = sled::Config::new()
            .path(dir.path())
            .segment_size(512 << 10)
            .open();
        old.expect("sled with 512 KiB segments")
            .flush()
            .expect("flush");
        assert_eq!(segment_size(dir.path()), 512 << 10);
        Store::open(dir.path()).expect("an older database opens");
        let new = tempfile::tempdir().expect("tempdir");
        drop(Store::open(new.path()).expect("open"));
        assert_eq!(segment_size(new.path()), NEW_SEGMENT_SIZE);
    }

    #[test]
    fn try_load_cluster_never_waits_for_an_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(store.try_load_cluster("c"), Some(Vec::new()));
        let apply = store.gate.write().expect("gate");
        assert_eq!(store.try_load_cluster("c"), None);
        drop(apply);
        assert_eq!(store.try_load_cluster("c"), Some(Vec::new()));
    }

    #[test]
    fn points_stored_one_per_key_are_refused_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            let key = [keys::KS_POINT_V0, b'x'];
            store.sm().insert(key, &b"v"[..]).expect("insert");
            store.db.flush().expect("flush");
        }
        match Store::open(dir.path()) {
            Err(Error::Layout(msg)) => assert!(msg.contains("empty data directory"), "{msg}"),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a store with per-key points opened"),
        }
    }
}
