//! Which services stopped heartbeating, and which load state went silent (module
//! `load`), measured on this node's monotonic clock.
//!
//! A service's `lastHeartbeat` is stamped by the wall clock of the node that received
//! the heartbeat. Comparing it with the leader's wall clock expired live services
//! whenever two clocks disagreed: a leader one hour ahead deregistered every service at
//! once. Instead every node notes when it *applied* each registration and heartbeat, on
//! its own monotonic clock, and the leader expires a service only once it has applied
//! nothing from it for `services.stale_threshold_ms + deregisterAfterMs`. A node that
//! starts, becomes leader, installs a snapshot or misses applied events first grants
//! every service a fresh term, as etcd and Consul do with lease TTLs, so no leader
//! change expires anything early. The expiry names each service with the revision the
//! leader saw, and apply removes it only if nothing was applied to it since.

mod load;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use metacenter_raft::Applied;
use metacenter_storage::{Command, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

pub use load::{LoadTtls, SilentLoad};

/// When this node last applied a registration or heartbeat of each service, and what
/// keeps each piece of load state alive.
#[derive(Default)]
pub struct Liveness {
    seen: Mutex<HashMap<String, Instant>>,
    load: Mutex<load::LoadSeen>,
}

impl Liveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn load(&self) -> MutexGuard<'_, load::LoadSeen> {
        self.load.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every registered service and all load state, as heard from now.
    pub fn renew_all(&self, store: &Store) {
        let now = Instant::now();
        let list = store.services();
        {
            let mut seen = self.lock();
            seen.clear();
            seen.extend(list.iter().map(|(name, _)| (name.to_string(), now)));
        }
        match store.load_items() {
            Ok(items) => self.load().renew_all(items, now),
            Err(e) => tracing::warn!(error = %e, "reading the load state to renew it"),
        }
    }

    /// The load state silent past `ttl`.
    pub fn silent_load(&self, ttl: &LoadTtls) -> SilentLoad {
        self.load().silent(ttl, Instant::now())
    }

    /// Forgets the items of `named` that are not in `held` (the store no longer has them).
    pub fn forget_load(&self, named: &SilentLoad, held: &SilentLoad) {
        self.load().forget(named, held);
    }

    /// Takes in `applied`; returns what load expiries in it named.
    fn note(&self, applied: &Applied) -> Vec<SilentLoad> {
        let now = Instant::now();
        let commands = || applied.commands.iter().flat_map(|e| e.iter());
        let named: Vec<SilentLoad> = {
            let mut load = self.load();
            commands().filter_map(|c| load.note(c, now)).collect()
        };
        let mut seen = self.lock();
        for cmd in commands() {
            match cmd {
                Command::ServiceRegister { name, .. } | Command::ServiceHeartbeat { name, .. } => {
                    seen.insert(name.clone(), now);
                }
                Command::ServiceDeregister { name } => _ = seen.remove(name),
                Command::ServiceExpire { services } => {
                    for (name, _) in services {
                        seen.remove(name);
                    }
                }
                _ => {}
            }
        }
        named
    }

    /// The services not heard from for longer than `silence` (the caller checks
    /// each one's own `deregisterAfterMs`).
    pub fn silent_for(&self, silence: impl Fn(&str) -> Option<Duration>) -> Vec<String> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(name, at)| silence(name).is_some_and(|s| now.duration_since(**at) > s))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Forgets what an applied expiry removed from the store.
    fn reconcile(&self, store: &Store, named: &SilentLoad) {
        let n = (&named.requests, &named.tombstones, &named.engines);
        match store.load_versions(n.0, n.1, n.2, 0) {
            Ok(e) => self.forget_load(named, &SilentLoad::held(&e)),
            Err(e) => tracing::warn!(error = %e, "reading the load state after an expiry"),
        }
    }

    /// [`Liveness::renew_all`] on a blocking thread: it scans the load keyspaces.
    pub async fn renew_all_blocking(self: &Arc<Self>, store: &Store) {
        let (me, store) = (self.clone(), store.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || me.renew_all(&store)).await {
            tracing::warn!(error = %e, "renewing liveness failed");
        }
    }

    /// Follows the applied-event bus until it closes.
    pub async fn follow(self: Arc<Self>, store: Store, mut events: Receiver<Arc<Applied>>) {
        self.renew_all_blocking(&store).await;
        loop {
            match events.recv().await {
                Ok(a) if a.snapshot_installed => self.renew_all_blocking(&store).await,
                Ok(a) => {
                    let named = self.note(&a);
                    if named.is_empty() {
                        continue;
                    }
                    // Reading the store: off the executor.
                    let (me, store) = (self.clone(), store.clone());
                    let forget = move || named.iter().for_each(|n| me.reconcile(&store, n));
                    if let Err(e) = tokio::task::spawn_blocking(forget).await {
                        tracing::warn!(error = %e, "reconciling load liveness failed");
                    }
                }
                // Heartbeats may have been missed: a fresh term for everyone.
                Err(RecvError::Lagged(_)) => self.renew_all_blocking(&store).await,
                Err(RecvError::Closed) => return,
            }
        }
    }
}
