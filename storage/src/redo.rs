//! Atomic applies without a sled batch.
//!
//! sled 0.34 makes a `Batch` atomic by rolling its I/O buffer before and after the
//! batch (`PageCache::pin_log`), so every batch seals a buffer and hands its write to
//! sled's thread pool, waking all of its threads. One batch per apply call made that
//! the largest single cost of a follower. A small apply is instead written key by key
//! after a *redo record*: one value under [`keys::sys_redo`] holding the call's whole
//! write set (`last_applied` included). sled recovers a prefix of one thread's writes
//! in log order (recovery stops at the first gap in the log, which is also what makes
//! its batches atomic), so after a crash either the redo record is missing, and with it
//! every write that followed it, or it is present and [`replay`] at open rewrites its
//! values, finishing the apply. Rewriting final values is idempotent, so an apply that
//! had completed is replayed harmlessly. Large write sets (over [`MAX_REDO`], below
//! sled's blob threshold) still use one batch, which also drops the redo record.
//!
//! Record layout: per write, `u32` key length, key, then `u32::MAX` for a delete or
//! the `u32` value length and the value. Lengths are big-endian.

use std::collections::BTreeMap;

use crate::{keys, Error, Result};

/// Largest write set (keys plus values, bytes) written key by key behind a redo record.
pub(crate) const MAX_REDO: usize = 64 * 1024;

/// A write set: key -> new value, `None` for a delete.
pub(crate) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Bytes of keys and values in `writes`.
pub(crate) fn weight(writes: &Writes) -> usize {
    writes
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum()
}

/// Writes `writes` to `tree` as one atomic unit (see the module doc).
pub(crate) fn commit(tree: &sled::Tree, writes: Writes) -> Result<()> {
    if weight(&writes) > MAX_REDO {
        return write_as_batch(tree, writes);
    }
    tree.insert(keys::sys_redo(), encode(&writes))?;
    for (k, v) in writes {
        match v {
            Some(v) => tree.insert(k, v)?,
            None => tree.remove(k)?,
        };
    }
    Ok(())
}

/// Finishes the apply a crash interrupted, if any: rewrites the redo record's values
/// and drops the record, in one batch. Returns whether there was a record.
pub(crate) fn replay(tree: &sled::Tree) -> Result<bool> {
    let Some(record) = tree.get(keys::sys_redo())? else {
        return Ok(false);
    };
    write_as_batch(tree, decode(&record)?)?;
    Ok(true)
}

/// Writes `writes` and drops the redo record, in one sled batch.
fn write_as_batch(tree: &sled::Tree, writes: Writes) -> Result<()> {
    let mut batch = sled::Batch::default();
    for (k, v) in writes {
        match v {
            Some(v) => batch.insert(k, v),
            None => batch.remove(k),
        }
    }
    batch.remove(keys::sys_redo());
    tree.apply_batch(batch)?;
    Ok(())
}

const DELETE: u32 = u32::MAX;

pub(crate) fn encode(writes: &Writes) -> Vec<u8> {
    let mut out = Vec::with_capacity(weight(writes) + 8 * writes.len());
    for (k, v) in writes {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&DELETE.to_be_bytes()),
        }
    }
    out
}

pub(crate) fn decode(mut bytes: &[u8]) -> Result<Writes> {
    let mut writes = Writes::new();
    while !bytes.is_empty() {
        let key = take(&mut bytes)?.ok_or_else(corrupt)?;
        let value = take(&mut bytes)?;
        writes.insert(key, value);
    }
    Ok(writes)
}

/// One length-prefixed field; `None` for the delete marker.
fn take(bytes: &mut &[u8]) -> Result<Option<Vec<u8>>> {
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = u32::from_be_bytes(*len);
    if len == DELETE {
        *bytes = rest;
        return Ok(None);
    }
    let len = len as usize;
    if rest.len() < len {
        return Err(corrupt());
    }
    let (field, rest) = rest.split_at(len);
    *bytes = rest;
    Ok(Some(field.to_vec()))
}

fn corrupt() -> Error {
    Error::Engine("the redo record of the last apply is corrupt".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Writes {
        let mut w = Writes::new();
        w.insert(b"a".to_vec(), Some(b"1".to_vec()));
        w.insert(b"b".to_vec(), None);
        w.insert(Vec::new(), Some(Vec::new()));
        w
    }

    #[test]
    fn records_round_trip() {
        assert_eq!(decode(&encode(&sample())).unwrap(), sample());
        assert_eq!(decode(&[]).unwrap(), Writes::new());
    }

    #[test]
    fn a_cut_record_never_decodes_to_other_values() {
        let bytes = encode(&sample());
        for cut in 1..bytes.len() {
            let r = decode(&bytes[..cut]);
            // A cut between two whole writes decodes to fewer writes; none may
            // decode to a different value.
            if let Ok(w) = r {
                assert!(w.len() < sample().len(), "cut {cut} decoded {w:?}");
                for (k, v) in &w {
                    assert_eq!(sample().get(k), Some(v));
                }
            }
        }
    }

    #[test]
    fn small_sets_leave_a_record_and_large_ones_drop_it() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        tree.insert(b"b", b"old").unwrap();
        commit(&tree, sample()).unwrap();
        assert_eq!(tree.get(b"a").unwrap().unwrap(), b"1");
        assert!(tree.get(b"b").unwrap().is_none());
        let record = tree.get(keys::sys_redo()).unwrap().unwrap();
        assert_eq!(decode(&record).unwrap(), sample());

        let mut large = Writes::new();
        large.insert(b"big".to_vec(), Some(vec![7; MAX_REDO + 1]));
        commit(&tree, large).unwrap();
        assert!(tree.get(keys::sys_redo()).unwrap().is_none());
        assert_eq!(tree.get(b"big").unwrap().unwrap().len(), MAX_REDO + 1);
    }

    #[test]
    fn replay_finishes_a_half_written_apply_and_drops_the_record() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        assert!(!replay(&tree).unwrap());
        tree.insert(b"b", b"old").unwrap();
        // The record and none of its writes: as a crash right after the record.
        tree.insert(keys::sys_redo(), encode(&sample())).unwrap();
        assert!(replay(&tree).unwrap());
        assert_eq!(tree.get(b"a").unwrap().unwrap(), b"1");
        assert!(tree.get(b"b").unwrap().is_none());
        assert!(tree.get(keys::sys_redo()).unwrap().is_none());
    }
}
