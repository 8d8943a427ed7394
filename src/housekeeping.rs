//! Time-based housekeeping that runs on the leader only: removing services silent past
//! `deregisterAfterMs` and, every `load.gc_interval_ms`, load requests, idle engines and
//! old tombstones past their TTLs (both measured on the leader's monotonic clock, see
//! [`crate::liveness`]); and, as commands carrying the leader's wall clock, removing
//! metric points past their tenant's retention. Every node runs the loop; only
//! the one that currently leads proposes, so it survives failover.

use std::sync::Arc;
use std::time::Duration;

use metacenter_storage::Command;

use crate::clock::now_ns;
use crate::liveness::{LoadTtls, SilentLoad};
use crate::state::AppState;

/// Runs until shutdown.
pub async fn run(state: Arc<AppState>) {
    let mut reap = tokio::time::interval(state.cfg.reap_interval);
    let mut gc = tokio::time::interval(state.cfg.load_gc_interval);
    let mut retain = tokio::time::interval(state.cfg.retention_interval);
    for t in [&mut reap, &mut gc, &mut retain] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut led_in = None;
    loop {
        let job = tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = reap.tick() => Job::Reap,
            _ = gc.tick() => Job::LoadGc,
            _ = retain.tick() => Job::Retention,
        };
        if state.node.leader().map(|(id, _)| id) != Some(state.node.id()) {
            led_in = None;
            continue;
        }
        // A new term of leadership: every service gets a fresh term of its own.
        let term = state.node.metrics().current_term;
        if led_in != Some(term) {
            state.liveness.renew_all_blocking(state.node.store()).await;
            led_in = Some(term);
        }
        match job {
            Job::Reap => reap_services(&state).await,
            Job::LoadGc => expire_load(&state).await,
            Job::Retention => retain_points(&state).await,
        }
    }
}

enum Job {
    Reap,
    LoadGc,
    Retention,
}

/// Proposes one retention command per tenant with a configured retention.
async fn retain_points(state: &AppState) {
    let now = now_ns() as i64;
    for (tenant, keep) in &state.cfg.points_retention {
        let cutoff = now.saturating_sub(keep.as_nanos() as i64);
        let cmd = Command::PointsRetain {
            tenant: tenant.clone(),
            cutoff_ns: cutoff,
        };
        match state.node.write_one(cmd).await {
            Ok(r) => tracing::debug!(%tenant, ?r, "applied retention"),
            Err(e) => tracing::warn!(%tenant, error = %e, "retention failed; will retry"),
        }
    }
}

/// Proposes the expiry of the load state this leader has seen nothing keep alive for
/// its TTL (on its monotonic clock, [`crate::liveness`]), named with the versions the
/// store holds now; forgets what the store no longer holds.
async fn expire_load(state: &AppState) {
    let c = &state.cfg;
    let ttl = LoadTtls {
        request: c.load_req_expire,
        tombstone: c.load_tombstone_ttl,
        engine: c.load_engine_expire,
    };
    let named = state.liveness.silent_load(&ttl);
    if named.is_empty() {
        return;
    }
    let n = named.clone();
    let versions = state
        .read_store(move |st| st.load_versions(&n.requests, &n.tombstones, &n.engines, now_ns()));
    let expiry = match versions.await {
        Ok(e) => e,
        Err(e) => return tracing::warn!(error = %e, "cannot read load state"),
    };
    state
        .liveness
        .forget_load(&named, &SilentLoad::held(&expiry));
    if expiry.is_empty() {
        return;
    }
    match state.node.write_one(Command::LoadExpireNamed(expiry)).await {
        Ok(r) => tracing::info!(?r, "expired load state"),
        Err(e) => tracing::warn!(error = %e, "load expiry failed; will retry"),
    }
}

/// Expires the services this leader has applied nothing from for
/// `services.stale_threshold_ms` plus their `deregisterAfterMs` (an idle cluster writes
/// nothing). Failures are logged; the next tick retries.
async fn reap_services(state: &AppState) {
    let threshold = state.cfg.stale_threshold_ms;
    let list = state.node.store().services();
    let silence = |name: &str| {
        let after = list.get(name)?.deregister_after_ms?;
        Some(Duration::from_millis(threshold.saturating_add(after)))
    };
    let services: Vec<(String, u64)> = (state.liveness.silent_for(silence).into_iter())
        .filter_map(|name| Some((name.clone(), list.get(&name)?.mod_index)))
        .collect();
    if services.is_empty() {
        return;
    }
    match state
        .node
        .write_one(Command::ServiceExpire { services })
        .await
    {
        Ok(r) => tracing::info!(?r, "expired silent services"),
        Err(e) => tracing::warn!(error = %e, "service expiry failed; will retry"),
    }
}
