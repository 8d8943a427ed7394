//! Where versions before the [`crate::Wal`] kept the raft log: sled trees of entries
//! and of raft's small durable values (vote, committed, last purged), as opaque bytes
//! encoded by the raft crate via [`crate::codec`]. The store holds no handle to them:
//! each call opens the tree it needs, and reads of a tree the database lacks find
//! nothing without creating it. The `upgrade` module moves their content into the WAL
//! and drops them; tests write them to fabricate an older database.

use std::ops::Bound;

use crate::{keys, Result, Store};

/// The tree of log entries, `index BE` -> encoded entry.
const LOG_TREE: &str = "raft_log";
/// The tree of raft values, name -> encoded value.
const META_TREE: &str = "raft_meta";

impl Store {
    /// Inserts log entries `(index, encoded entry)` in one atomic batch (not fsynced:
    /// call [`Store::flush_durable`]).
    pub fn log_append(&self, entries: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (i, v) in entries {
            batch.insert(&keys::log_index(i), v);
        }
        self.db.open_tree(LOG_TREE)?.apply_batch(batch)?;
        Ok(())
    }

    /// Entries with index in `[start, end)` (end `None` = unbounded), in order.
    pub fn log_range(&self, start: u64, end: Option<u64>) -> Result<Vec<(u64, Vec<u8>)>> {
        let Some(log) = self.legacy_tree(LOG_TREE)? else {
            return Ok(Vec::new());
        };
        let lo = Bound::Included(keys::log_index(start));
        let hi = match end {
            Some(e) => Bound::Excluded(keys::log_index(e)),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for kv in log.range::<[u8; 8], _>((lo, hi)) {
            let (k, v) = kv?;
            let idx = keys::parse_log_index(&k)
                .ok_or_else(|| crate::Error::Codec("bad log key".into()))?;
            out.push((idx, v.to_vec()));
        }
        Ok(out)
    }

    /// Reads a raft value ("vote", "committed", "last_purged").
    pub fn raft_value(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(meta) = self.legacy_tree(META_TREE)? else {
            return Ok(None);
        };
        Ok(meta.get(name)?.map(|v| v.to_vec()))
    }

    /// Writes a raft value (not fsynced: call [`Store::flush_durable`]).
    pub fn set_raft_value(&self, name: &str, value: Vec<u8>) -> Result<()> {
        self.db.open_tree(META_TREE)?.insert(name, value)?;
        Ok(())
    }

    /// Drops the legacy log trees, durably (once their content is in the WAL).
    pub fn clear_legacy_log(&self) -> Result<()> {
        self.db.drop_tree(LOG_TREE)?;
        self.db.drop_tree(META_TREE)?;
        self.flush_durable()
    }

    /// Whether the database has a legacy log tree, even an empty one.
    pub(crate) fn has_legacy_log(&self) -> bool {
        self.has_tree(LOG_TREE) || self.has_tree(META_TREE)
    }

    /// Whether the legacy log trees hold nothing (or are absent).
    pub(crate) fn legacy_log_is_empty(&self) -> Result<bool> {
        for name in [LOG_TREE, META_TREE] {
            if let Some(tree) = self.legacy_tree(name)? {
                if !tree.is_empty() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn has_tree(&self, name: &str) -> bool {
        let names = self.db.tree_names();
        names.iter().any(|n| n.as_ref() == name.as_bytes())
    }

    /// The tree `name` if the database has it (never creating it).
    fn legacy_tree(&self, name: &str) -> Result<Option<sled::Tree>> {
        if !self.has_tree(name) {
            return Ok(None);
        }
        Ok(Some(self.db.open_tree(name)?))
    }
}
