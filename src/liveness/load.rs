//! Which load state went silent, on this node's monotonic clock: a request is as old as
//! the add this node applied, a tombstone as the finish that left it, an engine as the
//! last add or finish of one of its requests. The leader names what passed its TTL in a
//! `LoadExpireNamed` command ([`metacenter_storage::LoadExpiry`]), with the versions it
//! reads from the store, so a wall clock is never compared with another node's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use metacenter_storage::{Command, LoadExpiry, LoadItems};

/// How long each kind of load state may stay silent.
#[derive(Debug, Clone, Copy)]
pub struct LoadTtls {
    pub request: Duration,
    pub tombstone: Duration,
    pub engine: Duration,
}

/// Load state past its TTL, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SilentLoad {
    pub requests: Vec<String>,
    pub tombstones: Vec<String>,
    pub engines: Vec<(String, String)>,
}

impl SilentLoad {
    /// The items an expiry names (what the store held when it was read).
    pub fn held(e: &LoadExpiry) -> SilentLoad {
        SilentLoad {
            requests: e.requests.iter().map(|(id, _)| id.clone()).collect(),
            tombstones: e.tombstones.iter().map(|(id, _)| id.clone()).collect(),
            engines: e
                .engines
                .iter()
                .map(|(c, ip, _)| (c.clone(), ip.clone()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.tombstones.is_empty() && self.engines.is_empty()
    }
}

/// Most items one expiry names, so that a command stays small.
const MAX_NAMED: usize = 10_000;

/// When this node applied what keeps each request, tombstone and engine alive.
#[derive(Default)]
pub(super) struct LoadSeen {
    /// Request id -> (when added, cluster, ip).
    requests: HashMap<String, (Instant, String, String)>,
    tombstones: HashMap<String, Instant>,
    engines: HashMap<(String, String), Instant>,
}

impl LoadSeen {
    /// Everything in `items`, as seen at `now`.
    pub fn renew_all(&mut self, items: LoadItems, now: Instant) {
        self.requests = (items.requests.into_iter())
            .map(|(id, cluster, ip)| (id, (now, cluster, ip)))
            .collect();
        self.tombstones = items.tombstones.into_iter().map(|id| (id, now)).collect();
        self.engines = items.engines.into_iter().map(|e| (e, now)).collect();
    }

    /// Takes in one applied command; returns the items an expiry named, for the caller
    /// to forget those the store no longer holds.
    pub fn note(&mut self, cmd: &Command, now: Instant) -> Option<SilentLoad> {
        match cmd {
            Command::LoadAdd {
                cluster,
                request_id,
                ip,
                ..
            } => {
                self.tombstones.remove(request_id);
                (self.requests.entry(request_id.clone()))
                    .or_insert_with(|| (now, cluster.clone(), ip.clone()));
                self.engines.insert((cluster.clone(), ip.clone()), now);
            }
            Command::LoadPromptDone { request_id, .. } => match self.requests.get(request_id) {
                Some((_, c, ip)) => _ = self.engines.insert((c.clone(), ip.clone()), now),
                None => _ = self.tombstones.entry(request_id.clone()).or_insert(now),
            },
            Command::LoadDone { request_id, .. } => {
                if let Some((_, c, ip)) = self.requests.remove(request_id) {
                    self.engines.insert((c, ip), now);
                }
                self.tombstones.insert(request_id.clone(), now);
            }
            Command::LoadExpireNamed(e) => return Some(SilentLoad::held(e)),
            _ => {}
        }
        None
    }

    /// What has been silent past its TTL at `now` (at most [`MAX_NAMED`] items).
    pub fn silent(&self, ttl: &LoadTtls, now: Instant) -> SilentLoad {
        let old = |at: &Instant, ttl: Duration| now.saturating_duration_since(*at) >= ttl;
        let mut s = SilentLoad::default();
        let requests = self.requests.iter().filter(|(_, r)| old(&r.0, ttl.request));
        s.requests = requests.map(|(id, _)| id.clone()).take(MAX_NAMED).collect();
        let tombs = self
            .tombstones
            .iter()
            .filter(|(_, at)| old(at, ttl.tombstone));
        let room = MAX_NAMED - s.requests.len();
        s.tombstones = tombs.map(|(id, _)| id.clone()).take(room).collect();
        let engines = self.engines.iter().filter(|(_, at)| old(at, ttl.engine));
        let room = room - s.tombstones.len();
        s.engines = engines.map(|(e, _)| e.clone()).take(room).collect();
        s
    }

    /// Forgets the items of `named` that the store no longer holds (`held` lists those
    /// it does).
    pub fn forget(&mut self, named: &SilentLoad, held: &SilentLoad) {
        for id in named
            .requests
            .iter()
            .filter(|id| !held.requests.contains(id))
        {
            self.requests.remove(id);
        }
        for id in named
            .tombstones
            .iter()
            .filter(|id| !held.tombstones.contains(id))
        {
            self.tombstones.remove(id);
        }
        for e in named.engines.iter().filter(|e| !held.engines.contains(e)) {
            self.engines.remove(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: LoadTtls = LoadTtls {
        request: Duration::from_secs(10),
        tombstone: Duration::from_secs(5),
        engine: Duration::from_secs(20),
    };

    fn add(id: &str, ip: &str) -> Command {
        Command::LoadAdd {
            cluster: "c".into(),
            request_id: id.into(),
            ip: ip.into(),
            prompt_length: 1,
            now_ns: 0,
        }
    }

    fn done(id: &str) -> Command {
        Command::LoadDone {
            request_id: id.into(),
            now_ns: 0,
        }
    }

    #[test]
    fn ages_follow_what_this_node_applied() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut seen = LoadSeen::default();
        seen.note(&add("r1", "e1"), at(0));
        seen.note(&add("r2", "e2"), at(0));
        seen.note(&done("r2"), at(8));
        seen.note(&add("r1", "e1"), at(9)); // a retried add: still as old as the first
        let s = seen.silent(&TTL, at(12));
        assert_eq!(s.requests, ["r1"]);
        assert!(s.tombstones.is_empty(), "r2's tombstone is 4 s old");
        assert!(s.engines.is_empty());
        // e2 was last touched at 8 s, e1 at 9 s (the retried add).
        let s = seen.silent(&TTL, at(28) + Duration::from_millis(500));
        assert_eq!(s.tombstones, ["r2"]);
        assert_eq!(s.engines, [("c".to_string(), "e2".to_string())]);
        // A new leader's fresh start: nothing is old.
        let items = LoadItems {
            requests: vec![("r1".into(), "c".into(), "e1".into())],
            tombstones: vec!["r2".into()],
            engines: vec![("c".into(), "e1".into())],
        };
        seen.renew_all(items, at(29));
        assert!(seen.silent(&TTL, at(30)).is_empty());
    }

    #[test]
    fn named_items_the_store_no_longer_holds_are_forgotten() {
        let t0 = Instant::now();
        let mut seen = LoadSeen::default();
        seen.note(&add("r1", "e1"), t0);
        seen.note(&add("r2", "e1"), t0);
        let later = t0 + Duration::from_secs(60);
        let named = seen.silent(&TTL, later);
        assert_eq!(named.requests.len(), 2);
        let held = SilentLoad {
            requests: vec!["r2".into()],
            ..SilentLoad::default()
        };
        seen.forget(&named, &held);
        let left = seen.silent(&TTL, later);
        assert_eq!(left.requests, ["r2"]);
        assert!(left.engines.is_empty());
    }
}
