//! Metric metadata search (`loadgen search`).
//!
//! Phases: import `series` series spread over `tenants` tenants into VictoriaMetrics
//! (`/api/v1/import`, one sample each, a `tenant` label per series), full-sync every
//! tenant through metacenter (`POST /api/v1/metrics/sync/{tenant}?forceFull=true`,
//! its time reported), then `clients` clients search (`POST /api/v1/metrics/search`)
//! with two-word queries drawn from the names' vocabulary, over random tenants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{drive, http_client, send_ack, OpError, RunConfig, RunStats, Workload};

const SUBSYSTEMS: &[&str] = &[
    "gpu", "cpu", "node", "http", "grpc", "disk", "net", "kv", "cache", "queue", "train", "infer",
    "model", "token", "batch", "sched", "mem", "pcie", "nvlink", "io",
];
const THINGS: &[&str] = &[
    "memory",
    "requests",
    "latency",
    "errors",
    "bytes",
    "utilization",
    "temperature",
    "power",
    "throughput",
    "queue_depth",
    "connections",
    "retries",
    "evictions",
    "hits",
    "misses",
    "loss",
    "accuracy",
    "steps",
    "tokens",
    "seconds",
    "packets",
    "drops",
    "allocations",
    "pages",
    "threads",
];
const UNITS: &[&str] = &["total", "bytes", "seconds", "ratio", "count"];

/// The `i`-th metric name: three vocabulary words, a unit, and a number.
pub fn metric_name(i: usize) -> String {
    let s = SUBSYSTEMS[i % SUBSYSTEMS.len()];
    let t = THINGS[(i / SUBSYSTEMS.len()) % THINGS.len()];
    let u = UNITS[(i / (SUBSYSTEMS.len() * THINGS.len())) % UNITS.len()];
    format!("{s}_{t}_{i}_{u}")
}

/// Tenant names `t0000`...
pub fn tenant_name(i: usize) -> String {
    format!("t{i:04}")
}

/// Imports `series` series (`per_tenant` per tenant) into VictoriaMetrics at `vm`.
pub async fn import(vm: &str, series: usize, tenants: usize) -> Result<()> {
    let http = http_client(4, Duration::from_secs(120))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let per_tenant = series.div_ceil(tenants.max(1));
    let mut body = String::new();
    for i in 0..series {
        let tenant = tenant_name(i / per_tenant);
        let m = json!({"__name__": metric_name(i), "tenant": tenant, "job": format!("job{}", i % 7),
            "instance": format!("host{}:9100", i % 13)});
        body.push_str(&json!({"metric": m, "values": [1.0], "timestamps": [now_ms]}).to_string());
        body.push('\n');
        if body.len() > 4 << 20 || i + 1 == series {
            let r = http
                .post(format!("http://{vm}/api/v1/import"))
                .body(std::mem::take(&mut body))
                .send()
                .await
                .context("VictoriaMetrics import")?;
            if !r.status().is_success() {
                bail!("VictoriaMetrics import: HTTP {}", r.status());
            }
        }
    }
    let _ = http
        .get(format!("http://{vm}/internal/force_flush"))
        .send()
        .await;
    Ok(())
}

/// Full-syncs each tenant through `target`; returns (seconds in all, metrics processed).
pub async fn sync_all(target: &str, tenants: usize) -> Result<(f64, u64)> {
    let http = http_client(1, Duration::from_secs(600))?;
    let started = Instant::now();
    let mut processed = 0;
    for t in 0..tenants {
        let url = format!(
            "http://{target}/api/v1/metrics/sync/{}?forceFull=true",
            tenant_name(t)
        );
        let r = http.post(url).send().await.context("sync")?;
        let status = r.status();
        let v: Value = r.json().await.context("sync answer")?;
        if !status.is_success() {
            bail!("sync of {}: HTTP {status}: {v}", tenant_name(t));
        }
        processed += v["result"]["metrics_processed"].as_u64().unwrap_or(0);
    }
    Ok((started.elapsed().as_secs_f64(), processed))
}

/// Searches with two vocabulary words over random tenants.
pub struct Search {
    http: reqwest::Client,
    targets: Vec<String>,
    tenants: usize,
}

impl Search {
    pub fn new(
        targets: Vec<String>,
        tenants: usize,
        clients: usize,
        timeout: Duration,
    ) -> Result<Self> {
        Ok(Search {
            http: http_client(clients, timeout)?,
            targets,
            tenants: tenants.max(1),
        })
    }
}

impl Workload for Search {
    async fn op(&self, client: usize, seq: u64) -> Result<(), OpError> {
        let i = (seq as usize).wrapping_mul(2654435761).wrapping_add(client);
        let words = format!(
            "{} {}",
            SUBSYSTEMS[i % SUBSYSTEMS.len()],
            &THINGS[(i / 7) % THINGS.len()][..4]
        );
        let body = json!({"query": words, "tenant_id": tenant_name(i % self.tenants), "limit": 50});
        let target = &self.targets[client % self.targets.len()];
        let req = self
            .http
            .post(format!("http://{target}/api/v1/metrics/search"))
            .json(&body);
        send_ack(req).await
    }
}

/// Runs the search phase.
pub async fn run_search(search: Search, cfg: &RunConfig) -> Result<RunStats> {
    drive(Arc::new(search), cfg).await
}
