//! Discovery heartbeats (`loadgen heartbeat`).
//!
//! Registers `services` services (`PUT /services/{name}`), then every client repeats
//! `POST /services/{name}/heartbeat`, walking over all services so that consecutive
//! heartbeats of the whole run touch every service in turn. Client `i` talks to
//! `targets[i % len]`. Registration is measured too (its own report). With
//! `list_every`, one more client reads the whole list (`GET /services` on the first
//! target) at that pace while the heartbeats run, as a dashboard or a discovery
//! client would, and is measured on its own.
//!
//! With `unregistered`, nothing is registered and every heartbeat must be answered 404:
//! such a heartbeat still takes the whole path (HTTP, forwarding, the raft round, the log
//! and its fsync, apply) but writes nothing, so it measures what the path costs without
//! the write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use tokio::sync::watch;

use super::{
    drive, http_client, send_ack, send_expect, Limit, OpError, RunConfig, RunStats, Workload,
};

/// Parameters of the heartbeat workload.
#[derive(Clone, Debug)]
pub struct HeartbeatSpec {
    pub targets: Vec<String>,
    /// Registered services (names `{prefix}-{i}`).
    pub services: usize,
    pub clients: usize,
    pub prefix: String,
    pub timeout: Duration,
    /// Read the whole list this often during the heartbeats (`None`: never).
    pub list_every: Option<Duration>,
    /// Register nothing; every heartbeat must be answered 404.
    pub unregistered: bool,
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
    unregistered: bool,
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
            unregistered: spec.unregistered,
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
        let req = self.http.post(&per_target[i]);
        if self.unregistered {
            send_expect(req, |s| s == reqwest::StatusCode::NOT_FOUND).await
        } else {
            send_ack(req).await
        }
    }
}

/// What a heartbeat run measured.
pub struct HeartbeatStats {
    pub registered: RunStats,
    pub beats: RunStats,
    /// The list reads, when `list_every` was set.
    pub lists: Option<RunStats>,
}

/// Registers the services, then drives heartbeats with `cfg` (and the list reader).
pub async fn run_heartbeat(spec: &HeartbeatSpec, cfg: &RunConfig) -> Result<HeartbeatStats> {
    let register = Register {
        http: http_client(spec.clients, spec.timeout)?,
        targets: spec.targets.clone(),
        prefix: spec.prefix.clone(),
        next: AtomicU64::new(0),
    };
    let fill = RunConfig {
        clients: spec.clients,
        limit: Limit::Ops(if spec.unregistered {
            0
        } else {
            spec.services as u64
        }),
        warmup: Duration::ZERO,
        error_pause: cfg.error_pause,
    };
    let registered = drive(Arc::new(register), &fill).await?;
    let (stop, stopped) = watch::channel(false);
    let lister = match spec.list_every {
        Some(every) => {
            let (http, url) = (
                http_client(1, spec.timeout)?,
                format!("http://{}/services", spec.targets[0]),
            );
            Some(tokio::spawn(list_until(http, url, every, stopped)))
        }
        None => None,
    };
    let beats = drive(Arc::new(Heartbeat::new(spec)?), cfg).await;
    let _ = stop.send(true);
    let lists = match lister {
        Some(task) => Some(task.await?),
        None => None,
    };
    Ok(HeartbeatStats {
        registered,
        beats: beats?,
        lists,
    })
}

/// `GET url` every `every` (the whole answer read, 2xx acknowledged) until `stop`
/// turns true.
async fn list_until(
    http: reqwest::Client,
    url: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> RunStats {
    let mut stats = RunStats::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let start = Instant::now();
        match send_ack(http.get(&url)).await {
            Ok(()) => stats
                .hist
                .saturating_record(start.elapsed().as_micros() as u64),
            Err(e) => *stats.errors.entry(e.to_string()).or_default() += 1,
        }
    }
    stats.elapsed = started.elapsed();
    stats
}
