//! The load keyspaces (Metadata Center): per-engine counters of in-flight inference
//! requests, the requests themselves, and tombstones for requests whose finish
//! arrived before their add (the client raced two nodes) or that just finished (so a
//! retried add arriving late does not count again); tombstones live for
//! `tombstone_ttl`. Times are unix ns carried by the commands; an engine's
//! `updated_ns` never moves back. Counters never go below zero.

use serde::{Deserialize, Serialize};

use crate::apply::ApplyCtx;
use crate::command::LoadOutcome;
use crate::{codec, keys, Response, Result, Store};

/// Counters of one engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineLoad {
    pub queued_req_num: u64,
    pub prompt_length: u64,
    /// Unix ns of the last change.
    pub updated_ns: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) cluster: String,
    pub(crate) ip: String,
    prompt_length: u64,
    prompt_done: bool,
    pub(crate) created_ns: u64,
}

/// What a tombstone stands for: the first token, or the whole request, came early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Tombstone {
    PromptDone { created_ns: u64 },
    Done { created_ns: u64 },
}

impl Tombstone {
    pub(crate) fn created_ns(self) -> u64 {
        match self {
            Tombstone::PromptDone { created_ns } | Tombstone::Done { created_ns } => created_ns,
        }
    }
}

impl ApplyCtx<'_> {
    fn engine(&self, cluster: &str, ip: &str) -> Result<EngineLoad> {
        Ok(self
            .get_decoded(&keys::load_engine(cluster, ip))?
            .unwrap_or_default())
    }

    pub(crate) fn put_engine(&mut self, cluster: &str, ip: &str, e: &EngineLoad) -> Result<()> {
        self.txn
            .put(keys::load_engine(cluster, ip), codec::encode(e)?);
        Ok(())
    }

    fn put_tombstone(&mut self, id: &str, t: Tombstone) -> Result<()> {
        self.txn
            .put(keys::by_id(keys::KS_LOAD_TOMB, id), codec::encode(&t)?);
        self.txn.put(
            keys::by_age(keys::KS_LOAD_TOMB_AGE, t.created_ns(), id),
            Vec::new(),
        );
        Ok(())
    }

    pub(crate) fn drop_tombstone(&mut self, id: &str, t: Tombstone) {
        self.txn.delete(keys::by_id(keys::KS_LOAD_TOMB, id));
        self.txn
            .delete(keys::by_age(keys::KS_LOAD_TOMB_AGE, t.created_ns(), id));
    }

    pub(crate) fn load_add(
        &mut self,
        cluster: &str,
        id: &str,
        ip: &str,
        prompt: u64,
        now: u64,
    ) -> Result<Response> {
        let tomb: Option<Tombstone> = self.get_decoded(&keys::by_id(keys::KS_LOAD_TOMB, id))?;
        if let Some(t @ Tombstone::Done { .. }) = tomb {
            self.drop_tombstone(id, t);
            return Ok(Response::Load(LoadOutcome::Cancelled));
        }
        if self.txn.get(&keys::by_id(keys::KS_LOAD_REQ, id))?.is_some() {
            return Ok(Response::Load(LoadOutcome::Duplicate));
        }
        let prompt_done = tomb.is_some();
        if let Some(t) = tomb {
            self.drop_tombstone(id, t);
        }
        let req = Request {
            cluster: cluster.into(),
            ip: ip.into(),
            prompt_length: prompt,
            prompt_done,
            created_ns: now,
        };
        self.txn
            .put(keys::by_id(keys::KS_LOAD_REQ, id), codec::encode(&req)?);
        self.txn
            .put(keys::by_age(keys::KS_LOAD_REQ_AGE, now, id), Vec::new());
        let mut e = self.engine(cluster, ip)?;
        e.queued_req_num += 1;
        if !prompt_done {
            e.prompt_length = e.prompt_length.saturating_add(prompt);
        }
        // Nodes stamp their own clocks: a lagging one must not move the time back.
        e.updated_ns = e.updated_ns.max(now);
        self.put_engine(cluster, ip, &e)?;
        Ok(Response::Load(LoadOutcome::Applied))
    }

    pub(crate) fn load_prompt_done(&mut self, id: &str, now: u64) -> Result<Response> {
        let key = keys::by_id(keys::KS_LOAD_REQ, id);
        let Some(mut req) = self.get_decoded::<Request>(&key)? else {
            let tomb: Option<Tombstone> = self.get_decoded(&keys::by_id(keys::KS_LOAD_TOMB, id))?;
            if tomb.is_some() {
                return Ok(Response::Load(LoadOutcome::Duplicate));
            }
            self.put_tombstone(id, Tombstone::PromptDone { created_ns: now })?;
            return Ok(Response::Load(LoadOutcome::Tombstoned));
        };
        if req.prompt_done {
            return Ok(Response::Load(LoadOutcome::Duplicate));
        }
        req.prompt_done = true;
        self.txn.put(key, codec::encode(&req)?);
        let ekey = keys::load_engine(&req.cluster, &req.ip);
        // An engine already expired stays gone.
        if let Some(mut e) = self.get_decoded::<EngineLoad>(&ekey)? {
            e.prompt_length = e.prompt_length.saturating_sub(req.prompt_length);
            e.updated_ns = e.updated_ns.max(now);
            self.put_engine(&req.cluster, &req.ip, &e)?;
        }
        Ok(Response::Load(LoadOutcome::Applied))
    }

    pub(crate) fn load_done(&mut self, id: &str, now: u64) -> Result<Response> {
        let Some(req) = self.get_decoded::<Request>(&keys::by_id(keys::KS_LOAD_REQ, id))? else {
            let tomb: Option<Tombstone> = self.get_decoded(&keys::by_id(keys::KS_LOAD_TOMB, id))?;
            match tomb {
                Some(Tombstone::Done { .. }) => return Ok(Response::Load(LoadOutcome::Duplicate)),
                Some(t) => self.drop_tombstone(id, t),
                None => {}
            }
            self.put_tombstone(id, Tombstone::Done { created_ns: now })?;
            return Ok(Response::Load(LoadOutcome::Tombstoned));
        };
        self.remove_request(id, &req, now)?;
        // A retried add that arrives after the finish must not count again.
        self.put_tombstone(id, Tombstone::Done { created_ns: now })?;
        Ok(Response::Load(LoadOutcome::Applied))
    }

    /// Removes a request and takes it off its engine's counters.
    pub(crate) fn remove_request(&mut self, id: &str, req: &Request, now: u64) -> Result<()> {
        self.txn.delete(keys::by_id(keys::KS_LOAD_REQ, id));
        self.txn
            .delete(keys::by_age(keys::KS_LOAD_REQ_AGE, req.created_ns, id));
        let ekey = keys::load_engine(&req.cluster, &req.ip);
        // An engine already expired stays gone.
        let Some(mut e) = self.get_decoded::<EngineLoad>(&ekey)? else {
            return Ok(());
        };
        e.queued_req_num = e.queued_req_num.saturating_sub(1);
        if !req.prompt_done {
            e.prompt_length = e.prompt_length.saturating_sub(req.prompt_length);
        }
        e.updated_ns = e.updated_ns.max(now);
        self.put_engine(&req.cluster, &req.ip, &e)
    }

    /// Ids in an age index older than `cutoff`.
    fn older_than(&self, ks: u8, cutoff: u64) -> Result<Vec<String>> {
        let below = keys::by_age(ks, cutoff, "");
        Ok(self
            .txn
            .keys_between(&[ks], &below)?
            .into_iter()
            .map(|k| keys::by_age_id(&k))
            .collect())
    }

    pub(crate) fn load_expire(
        &mut self,
        now: u64,
        req_ttl: u64,
        engine_ttl: u64,
        tomb_ttl: u64,
    ) -> Result<Response> {
        let mut requests = 0;
        for id in self.older_than(keys::KS_LOAD_REQ_AGE, now.saturating_sub(req_ttl))? {
            if let Some(req) = self.get_decoded::<Request>(&keys::by_id(keys::KS_LOAD_REQ, &id))? {
                self.remove_request(&id, &req, now.saturating_sub(req_ttl))?;
                requests += 1;
            }
        }
        let mut tombstones = 0;
        for id in self.older_than(keys::KS_LOAD_TOMB_AGE, now.saturating_sub(tomb_ttl))? {
            if let Some(t) = self.get_decoded::<Tombstone>(&keys::by_id(keys::KS_LOAD_TOMB, &id))? {
                self.drop_tombstone(&id, t);
                tombstones += 1;
            }
        }
        let mut engines = 0;
        let cutoff = now.saturating_sub(engine_ttl);
        for (k, v) in self.txn.scan_prefix(&[keys::KS_LOAD_ENGINE])? {
            let e: EngineLoad = codec::decode(&v)?;
            if e.updated_ns < cutoff {
                self.txn.delete(k);
                engines += 1;
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
    /// The engines of one cluster with their counters, by ip (from the in-memory copy,
    /// see the `load_view` module).
    pub fn load_cluster(&self, cluster: &str) -> Result<Vec<(String, EngineLoad)>> {
        let _consistent = self.read_gate();
        Ok(self.load_view().cluster(cluster))
    }

    /// [`Store::load_cluster`] if no apply holds the store now, `None` if one does: for
    /// readers on an async runtime, which must not block, and otherwise pay a hop to a
    /// blocking thread (a third of a small read's cost).
    pub fn try_load_cluster(&self, cluster: &str) -> Option<Vec<(String, EngineLoad)>> {
        let _consistent = self.try_read_gate()?;
        Some(self.load_view().cluster(cluster))
    }

    /// Every engine of every cluster: (cluster, ip, counters).
    pub fn load_engines(&self) -> Result<Vec<(String, String, EngineLoad)>> {
        let _consistent = self.read_gate();
        Ok(self.load_view().all())
    }

    /// Whether any request or tombstone is older than the given ages (so the leader
    /// proposes an expiry only when there is work).
    pub fn load_expiry_due(
        &self,
        now: u64,
        req_ttl: u64,
        engine_ttl: u64,
        tomb_ttl: u64,
    ) -> Result<bool> {
        let sm = self.sm();
        let oldest = |ks: u8| -> Result<Option<u64>> {
            Ok(sm
                .scan_prefix([ks])
                .next()
                .transpose()?
                .map(|(k, _)| u64::from_be_bytes(k[1..9].try_into().expect("age key"))))
        };
        let due = |t: Option<u64>, ttl: u64| t.is_some_and(|t| t < now.saturating_sub(ttl));
        if due(oldest(keys::KS_LOAD_REQ_AGE)?, req_ttl)
            || due(oldest(keys::KS_LOAD_TOMB_AGE)?, tomb_ttl)
        {
            return Ok(true);
        }
        Ok(self
            .load_engines()?
            .iter()
            .any(|(_, _, e)| e.updated_ns < now.saturating_sub(engine_ttl)))
    }
}
