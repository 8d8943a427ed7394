//! A leader whose wall clock is wrong keeps live services and load, and expires dead ones.
//!
//! Node 1 bootstraps the process cluster, so it leads, and runs under libfaketime
//! (Debian's `faketime`) with its wall clock one hour ahead, then one hour behind: a
//! service registered and heartbeating through node 2 must stay registered throughout,
//! and once it stops it must go within its bound; an inference request added through
//! node 2 must count on its engine until its TTL, then go with the engine. Before
//! expiry was measured on the leader's monotonic clock, the skewed leader deregistered
//! the service within a second, and expired the request at its first load GC.

use std::path::Path;
use std::time::{Duration, Instant};

use cluster_tests::process::ProcessCluster;
use serde_json::{json, Value};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// `services.stale_threshold_ms` + `deregisterAfterMs` of the test's service.
const THRESHOLD_MS: u64 = 1000;
const AFTER_MS: u64 = 2000;

/// Heartbeats `name` through `api` every 250 ms for `d`, checking after each that the
/// service is still registered.
async fn keep_alive(http: &reqwest::Client, api: &str, name: &str, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let url = format!("http://{api}/services/{name}/heartbeat");
        let r = http.post(url).send().await.expect("heartbeat answered");
        assert_eq!(r.status(), 200, "heartbeat of a live service");
        let r = http
            .get(format!("http://{api}/services/{name}"))
            .send()
            .await;
        assert_eq!(
            r.expect("answered").status(),
            200,
            "a live service is registered"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A three-node cluster whose node 1 leads with its wall clock one hour ahead; the
/// returned directory holds the clock file (write `-1h` to it to jump back).
async fn skewed_cluster(settings: &[(&str, &str)]) -> (ProcessCluster, tempfile::TempDir) {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "needs Debian's faketime (apt-get install faketime)"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = dir.path().join("faketime");
    std::fs::write(&clock, "+1h").expect("fake clock");
    let clock = clock.to_str().expect("UTF-8 path");
    let env = [
        (1, "LD_PRELOAD", LIBFAKETIME),
        (1, "FAKETIME_TIMESTAMP_FILE", clock),
        (1, "FAKETIME_NO_CACHE", "1"),
        (1, "FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let c = ProcessCluster::start_with_env(3, settings, &env)
        .await
        .expect("cluster");
    assert_eq!(c.leader(Duration::from_secs(60)).await.expect("leader"), 1);
    (c, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_leader_keeps_live_services_and_expires_dead_ones() {
    let threshold = THRESHOLD_MS.to_string();
    let settings = [
        ("services.stale_threshold_ms", threshold.as_str()),
        ("services.reap_interval_ms", "200"),
    ];
    let (c, dir) = skewed_cluster(&settings).await;
    let http = reqwest::Client::new();
    let (one, two) = (c.api(1).expect("node 1"), c.api(2).expect("node 2"));

    // Node 1's wall clock is an hour ahead: it stamps a heartbeat an hour ahead.
    let probe = json!({ "name": "probe" });
    let url = format!("http://{one}/services/probe");
    let r = http
        .put(&url)
        .json(&probe)
        .send()
        .await
        .expect("registered");
    assert_eq!(r.status(), 200);
    let v: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    let stamped = chrono::DateTime::parse_from_rfc3339(v["lastHeartbeat"].as_str().unwrap());
    let ahead = stamped.unwrap().timestamp() - chrono::Utc::now().timestamp();
    assert!(
        (3500..3700).contains(&ahead),
        "node 1's clock is {ahead} s ahead"
    );

    let live = json!({ "name": "live", "deregisterAfterMs": AFTER_MS });
    let url = format!("http://{two}/services/live");
    let r = http.put(&url).json(&live).send().await.expect("registered");
    assert_eq!(r.status(), 200);
    keep_alive(&http, &two, "live", Duration::from_secs(5)).await;
    // The leader's clock jumps two hours back.
    std::fs::write(dir.path().join("faketime"), "-1h").expect("fake clock");
    keep_alive(&http, &two, "live", Duration::from_secs(4)).await;

    // Silent from now: gone within its bound (threshold, deregisterAfterMs, a reap
    // interval and room for a slow machine), on every node.
    let deadline = Instant::now() + Duration::from_millis(THRESHOLD_MS + AFTER_MS + 10_000);
    for api in c.apis() {
        let url = format!("http://{api}/services/live");
        while http.get(&url).send().await.unwrap().status() != 404 {
            assert!(
                Instant::now() < deadline,
                "a silent service stayed on {api}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The TTLs of the load test: request, engine and tombstone.
const LOAD_TTL_MS: u64 = 6000;

/// The queued requests of engine 10.0.0.7 of cluster `c` as node `api` sees it
/// (`None`: no such engine).
async fn queued(http: &reqwest::Client, api: &str) -> Option<u64> {
    let url = format!("http://{api}/v1/load/stats?cluster=c");
    let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    let rows = v["data"].as_array().cloned().unwrap_or_default();
    let row = rows.iter().find(|r| r["ip"] == "10.0.0.7")?;
    row["queued_req_num"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_leader_keeps_load_for_its_ttl_then_expires_it() {
    let ttl = LOAD_TTL_MS.to_string();
    let settings = [
        ("load.gc_interval_ms", "200"),
        ("load.req_expire_ms", ttl.as_str()),
        ("load.engine_expire_ms", ttl.as_str()),
        ("load.tombstone_ttl_ms", ttl.as_str()),
    ];
    let (c, dir) = skewed_cluster(&settings).await;
    let http = reqwest::Client::new();
    let two = c.api(2).expect("node 2");
    let add = json!({ "cluster": "c", "request_id": "r1", "prompt_length": 5, "ip": "10.0.0.7" });
    let r = http
        .post(format!("http://{two}/v1/load/stats"))
        .json(&add)
        .send()
        .await;
    assert_eq!(r.expect("added").status(), 200);
    let added = Instant::now();

    // Well inside its TTL, through a jump of the leader's clock, it counts.
    let jump = added + Duration::from_millis(LOAD_TTL_MS / 3);
    let keep_until = added + Duration::from_millis(LOAD_TTL_MS * 2 / 3);
    while Instant::now() < keep_until {
        assert_eq!(
            queued(&http, &two).await,
            Some(1),
            "a live request was expired"
        );
        if Instant::now() > jump {
            std::fs::write(dir.path().join("faketime"), "-1h").expect("fake clock");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Then it goes with its engine, on every node, within its TTL and room for a slow
    // machine.
    let deadline = added + Duration::from_millis(LOAD_TTL_MS + 10_000);
    for api in c.apis() {
        while queued(&http, &api).await.is_some() {
            assert!(
                Instant::now() < deadline,
                "an expired engine stayed on {api}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
