//! The metadata keyspaces (meta-core): objects `hash -> {property: value}`.
//! Apply side (merge, delete, set-add with optional version checks) and read side.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apply::ApplyCtx;
use crate::txn::Limits;
use crate::{codec, keys, Response, Result, Store};

/// Stored header of one object.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Header {
    /// Revision of the last successful mutation (the ETag).
    version: u64,
    /// Number of properties.
    props: u32,
}

/// One object as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaObject {
    pub version: u64,
    pub fields: BTreeMap<String, String>,
}

/// A page of object ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaList {
    pub hash_ids: Vec<String>,
    /// Set when more ids follow; pass it as `after` to continue.
    pub next: Option<String>,
}

impl ApplyCtx<'_> {
    fn header(&self, hash: &str) -> Result<Option<Header>> {
        self.txn
            .get(&keys::meta_obj(hash))?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// `None` when the expectation holds, else the mismatch response.
    fn check(&self, hash: &str, expect: Option<u64>) -> Result<(Option<Header>, Option<Response>)> {
        let header = self.header(hash)?;
        let current = header.map_or(0, |h| h.version);
        let mismatch = expect.filter(|e| *e != current);
        Ok((
            header,
            mismatch.map(|_| Response::VersionMismatch { current }),
        ))
    }

    fn put_header(&mut self, hash: &str, props: u32) -> Result<u64> {
        let version = self.bump_revision();
        let h = Header { version, props };
        self.txn.put(keys::meta_obj(hash), codec::encode(&h)?);
        Ok(version)
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
            let key = keys::meta_prop(hash, k);
            match self.txn.get(&key)? {
                Some(old) if old == v.as_bytes() => continue,
                Some(_) => {}
                None => added += 1,
            }
            changes.push((key, v.as_bytes().to_vec()));
        }
        let props = header.map_or(0, |h| h.props) + added;
        if props as usize > Limits::MAX_PROPS {
            return Ok(too_many_props());
        }
        let updated = changes.len() as u32;
        for (key, value) in changes {
            self.txn.put(key, value);
        }
        let version = self.put_header(hash, props)?;
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
        for (k, _) in self.txn.scan_prefix(&keys::meta_prop_prefix(hash))? {
            self.txn.delete(k);
            deleted += 1;
        }
        self.txn.delete(keys::meta_obj(hash));
        self.bump_revision();
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
        let key = keys::meta_prop(hash, prop);
        let (Some(h), Some(_)) = (header, self.txn.get(&key)?) else {
            return Ok(Response::NotFound);
        };
        self.txn.delete(key);
        if h.props <= 1 {
            self.txn.delete(keys::meta_obj(hash));
            self.bump_revision();
        } else {
            self.put_header(hash, h.props - 1)?;
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
        let key = keys::meta_prop(hash, prop);
        let old = self.txn.get(&key)?;
        let old = old.as_deref().map(String::from_utf8_lossy);
        let current: Vec<&str> = old
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
        let new_prop = old.is_none() as u32;
        let props = header.map_or(0, |h| h.props) + new_prop;
        if props as usize > Limits::MAX_PROPS {
            return Ok(too_many_props());
        }
        self.txn.put(key, joined.into_bytes());
        let version = self.put_header(hash, props)?;
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

impl Store {
    /// Reads one object with all of its properties.
    pub fn meta_get(&self, hash: &str) -> Result<Option<MetaObject>> {
        let sm = self.sm();
        let Some(h) = sm.get(keys::meta_obj(hash))? else {
            return Ok(None);
        };
        let header: Header = codec::decode(&h)?;
        let mut fields = BTreeMap::new();
        for kv in sm.scan_prefix(keys::meta_prop_prefix(hash)) {
            let (k, v) = kv?;
            if let Some(name) = keys::meta_prop_name(hash, &k) {
                fields.insert(name.to_string(), String::from_utf8_lossy(&v).into_owned());
            }
        }
        Ok(Some(MetaObject {
            version: header.version,
            fields,
        }))
    }

    /// Reads one property and the object's version.
    pub fn meta_get_prop(&self, hash: &str, prop: &str) -> Result<Option<(u64, String)>> {
        let sm = self.sm();
        let Some(h) = sm.get(keys::meta_obj(hash))? else {
            return Ok(None);
        };
        let header: Header = codec::decode(&h)?;
        Ok(sm
            .get(keys::meta_prop(hash, prop))?
            .map(|v| (header.version, String::from_utf8_lossy(&v).into_owned())))
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
            let id = String::from_utf8_lossy(&k[1..]).into_owned();
            if hash_ids.len() == limit {
                next = hash_ids.last().cloned();
                let _ = id;
                break;
            }
            hash_ids.push(id);
        }
        Ok(MetaList { hash_ids, next })
    }

    /// Number of metadata objects (a scan; used by /status).
    pub fn meta_count(&self) -> usize {
        self.sm().scan_prefix([keys::KS_META_OBJ]).count()
    }
}
