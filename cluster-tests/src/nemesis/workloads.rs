//! The workloads a nemesis campaign runs, each with its checker:
//!
//! - registers: random put / get / CAS on a few metadata keys through random nodes,
//!   recorded for the linearizability checker ([`crate::linearizability`]). Half the
//!   operations go to keys kept for the whole campaign (any stale read or lost write,
//!   however far apart, shows in the checker's quick checks), half to keys that change
//!   every [`KEY_EPOCH`], whose short histories the checker's full search decides;
//! - services: services that heartbeat through random nodes every 250 ms must never be
//!   found deregistered; after the campaign one stops and must go within its bound;
//! - load: inference requests added and finished through random nodes, each retried
//!   with its request id until acknowledged; after quiescence every engine's queued
//!   count on every node equals the adds not finished.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

use crate::linearizability::{Client, History, Op, Outcome, Ret};

/// `deregisterAfterMs` of the campaign's services.
pub const SERVICE_AFTER_MS: u64 = 8000;
pub const REGISTER_KEYS: [&str; 3] = ["nem-a", "nem-b", "nem-c"];
/// How long the register workload uses one set of keys.
pub const KEY_EPOCH: Duration = Duration::from_secs(3);
const ENGINES: [&str; 2] = ["10.9.0.1", "10.9.0.2"];

/// What the workloads share: a stop flag, counts, acknowledgement times, violations.
#[derive(Default)]
pub struct Shared {
    pub stop: AtomicBool,
    pub history: History,
    /// Acknowledged operations by workload.
    pub ops: Mutex<BTreeMap<&'static str, usize>>,
    /// When each register operation got a definite answer.
    pub acks: Mutex<Vec<Instant>>,
    pub violations: Mutex<Vec<String>>,
    /// Load requests added and not finished, by engine.
    pub open: Mutex<BTreeMap<String, u64>>,
    pub load_in_progress: AtomicUsize,
}

impl Shared {
    fn count(&self, workload: &'static str) {
        self.count_n(workload, 1);
    }

    pub(super) fn count_n(&self, what: &'static str, n: usize) {
        *self.ops.lock().unwrap().entry(what).or_default() += n;
    }

    pub fn violation(&self, v: String) {
        self.violations.lock().unwrap().push(v);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("http client")
}

/// Random put / get / CAS through random nodes until stopped.
pub async fn registers(c: usize, seed: u64, apis: Vec<String>, s: Arc<Shared>) {
    let (http, mut rng) = (http(), StdRng::seed_from_u64(seed));
    let mut client = Client::new(&s.history);
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let (mut n, began) = (0, Instant::now());
    while !s.stopped() {
        n += 1;
        let name = REGISTER_KEYS[rng.random_range(0..REGISTER_KEYS.len())];
        let key = &if rng.random_bool(0.5) {
            name.to_string()
        } else {
            let epoch = began.elapsed().as_millis() / KEY_EPOCH.as_millis();
            format!("{name}-{epoch}")
        };
        let api = &apis[rng.random_range(0..apis.len())];
        let value = format!("c{c}-{n}");
        let op = match rng.random_range(0..10) {
            0..=3 => Op::Put(value),
            4..=7 => Op::Get,
            _ => Op::Cas {
                expected_version: seen.get(key).copied().unwrap_or(0),
                value,
            },
        };
        if let Outcome::Done(ret) = client.run(&http, api, key, op).await {
            if let Ret::PutOk { version } | Ret::CasOk { version } | Ret::GetOk { version, .. } =
                ret
            {
                seen.insert(key.clone(), version);
            }
            s.acks.lock().unwrap().push(Instant::now());
            s.count("registers");
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Registers service `name`, then heartbeats it through random nodes until stopped;
/// any answer that it is gone is a violation.
pub async fn service(name: String, seed: u64, apis: Vec<String>, s: Arc<Shared>) {
    let (http, mut rng) = (http(), StdRng::seed_from_u64(seed));
    let body = json!({ "name": name, "deregisterAfterMs": SERVICE_AFTER_MS });
    loop {
        let api = &apis[rng.random_range(0..apis.len())];
        let r = http
            .put(format!("http://{api}/services/{name}"))
            .json(&body)
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while !s.stopped() {
        let api = &apis[rng.random_range(0..apis.len())];
        let url = format!("http://{api}/services/{name}/heartbeat");
        match http.post(url).send().await.map(|r| r.status().as_u16()) {
            Ok(200) => s.count("services"),
            Ok(404) => s.violation(format!("live service {name} was deregistered ({api})")),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sends `body` to `path` through random nodes until one answers 200.
async fn until_acked(
    http: &reqwest::Client,
    rng: &mut StdRng,
    apis: &[String],
    m: reqwest::Method,
    path: &str,
    body: &Value,
) {
    loop {
        let api = &apis[rng.random_range(0..apis.len())];
        let r = http
            .request(m.clone(), format!("http://{api}{path}"))
            .json(body)
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Adds requests and finishes most of them, each retried until acknowledged.
pub async fn load(c: usize, seed: u64, apis: Vec<String>, s: Arc<Shared>) {
    let (http, mut rng) = (http(), StdRng::seed_from_u64(seed));
    let mut n = 0;
    while !s.stopped() {
        n += 1;
        let id = format!("nem-{c}-{n}");
        let ip = ENGINES[rng.random_range(0..ENGINES.len())];
        let add = json!({ "cluster": "nem", "request_id": id, "prompt_length": 7, "ip": ip });
        s.load_in_progress.fetch_add(1, Ordering::SeqCst);
        until_acked(
            &http,
            &mut rng,
            &apis,
            reqwest::Method::POST,
            "/v1/load/stats",
            &add,
        )
        .await;
        s.count("load");
        if rng.random_range(0..10) < 7 {
            let done = json!({ "request_id": id });
            until_acked(
                &http,
                &mut rng,
                &apis,
                reqwest::Method::DELETE,
                "/v1/load/stats",
                &done,
            )
            .await;
            s.count("load");
        } else {
            *s.open.lock().unwrap().entry(ip.to_string()).or_default() += 1;
        }
        s.load_in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The queued counts of the campaign's engines as `api` answers them, linearizably.
pub async fn queued(api: &str) -> Option<BTreeMap<String, u64>> {
    let url = format!("http://{api}/v1/load/stats?cluster=nem&consistency=linearizable");
    let v: Value = http().get(url).send().await.ok()?.json().await.ok()?;
    let rows = v["data"].as_array()?;
    Some(
        rows.iter()
            .filter(|r| r["queued_req_num"].as_u64() != Some(0))
            .map(|r| {
                (
                    r["ip"].as_str().unwrap_or_default().to_string(),
                    r["queued_req_num"].as_u64().unwrap_or(0),
                )
            })
            .collect(),
    )
}
