//! `GET /metrics` against the real Prometheus tools (Debian package `prometheus`):
//!
//! - every node's exposition passes `promtool check metrics`;
//! - a real `prometheus` server scraping a three-node in-process cluster every second
//!   ends up with `raft_term` and `http_requests_total` series from all three targets.
//!
//! These are ordinary tests: when `promtool` or `prometheus` is missing they fail and
//! say to `apt-get install prometheus` (CI installs it). Prometheus listens on a free
//! loopback port and keeps its data in a temporary directory; both it and the cluster
//! are stopped even when a test fails.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster_tests::inproc::{self, Cluster};
use cluster_tests::poll;
use serde_json::Value;

/// How long Prometheus may take to start and to have scraped every target.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(90);

/// Panics with installation advice unless `tool` runs.
fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{tool}` is not installed or does not run: these tests need the Debian package \
         `prometheus` (run `apt-get update && apt-get install -y prometheus`)"
    );
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// A three-node in-process cluster with a few metadata writes (so the HTTP counters and
/// histograms have samples on several routes and statuses).
async fn cluster_with_traffic() -> Cluster {
    let c = Cluster::start(3, &[]).await.expect("three-node cluster");
    let leader = c.leader_id().await;
    for i in 0..20 {
        let node = [leader, 1, 2, 3][i % 4];
        let r = c
            .api()
            .put(node, &format!("prom-{i}"), "k", &format!("v{i}"))
            .await
            .expect("put");
        assert_eq!(r.status, 200, "put through node {node}: {}", r.body);
    }
    for id in c.ids() {
        let r = c.api().get(id, "prom-0", "k").await.expect("get");
        assert!(r.status == 200 || r.status == 404, "get: {r:?}");
        let r = c.api().get(id, "no-such-hash", "k").await.expect("get");
        assert_eq!(r.status, 404, "missing key: {r:?}");
    }
    c.wait_applied_equal().await;
    c
}

fn api_addrs(c: &Cluster) -> Vec<SocketAddr> {
    c.ids()
        .into_iter()
        .map(|id| c.server(id).expect("running node").api_addr())
        .collect()
}

/// `promtool check metrics` with `text` on stdin: (exit success, exit status and output).
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning promtool");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("waiting for promtool");
    let mut report = format!("promtool {}\n", out.status);
    report.push_str(&String::from_utf8_lossy(&out.stdout));
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_metrics_pass_promtool_check() {
    require("promtool");
    let _serial = inproc::serial().await;
    let c = cluster_with_traffic().await;
    let http = http();
    for addr in api_addrs(&c) {
        let resp = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status().as_u16(), 200, "GET /metrics on {addr}");
        let text = resp.text().await.expect("metrics body");
        for name in [
            "http_requests_total",
            "http_request_duration_seconds_bucket",
            "raft_term",
            "raft_leader_id",
            "raft_is_leader",
            "raft_commit_index",
            "raft_applied_index",
            "raft_last_log_index",
            "storage_size_bytes",
            "stored_objects",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{addr}: no `{name}` sample in /metrics:\n{text}"
            );
        }
        let (ok, report) = promtool_check(&text);
        eprintln!("promtool check metrics for {addr}: {report}");
        assert!(
            ok,
            "promtool check metrics failed for {addr}:\n{report}\n--- exposition ---\n{text}"
        );
    }
    c.shutdown().await;
}

/// Percent-encodes everything but ASCII letters, digits and `_` (a query parameter).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A running `prometheus`; killed and reaped on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping `targets` every second.
    fn start(targets: &[SocketAddr]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("metacenter-prometheus-")
            .tempdir()
            .expect("temporary directory");
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: metacenter\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("writing prometheus.yml");
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawning prometheus");
        Prometheus { child, addr, dir }
    }

    fn log_tail(&self) -> String {
        let path = self.dir.path().join("prometheus.log");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The distinct `instance` labels of the instant query `query`, `None` on any error.
    async fn instances(&self, http: &reqwest::Client, query: &str) -> Option<BTreeSet<String>> {
        let url = format!("http://{}/api/v1/query?query={}", self.addr, encode(query));
        let resp = http.get(url).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body: Value = resp.json().await.ok()?;
        if body["status"] != "success" {
            return None;
        }
        let set = body["data"]["result"]
            .as_array()?
            .iter()
            .filter_map(|r| r["metric"]["instance"].as_str().map(str::to_string))
            .collect();
        Some(set)
    }

    /// Stops Prometheus (SIGKILL is fine: its storage is thrown away).
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- prometheus log, last lines -----\n{}",
                self.log_tail()
            );
        }
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_all_three_nodes() {
    require("prometheus");
    let _serial = inproc::serial().await;
    let c = cluster_with_traffic().await;
    let targets = api_addrs(&c);
    let want: BTreeSet<String> = targets.iter().map(|t| t.to_string()).collect();
    let mut prom = Prometheus::start(&targets);
    let http = http();
    for query in ["raft_term", "http_requests_total", "up == 1"] {
        let what = format!("prometheus to return `{query}` for instances {want:?}");
        let got = poll::until(&what, SCRAPE_TIMEOUT, || async {
            let got = prom.instances(&http, query).await?;
            want.is_subset(&got).then_some(got)
        })
        .await;
        assert_eq!(got, want, "`{query}` series from unexpected instances");
    }
    prom.stop();
    c.shutdown().await;
}
