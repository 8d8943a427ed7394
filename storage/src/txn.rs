//! A write overlay over the state-machine tree: apply reads its own writes through
//! it, and the whole overlay (every command of every entry in one apply call, plus
//! `last_applied`) is committed as one atomic unit ([`crate::redo`]).

use std::collections::BTreeMap;

use crate::export::Capture;
use crate::Result;

/// Limits that apply re-checks defensively. The edge enforces the same limits with a
/// clear message; these must be identical on every node (they are compile-time).
#[derive(Debug, Clone, Copy)]
pub struct Limits;

impl Limits {
    /// Longest hash id, property name (bytes).
    pub const MAX_KEY: usize = 512;
    /// Longest property value (bytes).
    pub const MAX_VALUE: usize = 64 * 1024;
    /// Most properties one object may hold.
    pub const MAX_PROPS: usize = 4096;
}

pub(crate) struct Txn<'a> {
    tree: &'a sled::Tree,
    writes: crate::redo::Writes,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(tree: &'a sled::Tree) -> Self {
        Txn {
            tree,
            writes: crate::redo::Writes::new(),
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(w) = self.writes.get(key) {
            return Ok(w.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// All live pairs under `prefix`, in key order, own writes included.
    /// (Every read of apply goes through the overlay: nodes group entries into apply
    /// calls differently, so reading the tree alone would not be deterministic.)
    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for kv in self.tree.scan_prefix(prefix) {
            let (k, v) = kv?;
            merged.insert(k.to_vec(), Some(v.to_vec()));
        }
        for (k, v) in self.writes.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// The live keys under `prefix`, in key order, own writes included; no value is
    /// copied.
    pub(crate) fn scan_prefix_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        let own = self
            .writes
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        live_keys(self.tree.scan_prefix(prefix).keys(), own)
    }

    /// The live keys `k` with `from <= k < to`, in key order, own writes included.
    /// Bounded on both sides, so a scan for what is due reads only what is due.
    pub(crate) fn keys_between(&self, from: &[u8], to: &[u8]) -> Result<Vec<Vec<u8>>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let own = self.writes.range(from.to_vec()..to.to_vec());
        live_keys(self.tree.range(from..to).keys(), own)
    }

    /// The first `k` live keys under `prefix`, in key order, own writes included;
    /// reads no further into the tree than it needs.
    pub(crate) fn first_keys_under(&self, prefix: &[u8], k: usize) -> Result<Vec<Vec<u8>>> {
        let own = || {
            self.writes
                .range(prefix.to_vec()..)
                .take_while(|(key, _)| key.starts_with(prefix))
        };
        // Each of this transaction's removals may hide one of the first stored keys.
        let removed = own().filter(|(_, v)| v.is_none()).count();
        let stored = self.tree.scan_prefix(prefix).keys().take(k + removed);
        let mut out = live_keys(stored, own())?;
        out.truncate(k);
        Ok(out)
    }

    /// The writes so far to keys under `prefix` (`None`: removed), in key order.
    pub(crate) fn writes_under(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.writes
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Writes the overlay to the tree, first handing its keys to the running exports.
    pub(crate) fn commit(self, exports: &[std::sync::Arc<Capture>]) -> Result<()> {
        for c in exports {
            c.preserve(self.tree, self.writes.keys())?;
        }
        crate::redo::commit(self.tree, self.writes)
    }
}

/// The keys of `tree` overlaid with the writes `own` of the same range (`None`: removed),
/// in key order, without the removed ones.
fn live_keys<'w>(
    tree: impl Iterator<Item = sled::Result<sled::IVec>>,
    own: impl Iterator<Item = (&'w Vec<u8>, &'w Option<Vec<u8>>)>,
) -> Result<Vec<Vec<u8>>> {
    let mut merged: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    for k in tree {
        merged.insert(k?.to_vec(), true);
    }
    for (k, v) in own {
        merged.insert(k.clone(), v.is_some());
    }
    Ok(merged
        .into_iter()
        .filter_map(|(k, live)| live.then_some(k))
        .collect())
}
