//! Which services stopped heartbeating, measured on this node's monotonic clock.
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metacenter_raft::Applied;
use metacenter_storage::{Command, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

/// When this node last applied a registration or heartbeat of each service.
#[derive(Default)]
pub struct Liveness {
    seen: Mutex<HashMap<String, Instant>>,
}

impl Liveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every registered service, as heard from now.
    pub fn renew_all(&self, store: &Store) {
        let now = Instant::now();
        let list = store.services();
        let mut seen = self.lock();
        seen.clear();
        seen.extend(list.iter().map(|(name, _)| (name.to_string(), now)));
    }

    fn note(&self, applied: &Applied) {
        let now = Instant::now();
        let mut seen = self.lock();
        for cmd in applied.commands.iter().flat_map(|e| e.iter()) {
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

    /// Follows the applied-event bus until it closes.
    pub async fn follow(self: Arc<Self>, store: Store, mut events: Receiver<Arc<Applied>>) {
        self.renew_all(&store);
        loop {
            match events.recv().await {
                Ok(a) if a.snapshot_installed => self.renew_all(&store),
                Ok(a) => self.note(&a),
                // Heartbeats may have been missed: a fresh term for everyone.
                Err(RecvError::Lagged(_)) => self.renew_all(&store),
                Err(RecvError::Closed) => return,
            }
        }
    }
}
