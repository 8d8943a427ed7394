//! Time-based housekeeping that runs on the leader only, as commands carrying the
//! leader's clock: removing services past `deregisterAfterMs`. Every node runs the
//! loop; only the one that currently leads proposes, so it survives failover.

use std::sync::Arc;

use metacenter_storage::Command;

use crate::http::services::now_ms;
use crate::server::AppState;

/// Runs until shutdown.
pub async fn run(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.cfg.reap_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if state.node.leader().map(|(id, _)| id) != Some(state.node.id()) {
            continue;
        }
        reap_services(&state).await;
    }
}

/// Proposes a reap when the local state shows an expired service (so that an idle
/// cluster writes nothing). Failures are logged; the next tick retries.
async fn reap_services(state: &AppState) {
    let (now, threshold) = (now_ms(), state.cfg.stale_threshold_ms);
    let due = match state.node.store().services() {
        Ok(s) => s.iter().any(|(_, e)| e.expired(now, threshold)),
        Err(e) => return tracing::warn!(error = %e, "cannot read services"),
    };
    if !due {
        return;
    }
    let cmd = Command::ServiceReap {
        now_ms: now,
        stale_threshold_ms: threshold,
    };
    match state.node.write_one(cmd).await {
        Ok(r) => tracing::info!(?r, "reaped services"),
        Err(e) => tracing::warn!(error = %e, "service reap failed; will retry"),
    }
}
