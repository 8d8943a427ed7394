//! An in-memory copy of the service registrations (keyspace [`keys::KS_SERVICE`]), the
//! rows `GET /services` answers with, as a persistent (structurally shared) map.
//!
//! Why: listing 10,000 services from sled took 4–6 ms, and the list held the store's
//! gate for all of it, so every apply on that node (its heartbeats, on the leader every
//! write) waited behind each `GET /services` or woken blocking query. Here a list is a
//! clone of the map, O(1): taken in microseconds, then read without any lock, a
//! point-in-time view however long the reader keeps it.
//!
//! The copy is derived state, never a source, kept like the engine counters'
//! (`load_view`): built from the tree when the store opens and after a snapshot
//! install, and every apply call hands it the service rows it wrote once they are
//! committed, under the store's gate. Nothing else writes those rows; apply never
//! reads the copy.

use std::sync::{Arc, RwLock};

use crate::services::ServiceEntry;
use crate::{codec, keys, Result};

type Map = imbl::OrdMap<String, Arc<ServiceEntry>>;

/// Every registered service at one applied index, by name. Cheap to clone and to keep.
#[derive(Debug, Clone, Default)]
pub struct ServiceList(Map);

impl ServiceList {
    /// How many services.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (name, registration), by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ServiceEntry)> {
        self.0.iter().map(|(n, e)| (n.as_str(), &**e))
    }

    /// (name, registration) of the services named after `after` (all when `None`), by
    /// name.
    pub fn iter_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a str, &'a ServiceEntry)> + 'a {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, |a| Excluded(a.to_string()));
        self.0
            .range((from, Unbounded))
            .map(|(n, e)| (n.as_str(), &**e))
    }

    /// One service.
    pub fn get(&self, name: &str) -> Option<&ServiceEntry> {
        self.0.get(name).map(|e| &**e)
    }
}

/// The current list; apply replaces it entry by entry.
#[derive(Debug, Default)]
pub(crate) struct ServiceView {
    current: RwLock<ServiceList>,
}

/// Service rows one apply call wrote, decoded: name, and the new value or `None`.
pub(crate) type ServiceRows = Vec<(String, Option<ServiceEntry>)>;

fn name_of(key: &[u8]) -> String {
    String::from_utf8_lossy(&key[1..]).into_owned()
}

impl ServiceView {
    /// Reads every service row of `tree`.
    pub fn build(tree: &sled::Tree) -> Result<ServiceView> {
        let mut map = Map::new();
        for kv in tree.scan_prefix([keys::KS_SERVICE]) {
            let (k, v) = kv?;
            map.insert(name_of(&k), Arc::new(codec::decode(&v)?));
        }
        Ok(ServiceView {
            current: RwLock::new(ServiceList(map)),
        })
    }

    /// Takes the rows of `other` (a view built from a newly installed tree).
    pub fn replace(&self, other: ServiceView) {
        let list = other.current.into_inner().expect("service view poisoned");
        *self.current.write().expect("service view poisoned") = list;
    }

    /// Decodes the service rows an apply call wrote, before it commits them.
    pub fn decode(writes: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<ServiceRows> {
        writes
            .into_iter()
            .map(|(k, v)| Ok((name_of(&k), v.map(|v| codec::decode(&v)).transpose()?)))
            .collect()
    }

    /// Applies the rows an apply call committed (from [`ServiceView::decode`]).
    pub fn note(&self, rows: ServiceRows) {
        if rows.is_empty() {
            return;
        }
        let mut current = self.current.write().expect("service view poisoned");
        for (name, entry) in rows {
            match entry {
                Some(e) => current.0.insert(name, Arc::new(e)),
                None => current.0.remove(&name),
            };
        }
    }

    /// The list as of the last committed apply.
    pub fn list(&self) -> ServiceList {
        self.current.read().expect("service view poisoned").clone()
    }
}
