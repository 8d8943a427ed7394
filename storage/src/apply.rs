//! The deterministic state machine: `apply` is a pure function of (state, entry).
//!
//! Contract: nothing here reads the clock, randomness, the environment or config
//! that may differ between nodes. Time, when a command needs it, is a field of the
//! command stamped by the leader. Domain outcomes are [`Response`] values. An engine
//! error aborts the whole apply call (nothing of it is written) and is returned to
//! the raft layer, which must stop the node: it cannot be answered deterministically.

use crate::txn::{Limits, Txn};
use crate::{codec, keys, Command, Response, Result};

/// Per-apply-call context: the overlay and the revision counter.
pub(crate) struct ApplyCtx<'a> {
    pub(crate) txn: Txn<'a>,
    revision: u64,
    /// Raft index of the entry being applied (the modification index of what it changes).
    pub(crate) index: u64,
}

impl<'a> ApplyCtx<'a> {
    pub(crate) fn new(txn: Txn<'a>) -> Result<Self> {
        let revision = match txn.get(&keys::sys_revision())? {
            Some(v) => codec::decode(&v)?,
            None => 0,
        };
        Ok(ApplyCtx {
            txn,
            revision,
            index: 0,
        })
    }

    /// Reads and decodes one value through the overlay.
    pub(crate) fn get_decoded<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>> {
        self.txn.get(key)?.map(|v| codec::decode(&v)).transpose()
    }

    /// Allocates the revision of a successful mutation.
    pub(crate) fn bump_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    pub(crate) fn apply(&mut self, cmd: &Command) -> Result<Response> {
        if let Some(reason) = invalid(cmd) {
            return Ok(Response::Invalid { reason });
        }
        match cmd {
            Command::Noop => Ok(Response::Ok),
            Command::MetaMerge {
                hash,
                fields,
                expect_version,
            } => self.meta_merge(hash, fields, *expect_version),
            Command::MetaDelete {
                hash,
                expect_version,
            } => self.meta_delete(hash, *expect_version),
            Command::MetaDeleteProp {
                hash,
                prop,
                expect_version,
            } => self.meta_delete_prop(hash, prop, *expect_version),
            Command::MetaSetAdd {
                hash,
                prop,
                member,
                expect_version,
            } => self.meta_set_add(hash, prop, member, *expect_version),
            Command::ServiceRegister {
                name,
                info_json,
                now_ms,
                deregister_after_ms,
            } => self.service_register(name, info_json, *now_ms, *deregister_after_ms),
            Command::ServiceHeartbeat { name, now_ms } => self.service_heartbeat(name, *now_ms),
            Command::ServiceDeregister { name } => self.service_deregister(name),
            Command::ServiceReap {
                now_ms,
                stale_threshold_ms,
            } => self.service_reap(*now_ms, *stale_threshold_ms),
            Command::ServiceExpire { services } => self.service_expire(services),
            Command::LoadAdd {
                cluster,
                request_id,
                ip,
                prompt_length,
                now_ns,
            } => self.load_add(cluster, request_id, ip, *prompt_length, *now_ns),
            Command::LoadPromptDone { request_id, now_ns } => {
                self.load_prompt_done(request_id, *now_ns)
            }
            Command::LoadDone { request_id, now_ns } => self.load_done(request_id, *now_ns),
            Command::LoadExpire {
                now_ns,
                req_expire_ns,
                engine_expire_ns,
                tombstone_ttl_ns,
            } => self.load_expire(
                *now_ns,
                *req_expire_ns,
                *engine_expire_ns,
                *tombstone_ttl_ns,
            ),
            Command::LoadExpireNamed(e) => self.load_expire_named(e),
            Command::PointsWrite { tenant, points } => self.points_write(tenant, points),
            Command::SystemPointsWrite { tenant, points } => {
                self.system_points_write(tenant, points)
            }
            Command::PointsRetain { tenant, cutoff_ns } => self.points_retain(tenant, *cutoff_ns),
            Command::CatalogSyncStart {
                tenant,
                strategy,
                now_ns,
            } => self.catalog_sync_start(tenant, strategy, *now_ns),
            Command::CatalogUpsert {
                tenant,
                gen,
                now_ns,
                replace_labels,
                docs,
            } => self.catalog_upsert(tenant, *gen, *now_ns, *replace_labels, docs),
            Command::CatalogSyncFinish {
                tenant,
                gen,
                full,
                now_ns,
                outcome,
            } => self.catalog_sync_finish(tenant, *gen, *full, *now_ns, outcome),
            Command::CatalogSettings { settings } => self.catalog_settings(settings),
        }
    }

    /// Writes the revision counter and the opaque raft applied state, then commits
    /// (what it changes kept first for the running `exports`).
    pub(crate) fn finish(
        mut self,
        applied_state: &[u8],
        exports: &[std::sync::Arc<crate::export::Capture>],
    ) -> Result<()> {
        let rev = codec::encode(&self.revision)?;
        self.txn.put(keys::sys_revision(), rev);
        self.txn.put(keys::sys_applied(), applied_state.to_vec());
        self.txn.commit(exports)
    }
}

fn bad_key(what: &str, s: &str) -> Option<String> {
    if s.is_empty() {
        return Some(format!("{what} is empty"));
    }
    if s.len() > Limits::MAX_KEY {
        return Some(format!("{what} longer than {} bytes", Limits::MAX_KEY));
    }
    if s.contains('\0') {
        return Some(format!("{what} contains a NUL byte"));
    }
    None
}

fn bad_value(s: &str) -> Option<String> {
    (s.len() > Limits::MAX_VALUE).then(|| format!("value longer than {} bytes", Limits::MAX_VALUE))
}

/// Re-checks the limits the edge enforces, so a bad command is a value, not corruption.
fn invalid(cmd: &Command) -> Option<String> {
    match cmd {
        Command::Noop => None,
        Command::MetaMerge { hash, fields, .. } => bad_key("hash id", hash)
            .or_else(|| {
                (fields.len() > Limits::MAX_PROPS)
                    .then(|| format!("more than {} fields", Limits::MAX_PROPS))
            })
            .or_else(|| {
                fields
                    .iter()
                    .find_map(|(k, v)| bad_key("property name", k).or_else(|| bad_value(v)))
            }),
        Command::MetaDelete { hash, .. } => bad_key("hash id", hash),
        Command::MetaDeleteProp { hash, prop, .. } => {
            bad_key("hash id", hash).or_else(|| bad_key("property name", prop))
        }
        Command::MetaSetAdd {
            hash, prop, member, ..
        } => bad_key("hash id", hash)
            .or_else(|| bad_key("property name", prop))
            .or_else(|| bad_key("set member", member))
            .or_else(|| {
                member
                    .contains('|')
                    .then(|| "set member contains '|'".into())
            }),
        Command::ServiceRegister {
            name, info_json, ..
        } => bad_key("service name", name).or_else(|| bad_value(info_json)),
        Command::ServiceHeartbeat { name, .. } | Command::ServiceDeregister { name } => {
            bad_key("service name", name)
        }
        Command::ServiceReap { .. } | Command::LoadExpire { .. } => None,
        Command::ServiceExpire { services } => services
            .iter()
            .find_map(|(n, _)| bad_key("service name", n)),
        Command::LoadExpireNamed(e) => (e.requests.iter().chain(&e.tombstones))
            .find_map(|(id, _)| bad_key("request_id", id))
            .or_else(|| {
                (e.engines.iter())
                    .find_map(|(c, ip, _)| bad_key("cluster", c).or_else(|| bad_key("ip", ip)))
            }),
        Command::LoadAdd {
            cluster,
            request_id,
            ip,
            ..
        } => bad_key("cluster", cluster)
            .or_else(|| bad_key("request_id", request_id))
            .or_else(|| bad_key("ip", ip)),
        Command::LoadPromptDone { request_id, .. } | Command::LoadDone { request_id, .. } => {
            bad_key("request_id", request_id)
        }
        Command::PointsWrite { tenant, .. }
        | Command::SystemPointsWrite { tenant, .. }
        | Command::PointsRetain { tenant, .. }
        | Command::CatalogSyncStart { tenant, .. }
        | Command::CatalogSyncFinish { tenant, .. } => bad_key("tenant", tenant),
        Command::CatalogUpsert { tenant, docs, .. } => bad_key("tenant", tenant)
            .or_else(|| docs.iter().find_map(|d| bad_key("metric name", &d.name))),
        Command::CatalogSettings { settings } => {
            (settings.interval_ns == 0).then(|| "sync interval must be positive".to_string())
        }
    }
}
