//! Where versions before the [`crate::Wal`] kept the raft log: a keyspace of entries
//! and raft's small durable values (vote, committed, last purged), as opaque bytes
//! encoded by the raft crate via [`crate::codec`]. Kept to move an old database's
//! log into the WAL once ([`Store::clear_legacy_log`] afterwards).

use std::ops::Bound;

use crate::{keys, Result, Store};

impl Store {
    /// Inserts log entries `(index, encoded entry)` in one atomic batch (not fsynced:
    /// call [`Store::flush_durable`]).
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

    /// Reads a raft value ("vote", "committed", "last_purged").
    pub fn raft_value(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.raft_meta.get(name)?.map(|v| v.to_vec()))
    }

    /// Writes a raft value (not fsynced: call [`Store::flush_durable`]).
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
