//! The discovery keyspace (meta-core services): registrations with the time of their
//! last heartbeat. All times are unix milliseconds stamped into the commands by the
//! receiving node (register, heartbeat) or the leader (reap); apply never reads a clock.

use serde::{Deserialize, Serialize};

use crate::apply::ApplyCtx;
use crate::service_due::base_deadline;
use crate::service_view::ServiceList;
use crate::{codec, keys, Response, Result, Store};

/// A stored registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The ServiceInfo as registered (JSON text; kept verbatim for clients).
    pub info_json: String,
    /// Unix ms of the last registration or heartbeat.
    pub last_heartbeat_ms: u64,
    /// Remove the service once stale for this long (leader housekeeping).
    pub deregister_after_ms: Option<u64>,
    /// Raft index of the entry that last changed it.
    pub mod_index: u64,
}

impl ServiceEntry {
    /// Whether a reap at `now_ms` with `stale_threshold_ms` removes this entry.
    pub fn expired(&self, now_ms: u64, stale_threshold_ms: u64) -> bool {
        self.deregister_after_ms.is_some_and(|after| {
            now_ms.saturating_sub(self.last_heartbeat_ms) > stale_threshold_ms.saturating_add(after)
        })
    }
}

impl ApplyCtx<'_> {
    fn service(&self, name: &str) -> Result<Option<ServiceEntry>> {
        self.txn
            .get(&keys::service(name))?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// Writes `e`, and moves its deadline index key from `old_due`.
    fn put_service(&mut self, name: &str, mut e: ServiceEntry, old_due: Option<u64>) -> Result<()> {
        e.mod_index = self.index;
        self.move_deadline(name, old_due, base_deadline(&e));
        self.txn.put(keys::service(name), codec::encode(&e)?);
        self.touch_services()
    }

    fn touch_services(&mut self) -> Result<()> {
        let index = codec::encode(&self.index)?;
        self.txn.put(keys::sys_services_index(), index);
        self.bump_revision();
        Ok(())
    }

    pub(crate) fn service_register(
        &mut self,
        name: &str,
        info_json: &str,
        now_ms: u64,
        deregister_after_ms: Option<u64>,
    ) -> Result<Response> {
        let e = ServiceEntry {
            info_json: info_json.to_string(),
            last_heartbeat_ms: now_ms,
            deregister_after_ms,
            mod_index: 0,
        };
        let old_due = self.service(name)?.as_ref().and_then(base_deadline);
        self.put_service(name, e, old_due)?;
        Ok(Response::Ok)
    }

    pub(crate) fn service_heartbeat(&mut self, name: &str, now_ms: u64) -> Result<Response> {
        let Some(mut e) = self.service(name)? else {
            return Ok(Response::NotFound);
        };
        let old_due = base_deadline(&e);
        // Heartbeats stamped by different nodes may arrive out of order: never go back.
        e.last_heartbeat_ms = e.last_heartbeat_ms.max(now_ms);
        self.put_service(name, e, old_due)?;
        Ok(Response::Ok)
    }

    pub(crate) fn service_deregister(&mut self, name: &str) -> Result<Response> {
        let Some(e) = self.service(name)? else {
            return Ok(Response::NotFound);
        };
        self.txn.delete(keys::service(name));
        self.move_deadline(name, base_deadline(&e), None);
        self.touch_services()?;
        Ok(Response::Ok)
    }

    /// Removes each named service whose revision is still the given one.
    pub(crate) fn service_expire(&mut self, services: &[(String, u64)]) -> Result<Response> {
        let mut removed = Vec::new();
        for (name, mod_index) in services {
            match self.service(name)? {
                Some(e) if e.mod_index == *mod_index && e.deregister_after_ms.is_some() => {
                    self.txn.delete(keys::service(name));
                    self.move_deadline(name, base_deadline(&e), None);
                    removed.push(name.clone());
                }
                _ => {}
            }
        }
        if !removed.is_empty() {
            self.touch_services()?;
        }
        Ok(Response::Reaped { removed })
    }

    pub(crate) fn service_reap(
        &mut self,
        now_ms: u64,
        stale_threshold_ms: u64,
    ) -> Result<Response> {
        // Only the services the deadline index shows due are read.
        let mut removed = Vec::new();
        for (key, name) in self.due_services(now_ms, stale_threshold_ms)? {
            match self.service(&name)? {
                Some(e) if e.expired(now_ms, stale_threshold_ms) => {
                    self.txn.delete(keys::service(&name));
                    self.move_deadline(&name, base_deadline(&e), None);
                    removed.push(name);
                }
                // An index key that does not match its service (a bug): every node
                // has the same, so each repairs it the same way.
                e => {
                    tracing::warn!(service = %name, "repairing a stale deadline index key");
                    self.txn.delete(key);
                    if let Some(due) = e.as_ref().and_then(base_deadline) {
                        self.txn.put(keys::service_due(due, &name), Vec::new());
                    }
                }
            }
        }
        // Answered in name order, as when the reap scanned the services.
        removed.sort_unstable();
        if !removed.is_empty() {
            self.touch_services()?;
        }
        Ok(Response::Reaped { removed })
    }
}

impl Store {
    /// Every registered service, by name, as of the last committed apply: a snapshot
    /// taken in O(1) without holding off apply (see `service_view`).
    pub fn services(&self) -> ServiceList {
        self.service_view().list()
    }

    /// One registered service.
    pub fn service(&self, name: &str) -> Result<Option<ServiceEntry>> {
        self.sm()
            .get(keys::service(name))?
            .map(|v| codec::decode(&v))
            .transpose()
    }

    /// Raft index of the last change to any service (for watches of the list).
    pub fn services_index(&self) -> Result<u64> {
        Ok(match self.sm().get(keys::sys_services_index())? {
            Some(v) => codec::decode(&v)?,
            None => 0,
        })
    }
}
