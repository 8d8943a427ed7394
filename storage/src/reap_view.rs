//! Deregistration deadlines of services in memory, so that the leader can ask "is any
//! service due for removal?" every second without reading every registration.
//!
//! Before it, the leader's reaper scanned and decoded all services once a second under
//! the store's gate, which holds off apply: with 100,000 services that was ~60 ms of CPU
//! and a write stall of the same length every second.
//!
//! Like the load view, this is derived state, never a source and never read by apply:
//! it is built from the tree when the store opens and after a snapshot install, and every
//! apply call hands it the deadlines it changed once they are committed. Only services
//! registered with `deregisterAfterMs` have a deadline.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use crate::services::ServiceEntry;
use crate::{codec, keys, Result};

/// Deadline changes of one apply call: service name, and its new base deadline
/// (`None`: no deadline, or removed).
pub(crate) type DeadlineWrites = Vec<(String, Option<u64>)>;

#[derive(Debug, Default)]
struct Deadlines {
    /// (base deadline, name), smallest first.
    by_due: BTreeSet<(u64, String)>,
    due_of: HashMap<String, u64>,
}

impl Deadlines {
    fn set(&mut self, name: String, due: Option<u64>) {
        if let Some(old) = self.due_of.remove(&name) {
            self.by_due.remove(&(old, name.clone()));
        }
        if let Some(due) = due {
            self.due_of.insert(name.clone(), due);
            self.by_due.insert((due, name));
        }
    }
}

/// The deadlines of every service that has one.
#[derive(Debug, Default)]
pub(crate) struct ReapView {
    inner: RwLock<Deadlines>,
}

/// The base deadline of `e`: the last heartbeat plus `deregisterAfterMs`. The service is
/// removed once the time is past this plus the stale threshold ([`ServiceEntry::expired`]).
pub(crate) fn base_deadline(e: &ServiceEntry) -> Option<u64> {
    e.deregister_after_ms
        .map(|after| e.last_heartbeat_ms.saturating_add(after))
}

impl ReapView {
    /// Reads every registration of `tree`.
    pub fn build(tree: &sled::Tree) -> Result<ReapView> {
        let mut d = Deadlines::default();
        for kv in tree.scan_prefix([keys::KS_SERVICE]) {
            let (k, v) = kv?;
            let e: ServiceEntry = codec::decode(&v)?;
            d.set(
                String::from_utf8_lossy(&k[1..]).into_owned(),
                base_deadline(&e),
            );
        }
        Ok(ReapView {
            inner: RwLock::new(d),
        })
    }

    /// Takes the deadlines of `other` (a view built from a newly installed tree).
    pub fn replace(&self, other: ReapView) {
        let d = other.inner.into_inner().expect("reap view poisoned");
        *self.inner.write().expect("reap view poisoned") = d;
    }

    /// Records the deadlines an apply call committed.
    pub fn note(&self, writes: DeadlineWrites) {
        if writes.is_empty() {
            return;
        }
        let mut d = self.inner.write().expect("reap view poisoned");
        for (name, due) in writes {
            d.set(name, due);
        }
    }

    /// Whether a reap at `now_ms` with `stale_threshold_ms` would remove a service.
    /// Agrees with [`ServiceEntry::expired`]: `now - last > threshold + after`, that is
    /// `now > last + after + threshold` without overflow.
    pub fn any_due(&self, now_ms: u64, stale_threshold_ms: u64) -> bool {
        let d = self.inner.read().expect("reap view poisoned");
        d.by_due.first().is_some_and(|(due, _)| {
            due.checked_add(stale_threshold_ms)
                .is_some_and(|limit| now_ms > limit)
        })
    }

    /// How many services have a deadline.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.read().expect("reap view poisoned").due_of.len()
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
    fn due_agrees_with_expired_at_the_edges() {
        let cases = [
            (1_000, Some(500), 100),
            (0, Some(0), 0),
            (u64::MAX - 10, Some(5), 3),
            (u64::MAX - 10, Some(20), 0),
            (5, Some(u64::MAX), 0),
            (7, Some(3), u64::MAX),
        ];
        for (last, after, threshold) in cases {
            let e = entry(last, after);
            let view = ReapView::default();
            view.note(vec![("s".into(), base_deadline(&e))]);
            for now in [0, last, last.saturating_add(600), u64::MAX - 1, u64::MAX]
                .into_iter()
                .chain((0..1_700).step_by(50))
            {
                assert_eq!(
                    view.any_due(now, threshold),
                    e.expired(now, threshold),
                    "last {last} after {after:?} threshold {threshold} now {now}"
                );
            }
        }
    }

    #[test]
    fn a_heartbeat_moves_the_deadline_and_removal_forgets_it() {
        let view = ReapView::default();
        view.note(vec![
            ("a".into(), base_deadline(&entry(100, Some(50)))),
            ("b".into(), base_deadline(&entry(100, None))),
        ]);
        assert_eq!(view.len(), 1, "only services with deregisterAfterMs count");
        assert!(view.any_due(161, 10));
        assert!(!view.any_due(160, 10));
        view.note(vec![("a".into(), base_deadline(&entry(1_000, Some(50))))]);
        assert!(!view.any_due(161, 10), "the old deadline is gone");
        assert!(view.any_due(1_061, 10));
        view.note(vec![("a".into(), None)]);
        assert!(!view.any_due(u64::MAX, 0));
        assert_eq!(view.len(), 0);
    }
}
