//! `kill -9` of a one-node cluster while it ingests metric points, builds snapshots and
//! merges chunks, five times over: after each restart every acknowledged batch is there
//! exactly once, and a batch in flight at the kill is there whole or not at all.
//!
//! The settings keep both background rewrites going: a snapshot is due after every ten
//! entries or 64 KiB of log (the pacer looks twice a second; the log behind it is
//! purged), and batches of 100 points leave chunks of one tier that a merge rewrites
//! every eighth batch. Each kill lands at a random moment while batches go on back to
//! back (the seed is printed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster_tests::process::ProcessCluster;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};

const RUN: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
const BATCH: u64 = 100;
const KILLS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(60);

/// The value of `step`: distinct per step, so a point read back names its batch.
fn value(step: u64) -> f64 {
    step as f64 * 0.5
}

/// Writes batch `b` (steps `b * BATCH ..`); `true` when acknowledged.
async fn write(http: &reqwest::Client, api: &str, b: u64) -> bool {
    let items: Vec<Value> = (b * BATCH..(b + 1) * BATCH)
        .map(|s| json!({ "run_id": RUN, "metric_name": "loss", "step": s, "value": value(s) }))
        .collect();
    let url = format!("http://{api}/api/v1/metrics/batch");
    let r = http
        .post(url)
        .json(&json!({ "metrics": items }))
        .send()
        .await;
    r.is_ok_and(|r| r.status().is_success())
}

/// Every stored point of the series, step -> (value, how many times).
async fn read_all(http: &reqwest::Client, api: &str) -> BTreeMap<u64, (f64, usize)> {
    let mut out: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("http://{api}/api/v1/runs/{RUN}/metrics/loss?limit=10000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
        for p in v["metrics"].as_array().expect("a page of points") {
            let e = out.entry(p["step"].as_u64().unwrap()).or_insert((0.0, 0));
            *e = (p["value"].as_f64().unwrap(), e.1 + 1);
        }
        match v["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Snapshots built since the node started.
async fn snapshots_built(http: &reqwest::Client, api: &str) -> u64 {
    let r = http
        .get(format!("http://{api}/status"))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["snapshots"]["built"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_points_survive_kill9_during_snapshots_and_merges() {
    let seed: u64 = rand::rng().random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let settings = [
        ("raft.snapshot_min_log_bytes", "65536"),
        ("raft.snapshot_every", "10"),
        ("raft.keep_log_bytes", "1"),
    ];
    let mut c = ProcessCluster::start_with(1, &settings)
        .await
        .expect("node");
    let api = c.api(1).expect("api");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (mut acked, mut unknown, mut built) = (Vec::new(), Vec::new(), 0);
    let mut next = 0;
    for _ in 0..KILLS {
        c.wait_ready(1, TIMEOUT).await.expect("ready");
        // Batches back to back until the kill, which lands at a random moment of the
        // snapshot and merge cycle.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn({
            let (http, api, stop) = (http.clone(), api.clone(), stop.clone());
            async move {
                let mut outcomes = Vec::new();
                let mut b = next;
                while !stop.load(Ordering::SeqCst) {
                    outcomes.push((b, write(&http, &api, b).await));
                    b += 1;
                }
                outcomes
            }
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        built += snapshots_built(&http, &api).await;
        c.kill9(1).expect("kill -9");
        stop.store(true, Ordering::SeqCst);
        for (b, ok) in writer.await.unwrap() {
            if ok {
                acked.push(b)
            } else {
                unknown.push(b)
            }
            next = b + 1;
        }
        c.restart(1).expect("restart");
    }
    c.wait_ready(1, TIMEOUT).await.expect("ready");
    let stored = read_all(&http, &api).await;
    eprintln!(
        "{} batches acknowledged, {} unknown; {} points stored; {built} snapshots built",
        acked.len(),
        unknown.len(),
        stored.len(),
    );
    assert!(
        built >= KILLS as u64,
        "too few snapshots to crash into: {built}"
    );
    for (step, (v, n)) in &stored {
        assert_eq!(*n, 1, "step {step} stored {n} times");
        assert_eq!(*v, value(*step), "step {step}");
    }
    for batch in &acked {
        let have = (batch * BATCH..(batch + 1) * BATCH).filter(|s| stored.contains_key(s));
        assert_eq!(
            have.count() as u64,
            BATCH,
            "acknowledged batch {batch} incomplete"
        );
    }
    for batch in &unknown {
        let have = (batch * BATCH..(batch + 1) * BATCH).filter(|s| stored.contains_key(s));
        let n = have.count() as u64;
        assert!(
            n == 0 || n == BATCH,
            "batch {batch} half there ({n} points)"
        );
    }
    let expected: u64 = BATCH * acked.len() as u64;
    assert!(stored.len() as u64 >= expected);
    disk_areas_are_reported(&http, &api).await;
}

/// `/status` and `/metrics` give the bytes of each area of the data directory, and the
/// snapshot files are among them once a snapshot is there.
async fn disk_areas_are_reported(http: &reqwest::Client, api: &str) {
    let r = http
        .get(format!("http://{api}/status"))
        .send()
        .await
        .unwrap();
    let s: Value = r.json().await.unwrap();
    for area in ["db", "raftLog", "snapshots"] {
        assert!(
            s["disk"][area].as_u64().unwrap() > 0,
            "{area}: {}",
            s["disk"]
        );
    }
    assert!(s["disk"]["searchIndex"].is_u64(), "{}", s["disk"]);
    let r = http
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("\ndisk_bytes{area=\"snapshots\"} "), "{text}");
}
