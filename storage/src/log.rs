//! Where versions before the [`crate::Wal`] kept the raft log: a keyspace of entries
//! and raft's small durable values (vote, committed, last purged), as opaque bytes
//! encoded by the raft crate via [`crate::codec`]. Kept to move an old database's
//! log into the WAL once ([`Store::clear_legacy_log`] afterwards).

use std::ops::Bound;

use crate::{keys, Result, Store};

impl Store {
    /// Inserts log entries `(index, encoded entry)` in one atomic batch (not fsynced:
    /// call [`Store::flush`]).
    pub fn log_append(&self, entries: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (i, v) in entries {
            batch.insert(&keys::log_index(i), v);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    /// Entries with index in `[start, end)` (end `None` = unbounded), in order.
    pub fn log_range(&self, start: u64, end: Option<u64>) -> Result<Vec<(u64, Vec<u8>)>> {
        let lo = Bound::Included(keys::log_index(start));
        let hi = match end {
            Some(e) => Bound::Excluded(keys::log_index(e)),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for kv in self.log.range::<[u8; 8], _>((lo, hi)) {
            let (k, v) = kv?;
            let idx = keys::parse_log_index(&k)
                .ok_or_else(|| crate::Error::Codec("bad log key".into()))?;
            out.push((idx, v.to_vec()));
        }
        Ok(out)
    }

    /// The last entry of the log, if any.
    ///
    /// Found without iterating backwards (sled 0.34's reverse iterator can panic near
    /// key-byte boundaries): a raft log is contiguous from its first entry to its last
    /// (appends extend it, truncation cuts a suffix, purging a prefix), so the last
    /// index is found by galloping and then bisecting with point lookups.
    pub fn log_last(&self) -> Result<Option<Vec<u8>>> {
        let Some((k, _)) = self.log.first()? else {
            return Ok(None);
        };
        let first =
            keys::parse_log_index(&k).ok_or_else(|| crate::Error::Codec("bad log key".into()))?;
        let exists = |i: u64| self.log.contains_key(keys::log_index(i));
        let (mut lo, mut step) = (first, 1u64);
        while exists(lo.saturating_add(step))? {
            lo += step;
            step = step.saturating_mul(2);
        }
        let mut hi = lo.saturating_add(step);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if exists(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(self.log.get(keys::log_index(lo))?.map(|v| v.to_vec()))
    }

    /// Removes entries with index >= `from` (conflict truncation).
    pub fn log_truncate_from(&self, from: u64) -> Result<()> {
        self.log_remove(Bound::Included(keys::log_index(from)), Bound::Unbounded)
    }

    /// Removes entries with index <= `upto` (after a snapshot).
    pub fn log_purge_upto(&self, upto: u64) -> Result<()> {
        self.log_remove(Bound::Unbounded, Bound::Included(keys::log_index(upto)))
    }

    fn log_remove(&self, lo: Bound<[u8; 8]>, hi: Bound<[u8; 8]>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for k in self.log.range::<[u8; 8], _>((lo, hi)).keys() {
            batch.remove(k?);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }

    /// Reads a raft value ("vote", "committed", "last_purged").
    pub fn raft_value(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.raft_meta.get(name)?.map(|v| v.to_vec()))
    }

    /// Writes a raft value (not fsynced: call [`Store::flush`]).
    pub fn set_raft_value(&self, name: &str, value: Vec<u8>) -> Result<()> {
        self.raft_meta.insert(name, value)?;
        Ok(())
    }

    /// Empties the legacy log trees, durably (once their content is in the WAL).
    pub fn clear_legacy_log(&self) -> Result<()> {
        self.log.clear()?;
        self.raft_meta.clear()?;
        self.flush_durable()
    }
}
