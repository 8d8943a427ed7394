//! The metadata keyspaces (meta-core): objects `hash -> {property: value}`, plus the
//! CID secondary index (`poster` / `backdrop` value -> hash) that apply maintains so
//! that `/file/{cid}` is a lookup, not a scan. Apply side and read side.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apply::ApplyCtx;
use crate::txn::Limits;
use crate::{codec, keys, Response, Result, Store};

/// Properties whose values are CIDs of files, indexed for `/file/{cid}`.
pub const CID_PROPS: [&str; 2] = ["poster", "backdrop"];

/// Stored header of one object.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Header {
    /// Revision of the last successful mutation (the ETag).
    version: u64,
    /// Number of properties.
    props: u32,
    /// Raft index of the entry that last changed the object.
    mod_index: u64,
}

/// One object as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaObject {
    pub version: u64,
    /// Raft index of the entry that last changed the object.
    pub mod_index: u64,
    pub fields: BTreeMap<String, String>,
}

/// Objects per area, as [`Store::counts`] reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub metadata: u64,
    pub services: u64,
    pub engines: u64,
    pub metric_metadata: u64,
}

/// A page of object ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaList {
    pub hash_ids: Vec<String>,
    /// Set when more ids follow; pass it as `after` to continue.
    pub next: Option<String>,
}

fn indexable_cid(v: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(v).ok()?;
    (!s.is_empty() && s.len() <= Limits::MAX_KEY && !s.contains('\0')).then_some(s)
}

impl ApplyCtx<'_> {
    fn header(&self, hash: &str) -> Result<Option<Header>> {
        self.txn
            .get(&keys::meta_obj(hash))?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// The current header and, when `expect` does not hold, the mismatch response.
    fn check(&self, hash: &str, expect: Option<u64>) -> Result<(Option<Header>, Option<Response>)> {
        let header = self.header(hash)?;
        let current = header.map_or(0, |h| h.version);
        let mismatch = expect.filter(|e| *e != current);
        Ok((
            header,
            mismatch.map(|_| Response::VersionMismatch { current }),
        ))
    }

    /// Writes the header; `created`: the object did not exist before.
    fn put_header(&mut self, hash: &str, props: u32, created: bool) -> Result<u64> {
        if created {
            self.add_meta_count(1)?;
        }
        let version = self.bump_revision();
        let h = Header {
            version,
            props,
            mod_index: self.index,
        };
        self.txn.put(keys::meta_obj(hash), codec::encode(&h)?);
        Ok(version)
    }

    fn drop_header(&mut self, hash: &str) -> Result<()> {
        self.add_meta_count(-1)?;
        self.txn.delete(keys::meta_obj(hash));
        self.bump_revision();
        let index = codec::encode(&self.index)?;
        self.txn.put(keys::sys_meta_deleted(), index);
        Ok(())
    }

    fn add_meta_count(&mut self, delta: i64) -> Result<()> {
        let key = keys::sys_meta_count();
        let n: u64 = self.get_decoded(&key)?.unwrap_or(0);
        let n = n.saturating_add_signed(delta);
        self.txn.put(key, codec::encode(&n)?);
        Ok(())
    }

    /// Writes (or with `new` None deletes) one property, keeping the CID index right.
    fn set_prop(&mut self, hash: &str, prop: &str, old: Option<&[u8]>, new: Option<Vec<u8>>) {
        if CID_PROPS.contains(&prop) {
            if let Some(cid) = old.and_then(indexable_cid) {
                self.txn.delete(keys::meta_cid(cid, hash, prop));
            }
            if let Some(cid) = new.as_deref().and_then(indexable_cid) {
                self.txn.put(keys::meta_cid(cid, hash, prop), Vec::new());
            }
        }
        let key = keys::meta_prop(hash, prop);
        match new {
            Some(v) => self.txn.put(key, v),
            None => self.txn.delete(key),
        }
    }

    pub(crate) fn meta_merge(
        &mut self,
        hash: &str,
        fields: &BTreeMap<String, String>,
        expect: Option<u64>,
    ) -> Result<Response> {
        let (header, mismatch) = self.check(hash, expect)?;
        if let Some(r) = mismatch {
            return Ok(r);
        }
        if fields.is_empty() {
            // Nothing to merge: an object exists only while it has properties.
            let version = header.map_or(0, |h| h.version);
            return Ok(Response::MetaWritten {
                version,
                updated: 0,
            });
        }
        let mut changes = Vec::new();
        let mut added = 0u32;
        for (k, v) in fields {
            let old = self.txn.get(&keys::meta_prop(hash, k))?;
            match &old {
                Some(o) if o == v.as_bytes() => continue,
                Some(_) => {}
                None => added += 1,
            }
            changes.push((k, old, v));
        }
        let props = header.map_or(0, |h| h.props) + added;
        if props as usize > Limits::MAX_PROPS {
            return Ok(too_many_props());
        }
        let updated = changes.len() as u32;
        for (k, old, v) in changes {
            self.set_prop(hash, k, old.as_deref(), Some(v.as_bytes().to_vec()));
        }
        let version = self.put_header(hash, props, header.is_none())?;
        Ok(Response::MetaWritten { version, updated })
    }

    pub(crate) fn meta_delete(&mut self, hash: &str, expect: Option<u64>) -> Result<Response> {
        let (header, mismatch) = self.check(hash, expect)?;
        if let Some(r) = mismatch {
            return Ok(r);
        }
        if header.is_none() {
            return Ok(Response::NotFound);
        }
        let mut deleted = 0;
        for (k, v) in self.txn.scan_prefix(&keys::meta_prop_prefix(hash))? {
            let prop = keys::meta_prop_name(hash, &k)
                .unwrap_or_default()
                .to_string();
            self.set_prop(hash, &prop, Some(&v), None);
            deleted += 1;
        }
        self.drop_header(hash)?;
        Ok(Response::MetaDeleted { deleted })
    }

    pub(crate) fn meta_delete_prop(
        &mut self,
        hash: &str,
        prop: &str,
        expect: Option<u64>,
    ) -> Result<Response> {
        let (header, mismatch) = self.check(hash, expect)?;
        if let Some(r) = mismatch {
            return Ok(r);
        }
        let (Some(h), Some(old)) = (header, self.txn.get(&keys::meta_prop(hash, prop))?) else {
            return Ok(Response::NotFound);
        };
        self.set_prop(hash, prop, Some(&old), None);
        if h.props <= 1 {
            self.drop_header(hash)?;
        } else {
            self.put_header(hash, h.props - 1, false)?;
        }
        Ok(Response::MetaDeleted { deleted: 1 })
    }

    pub(crate) fn meta_set_add(
        &mut self,
        hash: &str,
        prop: &str,
        member: &str,
        expect: Option<u64>,
    ) -> Result<Response> {
        let (header, mismatch) = self.check(hash, expect)?;
        if let Some(r) = mismatch {
            return Ok(r);
        }
        let old = self.txn.get(&keys::meta_prop(hash, prop))?;
        let old_text = old.as_deref().map(String::from_utf8_lossy);
        let current: Vec<&str> = old_text
            .as_deref()
            .map(|s| s.split('|').filter(|m| !m.is_empty()).collect())
            .unwrap_or_default();
        if current.contains(&member) {
            let version = header.map_or(0, |h| h.version);
            return Ok(Response::MetaAdded {
                added: false,
                version,
            });
        }
        let joined = if current.is_empty() {
            member.to_string()
        } else {
            format!("{}|{member}", current.join("|"))
        };
        if joined.len() > Limits::MAX_VALUE {
            return Ok(Response::Invalid {
                reason: format!("set would exceed {} bytes", Limits::MAX_VALUE),
            });
        }
        let props = header.map_or(0, |h| h.props) + old.is_none() as u32;
        if props as usize > Limits::MAX_PROPS {
            return Ok(too_many_props());
        }
        self.set_prop(hash, prop, old.as_deref(), Some(joined.into_bytes()));
        let version = self.put_header(hash, props, header.is_none())?;
        Ok(Response::MetaAdded {
            added: true,
            version,
        })
    }
}

fn too_many_props() -> Response {
    Response::Invalid {
        reason: format!("object would exceed {} properties", Limits::MAX_PROPS),
    }
}

fn header_of(sm: &sled::Tree, hash: &str) -> Result<Option<Header>> {
    sm.get(keys::meta_obj(hash))?
        .map(|h| codec::decode(&h))
        .transpose()
}

impl Store {
    /// Reads one object with all of its properties.
    pub fn meta_get(&self, hash: &str) -> Result<Option<MetaObject>> {
        let _consistent = self.read_gate();
        let sm = self.sm();
        let Some(header) = header_of(&sm, hash)? else {
            return Ok(None);
        };
        let mut fields = BTreeMap::new();
        for kv in sm.scan_prefix(keys::meta_prop_prefix(hash)) {
            let (k, v) = kv?;
            if let Some(name) = keys::meta_prop_name(hash, &k) {
                fields.insert(name.to_string(), String::from_utf8_lossy(&v).into_owned());
            }
        }
        Ok(Some(MetaObject {
            version: header.version,
            mod_index: header.mod_index,
            fields,
        }))
    }

    /// Reads one property and the object's version.
    pub fn meta_get_prop(&self, hash: &str, prop: &str) -> Result<Option<(u64, String)>> {
        let _consistent = self.read_gate();
        let sm = self.sm();
        let Some(header) = header_of(&sm, hash)? else {
            return Ok(None);
        };
        Ok(sm
            .get(keys::meta_prop(hash, prop))?
            .map(|v| (header.version, String::from_utf8_lossy(&v).into_owned())))
    }

    /// Whether object `hash` exists (its header; no property is read).
    pub fn meta_exists(&self, hash: &str) -> Result<bool> {
        Ok(header_of(&self.sm(), hash)?.is_some())
    }

    /// The raft index after which a watch of `hash` must wake: the object's
    /// modification index, or for an absent object the index of the last deletion.
    pub fn meta_watch_index(&self, hash: &str) -> Result<u64> {
        let sm = self.sm();
        if let Some(h) = header_of(&sm, hash)? {
            return Ok(h.mod_index);
        }
        Ok(match sm.get(keys::sys_meta_deleted())? {
            Some(v) => codec::decode(&v)?,
            None => 0,
        })
    }

    /// The object whose `poster` or `backdrop` is `cid`, and which of the two it is.
    pub fn meta_by_cid(&self, cid: &str) -> Result<Option<(String, String)>> {
        let prefix = keys::meta_cid_prefix(cid);
        let Some(kv) = self.sm().scan_prefix(&prefix).next() else {
            return Ok(None);
        };
        let (k, _) = kv?;
        let rest = &k[prefix.len()..];
        let sep = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        let hash = String::from_utf8_lossy(&rest[..sep]).into_owned();
        let prop = String::from_utf8_lossy(rest.get(sep + 1..).unwrap_or_default()).into_owned();
        Ok(Some((hash, prop)))
    }

    /// Lists object ids in byte order, strictly after `after`, at most `limit`.
    /// A `limit` of 0 is taken as 1.
    pub fn meta_list(&self, after: Option<&str>, limit: usize) -> Result<MetaList> {
        let limit = limit.max(1);
        let start = match after {
            Some(a) => {
                let mut k = keys::meta_obj(a);
                k.push(0);
                k
            }
            None => vec![keys::KS_META_OBJ],
        };
        let end = vec![keys::KS_META_OBJ + 1];
        let mut hash_ids = Vec::new();
        let mut next = None;
        for kv in self.sm().range(start..end) {
            let (k, _) = kv?;
            if hash_ids.len() == limit {
                next = hash_ids.last().cloned();
                break;
            }
            hash_ids.push(String::from_utf8_lossy(&k[1..]).into_owned());
        }
        Ok(MetaList { hash_ids, next })
    }

    /// Number of metadata objects (one key, kept by apply).
    pub fn meta_count(&self) -> Result<u64> {
        Ok(self.get_sm(&keys::sys_meta_count())?.unwrap_or(0))
    }

    /// How many objects each area holds (`/status`): metadata objects, services,
    /// engines with load counters and metric metadata documents. Each is kept by apply
    /// or in memory; none is a scan of its keyspace.
    pub fn counts(&self) -> Result<Counts> {
        Ok(Counts {
            metadata: self.meta_count()?,
            services: self.service_view().list().len() as u64,
            engines: self.load_view().len() as u64,
            metric_metadata: self.catalog_counts()?.values().sum(),
        })
    }
}

/// Writes the object count into a tree that has objects but no count (a data dir or
/// snapshot of a version before the count), by counting once. Returns whether it did.
/// No count reads as zero, so a tree without objects needs none. The count is a
/// function of the objects, so every node that does this gets the same value.
pub(crate) fn ensure_count(tree: &sled::Tree) -> Result<bool> {
    if tree.get(keys::sys_meta_count())?.is_some() {
        return Ok(false);
    }
    let n = tree.scan_prefix([keys::KS_META_OBJ]).count() as u64;
    if n == 0 {
        return Ok(false);
    }
    tree.insert(keys::sys_meta_count(), codec::encode(&n)?)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_without_the_count_is_counted_once() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("sm").unwrap();
        assert!(
            !ensure_count(&tree).unwrap(),
            "no objects: nothing to write"
        );
        assert_eq!(tree.get(keys::sys_meta_count()).unwrap(), None);
        for h in ["a", "b", "c"] {
            tree.insert(keys::meta_obj(h), vec![1]).unwrap();
            tree.insert(keys::meta_prop(h, "p"), vec![2]).unwrap();
        }
        assert!(ensure_count(&tree).unwrap());
        let n: u64 = codec::decode(&tree.get(keys::sys_meta_count()).unwrap().unwrap()).unwrap();
        assert_eq!(n, 3);
        tree.insert(keys::meta_obj("d"), vec![1]).unwrap();
        assert!(!ensure_count(&tree).unwrap(), "a count present is kept");
    }
}
