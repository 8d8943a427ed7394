//! Engine load statistics of the Metadata Center (`loadgen load`).
//!
//! Update phase: every client simulates inference requests one after the other, each as
//! three updates sent in order to the same node: `POST /v1/load/stats` (request queued on
//! an engine), `DELETE /v1/load/prompt` (first token) and `DELETE /v1/load/stats` (done).
//! Each update is one operation. Requests go to `engines` engines spread over `clusters`
//! clusters (`bench-{run}-{k}`, engine IPs `10.{k}.x.y`). With `batch` above 1, a client
//! sends its next `batch` updates (same order, same contents) in one
//! `POST /v1/load/batch`, and every operation in the answer must be `OK`.
//!
//! Read phase: `read_engines` engines of one cluster get one open request each (so they
//! stay present), then clients repeat `GET /v1/load/stats?cluster=` on every target.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{
    call_json, drive, http_client, send_ack, GetAck, Limit, OpError, RunConfig, RunStats, Workload,
};

/// Parameters of the load-statistics workload.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub targets: Vec<String>,
    pub clients: usize,
    pub engines: usize,
    pub clusters: usize,
    /// Engines present in the cluster read by the read phase.
    pub read_engines: usize,
    /// Distinguishes request ids and cluster names of this run from earlier ones.
    pub run: String,
    /// Updates per HTTP request (1: each on its own endpoint).
    pub batch: usize,
    pub timeout: Duration,
}

impl LoadSpec {
    /// The cluster the read phase fills and reads.
    pub fn read_cluster(&self) -> String {
        format!("bench-{}-read", self.run)
    }
}

fn engine_ip(cluster: usize, engine: usize) -> String {
    format!(
        "10.{}.{}.{}",
        cluster % 256,
        engine / 256 % 256,
        engine % 256
    )
}

/// The update phase: add, first token, done, for one request after the other.
pub struct LoadUpdates {
    http: reqwest::Client,
    bases: Vec<String>,
    spec: LoadSpec,
}

impl LoadUpdates {
    pub fn new(spec: &LoadSpec) -> Result<Self> {
        if spec.engines == 0 || spec.clusters == 0 || spec.batch == 0 {
            bail!("engines, clusters and batch must be at least 1");
        }
        Ok(LoadUpdates {
            http: http_client(spec.clients, spec.timeout)?,
            bases: spec
                .targets
                .iter()
                .map(|t| format!("http://{t}/v1/load/"))
                .collect(),
            spec: spec.clone(),
        })
    }

    /// Update `seq` of `client`: its batch `op` name and its body.
    fn update(&self, client: usize, seq: u64) -> (&'static str, Value) {
        let request = seq / 3;
        let request_id = format!("{}-{client}-{request}", self.spec.run);
        match seq % 3 {
            0 => {
                let engine = (client * 31 + request as usize) % self.spec.engines;
                let cluster = engine % self.spec.clusters;
                let body = json!({
                    "cluster": format!("bench-{}-{cluster}", self.spec.run),
                    "request_id": request_id,
                    "prompt_length": 100 + request % 1000,
                    "ip": engine_ip(cluster, engine),
                });
                ("add", body)
            }
            1 => ("prompt_done", json!({ "request_id": request_id })),
            _ => ("done", json!({ "request_id": request_id })),
        }
    }

    /// The operations of batch `seq` of `client`: its updates `seq * batch ..`.
    fn batch_operations(&self, client: usize, seq: u64) -> Vec<Value> {
        let n = self.spec.batch as u64;
        (seq * n..(seq + 1) * n)
            .map(|s| {
                let (op, mut body) = self.update(client, s);
                body["op"] = json!(op);
                body
            })
            .collect()
    }

    /// Sends batch `seq` of `client`; `Ok` when every operation in it is `OK`.
    async fn batch(&self, base: &str, client: usize, seq: u64) -> Result<(), OpError> {
        let operations = self.batch_operations(client, seq);
        let req = self.http.post(format!("{base}batch"));
        let (status, answer) = call_json(req.json(&json!({ "operations": operations }))).await?;
        if status != 200 {
            return Err(OpError::Status(status.to_string()));
        }
        let results = answer["data"].as_array().map_or(&[][..], Vec::as_slice);
        let all_ok =
            results.len() == operations.len() && results.iter().all(|r| r["status"] == "OK");
        if all_ok {
            Ok(())
        } else {
            Err(OpError::Status("batch operation failed".into()))
        }
    }
}

impl Workload for LoadUpdates {
    async fn op(&self, client: usize, seq: u64) -> Result<(), OpError> {
        let base = &self.bases[client % self.bases.len()];
        if self.spec.batch > 1 {
            return self.batch(base, client, seq).await;
        }
        let req = match self.update(client, seq) {
            ("add", body) => self.http.post(format!("{base}stats")).json(&body),
            ("prompt_done", body) => self.http.delete(format!("{base}prompt")).json(&body),
            (_, body) => self.http.delete(format!("{base}stats")).json(&body),
        };
        send_ack(req).await
    }
}

/// One open request on each of `read_engines` engines of the read cluster.
struct Seed {
    http: reqwest::Client,
    targets: Vec<String>,
    spec: LoadSpec,
    next: AtomicU64,
}

impl Workload for Seed {
    async fn op(&self, client: usize, _seq: u64) -> Result<(), OpError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let target = &self.targets[client % self.targets.len()];
        let body = json!({
            "cluster": self.spec.read_cluster(),
            "request_id": format!("{}-seed-{i}", self.spec.run),
            "prompt_length": 512,
            "ip": engine_ip(200, i),
        });
        send_ack(
            self.http
                .post(format!("http://{target}/v1/load/stats"))
                .json(&body),
        )
        .await
    }
}

/// Runs the update phase with `cfg`.
pub async fn run_updates(spec: &LoadSpec, cfg: &RunConfig) -> Result<RunStats> {
    drive(Arc::new(LoadUpdates::new(spec)?), cfg).await
}

/// Fills the read cluster, waits until every target lists all its engines, then runs the
/// read phase once per entry of `clients` (read clients), with `cfg` otherwise.
pub async fn run_reads(
    spec: &LoadSpec,
    clients: &[usize],
    cfg: &RunConfig,
) -> Result<Vec<RunStats>> {
    let seed = Seed {
        http: http_client(spec.clients, spec.timeout)?,
        targets: spec.targets.clone(),
        spec: spec.clone(),
        next: AtomicU64::new(0),
    };
    let fill = RunConfig {
        clients: spec.clients,
        limit: Limit::Ops(spec.read_engines as u64),
        warmup: Duration::ZERO,
        error_pause: cfg.error_pause,
    };
    let seeded = drive(Arc::new(seed), &fill).await?;
    if seeded.failed() > 0 {
        bail!("filling the read cluster failed: {:?}", seeded.errors);
    }
    let urls: Vec<String> = spec
        .targets
        .iter()
        .map(|t| format!("http://{t}/v1/load/stats?cluster={}", spec.read_cluster()))
        .collect();
    let http = http_client(1, spec.timeout)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    for url in &urls {
        loop {
            let (status, v) = call_json(http.get(url))
                .await
                .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
            let n = v["data"].as_array().map_or(0, Vec::len);
            if status == 200 && n == spec.read_engines {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{url}: {n} engines listed (status {status}), {} expected",
                    spec.read_engines
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut out = Vec::new();
    for &n in clients {
        let cfg = RunConfig {
            clients: n,
            ..cfg.clone()
        };
        let get = GetAck::new(urls.clone(), n, spec.timeout)?;
        out.push(drive(Arc::new(get), &cfg).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn updates(batch: usize) -> LoadUpdates {
        LoadUpdates::new(&LoadSpec {
            targets: vec!["127.0.0.1:1".into()],
            clients: 2,
            engines: 10,
            clusters: 2,
            read_engines: 0,
            run: "r".into(),
            timeout: Duration::from_secs(1),
            batch,
        })
        .expect("spec")
    }

    #[test]
    fn a_batch_carries_the_same_updates_in_order() {
        let (one, four) = (updates(1), updates(4));
        for seq in 0..3u64 {
            let ops = four.batch_operations(1, seq);
            assert_eq!(ops.len(), 4);
            for (k, op) in ops.iter().enumerate() {
                let (name, mut want) = one.update(1, seq * 4 + k as u64);
                want["op"] = json!(name);
                assert_eq!(op, &want, "batch {seq}, operation {k}");
            }
        }
        // add, prompt_done, done of one request, then the next request's add.
        let first = four.batch_operations(0, 0);
        let names: Vec<&str> = first.iter().map(|o| o["op"].as_str().unwrap()).collect();
        assert_eq!(names, ["add", "prompt_done", "done", "add"]);
        assert!(LoadUpdates::new(&LoadSpec {
            batch: 0,
            ..four.spec.clone()
        })
        .is_err());
    }
}
