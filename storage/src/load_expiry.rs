//! Expiry of load state by name. The leader decides what is silent on its own monotonic
//! clock (the root crate's `liveness` module) and names each item with the version it
//! saw; apply removes an item only if it is still that version, so nothing written
//! after the leader chose it is lost, and no wall-clock comparison between two nodes
//! is ever made. The readers here give the leader what it renews and the versions it
//! names.

use crate::apply::ApplyCtx;
use crate::command::{LoadExpiry, LoadOutcome};
use crate::load::{Request, Tombstone};
use crate::{codec, keys, EngineLoad, Response, Result, Store};

/// The load state a leader tracks: live requests with their engine, tombstones, engines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadItems {
    /// (request id, cluster, ip)
    pub requests: Vec<(String, String, String)>,
    pub tombstones: Vec<String>,
    /// (cluster, ip)
    pub engines: Vec<(String, String)>,
}

impl ApplyCtx<'_> {
    /// Removes what `e` names that is still the version named: engines first, so an
    /// engine named with its requests goes even though their removal touches it.
    pub(crate) fn load_expire_named(&mut self, e: &LoadExpiry) -> Result<Response> {
        let mut engines = 0;
        for (cluster, ip, updated) in &e.engines {
            let key = keys::load_engine(cluster, ip);
            let current: Option<EngineLoad> = self.get_decoded(&key)?;
            if current.is_some_and(|c| c.updated_ns == *updated) {
                self.txn.delete(key);
                engines += 1;
            }
        }
        let mut requests = 0;
        for (id, created) in &e.requests {
            let req: Option<Request> = self.get_decoded(&keys::by_id(keys::KS_LOAD_REQ, id))?;
            if let Some(req) = req.filter(|r| r.created_ns == *created) {
                self.remove_request(id, &req, e.now_ns)?;
                requests += 1;
            }
        }
        let mut tombstones = 0;
        for (id, created) in &e.tombstones {
            let t: Option<Tombstone> = self.get_decoded(&keys::by_id(keys::KS_LOAD_TOMB, id))?;
            if let Some(t) = t.filter(|t| t.created_ns() == *created) {
                self.drop_tombstone(id, t);
                tombstones += 1;
            }
        }
        Ok(Response::Load(LoadOutcome::Expired {
            requests,
            engines,
            tombstones,
        }))
    }
}

impl Store {
    /// Every live request, tombstone and engine.
    pub fn load_items(&self) -> Result<LoadItems> {
        let mut items = LoadItems::default();
        self.scan_paged(&[keys::KS_LOAD_REQ], |k, v| {
            let req: Request = codec::decode(v)?;
            items.requests.push((id_of(k), req.cluster, req.ip));
            Ok(true)
        })?;
        self.scan_paged(&[keys::KS_LOAD_TOMB], |k, _| {
            items.tombstones.push(id_of(k));
            Ok(true)
        })?;
        items.engines = (self.load_engines()?.into_iter())
            .map(|(cluster, ip, _)| (cluster, ip))
            .collect();
        Ok(items)
    }

    /// The named items that exist, each with its current version, as an expiry of them.
    pub fn load_versions(
        &self,
        requests: &[String],
        tombstones: &[String],
        engines: &[(String, String)],
        now_ns: u64,
    ) -> Result<LoadExpiry> {
        let _consistent = self.read_gate();
        let sm = self.sm();
        let get = |key: Vec<u8>| sm.get(key);
        let mut e = LoadExpiry {
            now_ns,
            ..LoadExpiry::default()
        };
        for id in requests {
            if let Some(v) = get(keys::by_id(keys::KS_LOAD_REQ, id))? {
                let req: Request = codec::decode(&v)?;
                e.requests.push((id.clone(), req.created_ns));
            }
        }
        for id in tombstones {
            if let Some(v) = get(keys::by_id(keys::KS_LOAD_TOMB, id))? {
                let t: Tombstone = codec::decode(&v)?;
                e.tombstones.push((id.clone(), t.created_ns()));
            }
        }
        for (cluster, ip) in engines {
            if let Some(v) = get(keys::load_engine(cluster, ip))? {
                let l: EngineLoad = codec::decode(&v)?;
                e.engines.push((cluster.clone(), ip.clone(), l.updated_ns));
            }
        }
        Ok(e)
    }
}

/// The id of a [`keys::by_id`] key.
fn id_of(key: &[u8]) -> String {
    String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned()
}
