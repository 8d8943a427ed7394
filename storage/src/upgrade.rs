//! The conversions that bring a database written by an earlier version to the layout
//! this one reads, in one place and in the order they run.
//!
//! An older data directory may lack what this version keeps beside the data (an index,
//! a count) or keep something where this version no longer looks. Rather than have
//! every reader cope with both layouts, each difference has a step here that converts
//! the database when it opens. A step finds out for itself whether it is needed, from
//! what the database holds, so running the steps again changes nothing: they run at
//! every open.
//!
//! [`STEPS`] work on the state-machine tree. [`Store::open`] runs them all, in order,
//! before anything reads the tree; the redo record is replayed first so that the later
//! steps see the last apply whole. A snapshot's tree (which a leader of an older
//! version may have written) gets the steps marked `on_install` before it is switched
//! in.
//!
//! The raft log's step, [`Store::upgrade_raft_log`], runs last and apart from the list:
//! it needs the [`Wal`], which the raft crate opens after the store, in a directory of
//! its choosing, and it reads the raft layer's encoding of the last purged log id. The
//! raft crate calls it once, when it opens its log.
//!
//! Data the code reads as it is needs no step: row-encoded point chunks are read beside
//! column chunks and rewritten only when retention trims them (see `chunk`).

use std::path::Path;

use crate::{keys, meta, redo, service_due, Error, Result, Store, Wal};

/// One conversion of the state-machine tree.
pub(crate) struct Step {
    /// Converts the tree if it needs it; returns whether it changed anything.
    run: fn(&sled::Tree) -> Result<bool>,
    /// Logged when it changed the tree at open.
    done: &'static str,
    /// Whether a snapshot's tree gets it too when installed.
    on_install: bool,
}

/// A redo record in the tree is an apply a crash cut short: its values are rewritten
/// and the record dropped (see `redo`).
const FINISH_INTERRUPTED_APPLY: Step = Step {
    run: redo::replay,
    done: "finished the apply a crash interrupted (redo record replayed)",
    on_install: false,
};

/// Points stored one per key ([`keys::KS_POINT_V0`]) have no conversion: a tree
/// holding any is refused.
const REFUSE_POINTS_PER_KEY: Step = Step {
    run: refuse_points_per_key,
    done: "",
    on_install: false,
};

/// Services with a deadline beside an empty deadline index ([`keys::KS_SERVICE_DUE`])
/// are a tree from before the index: it is built from the services.
const SERVICE_DEADLINE_INDEX: Step = Step {
    run: service_due::ensure_index,
    done: "built the services' deadline index",
    on_install: true,
};

/// Metadata objects without a kept count ([`keys::sys_meta_count`]) are a tree from
/// before the count: they are counted.
const META_OBJECT_COUNT: Step = Step {
    run: meta::ensure_count,
    done: "counted the metadata objects",
    on_install: true,
};

/// The steps on the state-machine tree, in the order they run.
pub(crate) const STEPS: &[Step] = &[
    FINISH_INTERRUPTED_APPLY,
    REFUSE_POINTS_PER_KEY,
    SERVICE_DEADLINE_INDEX,
    META_OBJECT_COUNT,
];

/// Runs every step on `tree`, the state machine of the database in `dir`, in order.
pub(crate) fn at_open(dir: &Path, tree: &sled::Tree) -> Result<()> {
    for step in STEPS {
        if (step.run)(tree).map_err(|e| naming_dir(dir, e))? {
            tracing::info!("{}", step.done);
        }
    }
    Ok(())
}

/// Runs the steps a snapshot's tree needs on `tree`, in order, before it is switched in.
pub(crate) fn at_install(tree: &sled::Tree) -> Result<()> {
    for step in STEPS.iter().filter(|s| s.on_install) {
        (step.run)(tree)?;
    }
    Ok(())
}

fn refuse_points_per_key(tree: &sled::Tree) -> Result<bool> {
    if tree.scan_prefix([keys::KS_POINT_V0]).next().is_none() {
        return Ok(false);
    }
    Err(Error::Layout(
        "holds metric points stored one per key (before point chunks); \
         this version cannot read them: start from an empty data directory"
            .into(),
    ))
}

/// A layout error with the data directory it is about in front.
fn naming_dir(dir: &Path, e: Error) -> Error {
    match e {
        Error::Layout(msg) => Error::Layout(format!("{} {msg}", dir.display())),
        e => e,
    }
}

/// Names of the raft values in the legacy log trees.
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// What the legacy log trees hold (see `log`).
struct LegacyLog {
    vote: Option<Vec<u8>>,
    committed: Option<Vec<u8>>,
    purged: Option<Vec<u8>>,
    entries: Vec<(u64, Vec<u8>)>,
}

impl LegacyLog {
    fn read(store: &Store) -> Result<LegacyLog> {
        Ok(LegacyLog {
            vote: store.raft_value(VOTE)?,
            committed: store.raft_value(COMMITTED)?,
            purged: store.raft_value(LAST_PURGED)?,
            entries: store.log_range(0, None)?,
        })
    }

    /// Whether there is a log to move (a committed id alone is not one).
    fn holds_a_log(&self) -> bool {
        self.vote.is_some() || self.purged.is_some() || !self.entries.is_empty()
    }

    /// Writes it all to `wal` and syncs it.
    fn move_into(self, wal: &Wal, purged_index: impl FnOnce(&[u8]) -> Result<u64>) -> Result<()> {
        if let Some(v) = &self.vote {
            wal.set_vote(v)?;
        }
        if let Some(c) = &self.committed {
            wal.set_committed(c);
        }
        if let Some(p) = &self.purged {
            wal.purge_upto(purged_index(p)?, p)?;
        }
        wal.append(self.entries)?;
        wal.sync()
    }
}

impl Store {
    /// The raft log's step, run by the raft crate when it opens `wal`: a database from
    /// before the WAL keeps its log in sled trees (`raft_log`, `raft_meta`). If `wal` is
    /// empty and the trees hold a log, the log moves into `wal` (synced) and the trees
    /// are dropped; trees that hold nothing are dropped too; a database without them
    /// has nothing to do. `purged_index` reads the index of the raft layer's encoded
    /// last purged id.
    pub fn upgrade_raft_log(
        &self,
        wal: &Wal,
        purged_index: impl FnOnce(&[u8]) -> Result<u64>,
    ) -> Result<()> {
        if !self.has_legacy_log() {
            return Ok(());
        }
        if wal.is_empty() {
            let old = LegacyLog::read(self)?;
            if old.holds_a_log() {
                tracing::info!(
                    entries = old.entries.len(),
                    "moving the raft log out of the database"
                );
                old.move_into(wal, purged_index)?;
                return self.clear_legacy_log();
            }
        }
        if self.legacy_log_is_empty()? {
            self.clear_legacy_log()?;
        }
        Ok(())
    }
}
