//! Point-in-time export of the state-machine tree while apply goes on.
//!
//! sled has no snapshot read, so a scan of the tree that apply writes meanwhile would
//! mix states. [`Store::begin_export`] fixes the state as of the moment it is called
//! (it takes the store's gate, so no apply commit is half done then); from then on,
//! every apply commit first hands the keys it is about to write to the export's
//! [`Capture`], and [`Export::write_to`] scans the tree, replacing what changed by what
//! the capture kept:
//!
//! - the scan records how far it has got (`cursor`, the last key it wrote). A key at or
//!   before the cursor went out with its value from the start, so a commit only notes
//!   it as written;
//! - a key past the cursor has its value from the start (or its absence) kept; the scan
//!   skips it when it gets there, and the kept values are written after the scan.
//!
//! A scan step reads a pair from sled and then, under the capture's lock, checks that
//! the key was not kept; a commit keeps a key's old value under the same lock *before*
//! writing the key. So a pair the scan read after its change is always found kept, and
//! a pair not found kept was read before any change. The memory held is the old values
//! of keys changed ahead of the scan while it runs.
//!
//! Snapshot format: magic `MCSNAP1\n`, then records `u32 BE key length, key, u32 BE
//! value length, value` in no particular order, then a zero-length key as terminator.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{keys, Error, Result, Store};

pub(crate) const MAGIC: &[u8; 8] = b"MCSNAP1\n";

/// What the capture keeps of a key changed during the export.
enum Kept {
    /// The scan had already written the key when it changed.
    Written,
    /// The key's value at the start (`None`: it did not exist), to write after the scan.
    Old(Option<sled::IVec>),
}

#[derive(Default)]
struct Progress {
    /// The last key the scan wrote.
    cursor: Option<sled::IVec>,
    kept: HashMap<Vec<u8>, Kept>,
    /// The scan is over: commits need not keep anything any more.
    ended: bool,
    /// A snapshot install replaced the tree under the export.
    replaced: bool,
}

/// The part of a running export that apply commits talk to.
pub(crate) struct Capture {
    tree_name: sled::IVec,
    progress: Mutex<Progress>,
}

impl Capture {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().expect("export capture poisoned")
    }

    /// Keeps what `keys` hold in `tree` now, before a commit writes them. Called by
    /// apply under the store's exclusive gate.
    pub(crate) fn preserve<'k>(
        &self,
        tree: &sled::Tree,
        keys: impl Iterator<Item = &'k Vec<u8>>,
    ) -> Result<()> {
        if tree.name() != self.tree_name {
            return Ok(());
        }
        let mut p = self.lock();
        if p.ended {
            return Ok(());
        }
        let redo = keys::sys_redo();
        for k in keys {
            if *k == redo || p.kept.contains_key(k) {
                continue;
            }
            let written = p
                .cursor
                .as_ref()
                .is_some_and(|c| k.as_slice() <= c.as_ref());
            let kept = if written {
                Kept::Written
            } else {
                Kept::Old(tree.get(k)?)
            };
            p.kept.insert(k.clone(), kept);
        }
        Ok(())
    }

    /// Ends the export as failed: the tree it reads is being replaced.
    pub(crate) fn replaced(&self) {
        let mut p = self.lock();
        p.ended = true;
        p.replaced = true;
    }
}

/// A state-machine export fixed at one applied index, written by [`Export::write_to`].
/// A few may run at once (a snapshot build beside backups), each with its own capture;
/// dropping one ends it and frees what it kept.
pub struct Export {
    store: Store,
    tree: sled::Tree,
    capture: Arc<Capture>,
    applied: u64,
    applied_state: Option<Vec<u8>>,
}

impl Store {
    /// Fixes the state machine as it is now for an export, which may then be written
    /// while apply goes on. Fails if too many exports are running.
    pub fn begin_export(&self) -> Result<Export> {
        let _exclusive = self.write_gate();
        let tree = self.sm();
        let applied_state = tree.get(keys::sys_applied())?.map(|v| v.to_vec());
        let capture = Arc::new(Capture {
            tree_name: tree.name(),
            progress: Mutex::new(Progress::default()),
        });
        self.set_capture(capture.clone())?;
        Ok(Export {
            store: self.clone(),
            tree,
            capture,
            applied: self.applied_unlocked(),
            applied_state,
        })
    }

    /// Writes every pair of the state machine to `out` (an export begun and written).
    pub fn export_snapshot(&self, out: &mut impl Write) -> Result<u64> {
        self.begin_export()?.write_to(out)
    }
}

impl Export {
    /// The applied index of the state this export writes.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// The raft layer's applied state (as given to [`Store::apply`]) of the state
    /// this export writes; `None` for a store never applied to.
    pub fn applied_state(&self) -> Option<&[u8]> {
        self.applied_state.as_deref()
    }

    /// Writes the state as of [`Store::begin_export`] to `out`; returns the number of
    /// pairs. Fails if a snapshot install replaced the state meanwhile.
    pub fn write_to(self, out: &mut impl Write) -> Result<u64> {
        out.write_all(MAGIC).map_err(Error::snapshot_io)?;
        let redo = keys::sys_redo();
        let mut n = 0;
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            if *k == *redo {
                continue;
            }
            {
                let mut p = self.capture.lock();
                if p.kept.contains_key(k.as_ref()) {
                    continue;
                }
                p.cursor = Some(k.clone());
            }
            write_pair(out, &k, &v)?;
            n += 1;
        }
        let (kept, replaced) = {
            let mut p = self.capture.lock();
            p.ended = true;
            (std::mem::take(&mut p.kept), p.replaced)
        };
        if replaced {
            return Err(Error::Snapshot(
                "a snapshot install replaced the state during the export".into(),
            ));
        }
        for (k, kept) in kept {
            if let Kept::Old(Some(v)) = kept {
                write_pair(out, &k, &v)?;
                n += 1;
            }
        }
        out.write_all(&0u32.to_be_bytes())
            .and_then(|()| out.flush())
            .map_err(Error::snapshot_io)?;
        Ok(n)
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        self.store.clear_capture(&self.capture);
    }
}

fn write_pair(out: &mut impl Write, k: &[u8], v: &[u8]) -> Result<()> {
    write_chunk(out, k)?;
    write_chunk(out, v)
}

fn write_chunk(out: &mut impl Write, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| Error::Snapshot("value over 4 GiB".into()))?;
    out.write_all(&len.to_be_bytes())
        .and_then(|()| out.write_all(bytes))
        .map_err(Error::snapshot_io)
}
