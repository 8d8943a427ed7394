//! A leader whose wall clock is wrong keeps live services and expires dead ones.
//!
//! Node 1 bootstraps the process cluster, so it leads, and runs under libfaketime
//! (Debian's `faketime`) with its wall clock one hour ahead, then one hour behind: a
//! service registered and heartbeating through node 2 must stay registered throughout,
//! and once it stops it must go within its bound. Before expiry was measured on the
//! leader's monotonic clock, the skewed leader deregistered it within a second.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_leader_keeps_live_services_and_expires_dead_ones() {
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
    let threshold = THRESHOLD_MS.to_string();
    let settings = [
        ("services.stale_threshold_ms", threshold.as_str()),
        ("services.reap_interval_ms", "200"),
    ];
    let c = ProcessCluster::start_with_env(3, &settings, &env)
        .await
        .expect("cluster");
    assert_eq!(c.leader(Duration::from_secs(60)).await.expect("leader"), 1);
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
