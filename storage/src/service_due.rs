//! The deadline index of services ([`keys::KS_SERVICE_DUE`]): every service registered
//! with `deregisterAfterMs` has a key `last heartbeat + deregisterAfterMs, name`, kept by
//! apply beside its entry. It lets the reap read only the services it removes and the
//! leader's once-a-second check read one key.
//!
//! Before it, both scanned and decoded every registration: with 100,000 services the
//! leader's check held off apply ~60 ms a second, and each reap delayed the apply of
//! every node by 100–190 ms.
//!
//! The index is part of the replicated state (snapshots carry it). Stores and snapshots
//! written before it get it built, from their services alone, when opened or installed:
//! an empty index beside a service that has a deadline can only be such a store, since
//! apply writes a service and its index key in one atomic unit.

use crate::apply::ApplyCtx;
use crate::services::ServiceEntry;
use crate::{codec, keys, Result, Store};

/// A service's base deadline: its last heartbeat plus `deregisterAfterMs` (saturating).
pub(crate) fn base_deadline(e: &ServiceEntry) -> Option<u64> {
    e.deregister_after_ms
        .map(|after| e.last_heartbeat_ms.saturating_add(after))
}

/// Base deadlines below this bound are expired at `now_ms` with `stale_threshold_ms`;
/// `None`: none is. Agrees with [`ServiceEntry::expired`]
/// (`now - last > threshold + after`, saturating) for every input.
pub(crate) fn expired_below(now_ms: u64, stale_threshold_ms: u64) -> Option<u64> {
    now_ms.checked_sub(stale_threshold_ms)
}

/// The index keys below this one are of services expired at `now_ms`; `None`: none is.
fn expired_below_key(now_ms: u64, stale_threshold_ms: u64) -> Option<Vec<u8>> {
    expired_below(now_ms, stale_threshold_ms).map(|bound| keys::service_due(bound, ""))
}

impl ApplyCtx<'_> {
    /// Moves `name`'s index key from `old` to `new` (either may be absent).
    pub(crate) fn move_deadline(&mut self, name: &str, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        if let Some(d) = old {
            self.txn.delete(keys::service_due(d, name));
        }
        if let Some(d) = new {
            self.txn.put(keys::service_due(d, name), Vec::new());
        }
    }

    /// Index keys and names of the services a reap at `now_ms` removes, earliest first.
    pub(crate) fn due_services(
        &self,
        now_ms: u64,
        stale_threshold_ms: u64,
    ) -> Result<Vec<(Vec<u8>, String)>> {
        let Some(below) = expired_below_key(now_ms, stale_threshold_ms) else {
            return Ok(Vec::new());
        };
        let due = self.txn.keys_between(&[keys::KS_SERVICE_DUE], &below)?;
        Ok(due
            .into_iter()
            .map(|k| {
                let name = keys::by_age_id(&k);
                (k, name)
            })
            .collect())
    }
}

/// Builds the deadline index of `tree` if it is empty and a service needs it. Returns
/// whether it wrote any key.
pub(crate) fn ensure_index(tree: &sled::Tree) -> Result<bool> {
    if tree.scan_prefix([keys::KS_SERVICE_DUE]).next().is_some() {
        return Ok(false);
    }
    let mut batch = sled::Batch::default();
    let mut built = false;
    for kv in tree.scan_prefix([keys::KS_SERVICE]) {
        let (k, v) = kv?;
        let e: ServiceEntry = codec::decode(&v)?;
        if let Some(due) = base_deadline(&e) {
            let name = String::from_utf8_lossy(&k[1..]);
            batch.insert(keys::service_due(due, &name), Vec::new());
            built = true;
        }
    }
    if built {
        tree.apply_batch(batch)?;
    }
    Ok(built)
}

impl Store {
    /// Whether a reap at `now_ms` would remove some service: one key read (the leader
    /// asks every `services.reap_interval_ms`).
    pub fn services_reap_due(&self, now_ms: u64, stale_threshold_ms: u64) -> Result<bool> {
        let Some(below) = expired_below_key(now_ms, stale_threshold_ms) else {
            return Ok(false);
        };
        let first = self.sm().scan_prefix([keys::KS_SERVICE_DUE]).keys().next();
        Ok(first.transpose()?.is_some_and(|k| k[..] < below[..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(last: u64, after: Option<u64>) -> ServiceEntry {
        ServiceEntry {
            info_json: "{}".into(),
            last_heartbeat_ms: last,
            deregister_after_ms: after,
            mod_index: 1,
        }
    }

    #[test]
    fn the_bound_agrees_with_expired_at_the_edges() {
        let cases = [
            (1_000, Some(500), 100),
            (0, Some(0), 0),
            (u64::MAX - 10, Some(5), 3),
            (u64::MAX - 10, Some(20), 0),
            (5, Some(u64::MAX), 0),
            (7, Some(3), u64::MAX),
            (7, Some(3), u64::MAX - 9),
        ];
        for (last, after, threshold) in cases {
            let e = entry(last, after);
            let due = base_deadline(&e).expect("has a deadline");
            let nows = [0, last, last + 1, u64::MAX - 2, u64::MAX - 1, u64::MAX];
            for now in nows.into_iter().chain((0..1_700).step_by(50)) {
                let by_index = expired_below(now, threshold).is_some_and(|b| due < b);
                assert_eq!(
                    by_index,
                    e.expired(now, threshold),
                    "last {last} after {after:?} threshold {threshold} now {now}"
                );
            }
        }
        assert_eq!(base_deadline(&entry(5, None)), None);
    }
}
