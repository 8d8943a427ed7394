//! Discovery heartbeats (`loadgen heartbeat`).
//!
//! Registers `services` services (`PUT /services/{name}`), then every client repeats
//! `POST /services/{name}/heartbeat`, walking over all services so that consecutive
//! heartbeats of the whole run touch every service in turn. Client `i` talks to
//! `targets[i % len]`. Registration is measured too (its own report).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::{drive, http_client, send_ack, Limit, OpError, RunConfig, RunStats, Workload};

/// Parameters of the heartbeat workload.
#[derive(Clone, Debug)]
pub struct HeartbeatSpec {
    pub targets: Vec<String>,
    /// Registered services (names `{prefix}-{i}`).
    pub services: usize,
    pub clients: usize,
    pub prefix: String,
    pub timeout: Duration,
}

fn service_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:06}")
}

/// `PUT /services/{name}` of services `0..n`, each index taken once over all clients.
pub struct Register {
    http: reqwest::Client,
    targets: Vec<String>,
    prefix: String,
    next: AtomicU64,
}

impl Workload for Register {
    async fn op(&self, client: usize, _seq: u64) -> Result<(), OpError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let name = service_name(&self.prefix, i);
        let target = &self.targets[client % self.targets.len()];
        let body = json!({
            "name": name,
            "version": "1",
            "api": format!("http://127.0.0.1:9/{name}"),
            "status": "ok",
        });
        let req = self
            .http
            .put(format!("http://{target}/services/{name}"))
            .json(&body);
        send_ack(req).await
    }
}

/// `POST /services/{name}/heartbeat`, every client striding over all services.
pub struct Heartbeat {
    http: reqwest::Client,
    /// `urls[target][service]`.
    urls: Vec<Vec<String>>,
    clients: usize,
}

impl Heartbeat {
    pub fn new(spec: &HeartbeatSpec) -> Result<Self> {
        let urls = spec
            .targets
            .iter()
            .map(|t| {
                (0..spec.services.max(1))
                    .map(|i| {
                        let name = service_name(&spec.prefix, i);
                        format!("http://{t}/services/{name}/heartbeat")
                    })
                    .collect()
            })
            .collect();
        Ok(Heartbeat {
            http: http_client(spec.clients, spec.timeout)?,
            urls,
            clients: spec.clients.max(1),
        })
    }
}

impl Workload for Heartbeat {
    async fn op(&self, client: usize, seq: u64) -> Result<(), OpError> {
        let per_target = &self.urls[client % self.urls.len()];
        let i = (seq as usize)
            .wrapping_mul(self.clients)
            .wrapping_add(client)
            % per_target.len();
        send_ack(self.http.post(&per_target[i])).await
    }
}

/// Registers the services (first result), then drives heartbeats with `cfg` (second).
pub async fn run_heartbeat(spec: &HeartbeatSpec, cfg: &RunConfig) -> Result<(RunStats, RunStats)> {
    let register = Register {
        http: http_client(spec.clients, spec.timeout)?,
        targets: spec.targets.clone(),
        prefix: spec.prefix.clone(),
        next: AtomicU64::new(0),
    };
    let fill = RunConfig {
        clients: spec.clients,
        limit: Limit::Ops(spec.services as u64),
        warmup: Duration::ZERO,
        error_pause: cfg.error_pause,
    };
    let registered = drive(Arc::new(register), &fill).await?;
    let beats = drive(Arc::new(Heartbeat::new(spec)?), cfg).await?;
    Ok((registered, beats))
}
