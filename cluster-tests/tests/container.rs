//! Container clusters (testing layer 5): the Dockerfile's `FROM scratch` image, three
//! containers on a private Docker network, driven through `scripts/docker-cluster.sh`.
//!
//! - a network partition (`docker network disconnect`) of the leader: the majority
//!   elects a new leader and keeps committing, the isolated node commits nothing, and
//!   after `heal` all three converge with every acknowledged write;
//! - a rolling `docker restart` of every container under continuous writes loses no
//!   acknowledged write;
//! - `docker kill` of a follower and its return from its volume: it catches up.
//!
//! Every test is ignored by default: it needs a Docker engine and the image built from
//! the static binary. `scripts/ci-containers.sh` builds both once and runs them with
//! `--ignored --test-threads=1`. Each test uses its own container prefix and published
//! port range, and removes its containers, network and volumes when it ends, also on
//! failure (after printing the containers' logs).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cluster_tests::poll;
use futures::StreamExt;
use serde_json::Value;

/// Bound on one HTTP request; longer than the nodes' forward timeout (5 s in the script).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one acknowledged write may take while the cluster elects or restarts.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long convergence, catch-up and readiness may take.
const SETTLE: Duration = Duration::from_secs(90);
/// A new leader must be named within this after the old one is cut off. Elections take
/// 1-2 s (election timeout); the rest is slack for two shared cores.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound on the background writer's keys (it normally stops long before).
const MAX_BACKGROUND_WRITES: usize = 100_000;

const IDS: [u64; 3] = [1, 2, 3];

/// The workspace root (where `scripts/` and the Dockerfile are).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// Whether 127.0.0.1:`port` can be bound right now.
fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// HTTP access to the three nodes through their published ports.
#[derive(Clone)]
struct Nodes {
    http: reqwest::Client,
    base_port: u16,
}

impl Nodes {
    fn url(&self, n: u64, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", u64::from(self.base_port) + n)
    }

    /// `GET path` on node `n`: (status, body), `None` when no answer arrived.
    async fn get(&self, n: u64, path: &str) -> Option<(u16, String)> {
        let resp = self.http.get(self.url(n, path)).send().await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    /// `GET path` on node `n` parsed as JSON when the answer is 2xx.
    async fn json(&self, n: u64, path: &str) -> Option<Value> {
        let (status, body) = self.get(n, path).await?;
        if !(200..300).contains(&status) {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// `PUT /meta/{hash}/{key}` with a raw text body; the status, `Err` without answer.
    async fn put(&self, n: u64, hash: &str, key: &str, value: &str) -> Result<u16> {
        let resp = self
            .http
            .put(self.url(n, &format!("/meta/{hash}/{key}")))
            .header("content-type", "text/plain")
            .body(value.to_string())
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }

    /// Writes until acknowledged (200) through `via`, round robin from `first`: 503, 5xx
    /// and transport errors are retried on the next node until [`WRITE_TIMEOUT`].
    async fn write_acked(&self, via: &[u64], first: usize, hash: &str, value: &str) -> Result<()> {
        let deadline = Instant::now() + WRITE_TIMEOUT;
        let mut last = String::new();
        for attempt in 0.. {
            let n = via[(first + attempt) % via.len()];
            match self.put(n, hash, "v", value).await {
                Ok(200) => return Ok(()),
                Ok(s) if s >= 500 => last = format!("node {n}: HTTP {s}"),
                Ok(s) => bail!("write {hash} through node {n}: unexpected HTTP {s}"),
                Err(e) => last = format!("node {n}: {e:#}"),
            }
            if Instant::now() > deadline {
                break;
            }
            // Back-off between retries while the cluster elects; not a condition wait.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("write {hash} not acknowledged within {WRITE_TIMEOUT:?} (last: {last})")
    }

    /// The value of `hash/v` on node `n`: `Some(Some(v))` found, `Some(None)` 404.
    async fn read(&self, n: u64, hash: &str, linearizable: bool) -> Option<Option<String>> {
        let q = if linearizable {
            "?consistency=linearizable"
        } else {
            ""
        };
        match self.get(n, &format!("/meta/{hash}/v{q}")).await? {
            (200, body) => Some(Some(body)),
            (404, _) => Some(None),
            _ => None,
        }
    }

    /// (appliedIndex, commitIndex) of node `n` from `GET /status`.
    async fn indexes(&self, n: u64) -> Option<(u64, u64)> {
        let s = self.json(n, "/status").await?;
        Some((
            s["raft"]["appliedIndex"].as_u64()?,
            s["raft"]["commitIndex"].as_u64()?,
        ))
    }

    /// The leader id node `n` names in `GET /leader`.
    async fn leader_of(&self, n: u64) -> Option<u64> {
        self.json(n, "/leader").await?["id"].as_str()?.parse().ok()
    }

    /// Waits until every node of `ask` names the same leader, one of `among`.
    async fn agreed_leader(&self, ask: &[u64], among: &[u64], timeout: Duration) -> u64 {
        let what = format!("nodes {ask:?} to agree on a leader among {among:?}");
        poll::until(&what, timeout, || async {
            let mut agreed = None;
            for &n in ask {
                let l = self.leader_of(n).await?;
                if agreed.is_some_and(|a| a != l) {
                    return None;
                }
                agreed = Some(l);
            }
            agreed.filter(|l| among.contains(l))
        })
        .await
    }

    /// Waits until node `n` answers `GET /ready` with 200.
    async fn wait_ready(&self, n: u64) {
        poll::until(&format!("node {n} to be ready"), SETTLE, || async {
            matches!(self.get(n, "/ready").await, Some((200, _))).then_some(())
        })
        .await
    }

    /// Waits until `nodes` have applied the same index, each its known commit index and
    /// at least `min`; returns that index.
    async fn wait_converged(&self, nodes: &[u64], min: u64) -> u64 {
        let what = format!("nodes {nodes:?} to apply the same index (at least {min})");
        poll::until(&what, SETTLE, || async {
            let mut applied = Vec::new();
            for &n in nodes {
                let (a, c) = self.indexes(n).await?;
                if a < c || a < min {
                    return None;
                }
                applied.push(a);
            }
            let first = applied[0];
            applied.iter().all(|a| *a == first).then_some(first)
        })
        .await
    }

    /// Waits until every `(hash, value)` is readable with its value on every node of
    /// `nodes` (several reads in flight).
    async fn wait_all_keys(&self, nodes: &[u64], keys: &[(String, String)], linearizable: bool) {
        let checks = nodes
            .iter()
            .flat_map(|&n| keys.iter().map(move |(h, v)| (n, h.clone(), v.clone())));
        futures::stream::iter(checks)
            .for_each_concurrent(8, |(n, hash, value)| async move {
                let what = format!("node {n} to serve {hash}/v = {value:?}");
                poll::until(&what, SETTLE, || async {
                    let got = self.read(n, &hash, linearizable).await?;
                    (got.as_deref() == Some(value.as_str())).then_some(())
                })
                .await
            })
            .await;
    }
}

/// A three-container cluster started by `scripts/docker-cluster.sh up`; removed
/// (containers, network, volumes) on drop.
struct DockerCluster {
    prefix: String,
    nodes: Nodes,
}

impl DockerCluster {
    /// Brings up a cluster named after `tag` on a free published port range.
    fn up(tag: &str) -> DockerCluster {
        let pid = std::process::id();
        let offset = match tag {
            "part" => 0,
            "roll" => 10,
            _ => 20,
        };
        let mut base = 21_000 + (pid % 1000) as u16 * 30 + offset;
        let mut tries = 0;
        while !(1..=3).all(|n| port_free(base + n)) {
            tries += 1;
            assert!(tries < 20, "no free published port range found");
            base = 21_000 + (base - 21_000 + 3_000) % 30_000;
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        let c = DockerCluster {
            prefix: format!("mct-{tag}-{pid}-"),
            nodes: Nodes {
                http,
                base_port: base,
            },
        };
        // A failed `up` still leaves `c` to clean up whatever was created.
        let started = Instant::now();
        c.script(&["up"]).expect("docker-cluster.sh up");
        eprintln!(
            "[{tag}] cluster {}1..3 up on 127.0.0.1:{}..{} in {:.1?}",
            c.prefix,
            base + 1,
            base + 3,
            started.elapsed()
        );
        c
    }

    fn name(&self, n: u64) -> String {
        format!("{}{n}", self.prefix)
    }

    /// Runs `scripts/docker-cluster.sh args` for this cluster; its stdout.
    fn script(&self, args: &[&str]) -> Result<String> {
        let script = root().join("scripts/docker-cluster.sh");
        let out = Command::new("bash")
            .arg(&script)
            .args(args)
            .current_dir(root())
            .env("MC_PREFIX", &self.prefix)
            .env("BASE_PORT", self.nodes.base_port.to_string())
            .env("MC_SKIP_BUILD", "1")
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "docker-cluster.sh {args:?} failed ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }

    /// Runs `docker args`; its stdout.
    fn docker(args: &[&str]) -> Result<String> {
        let out = Command::new("docker")
            .args(args)
            .output()
            .context("running docker")?;
        if !out.status.success() {
            bail!(
                "docker {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `GET /status` of node `n` from inside its container (works while partitioned).
    fn exec_status(&self, n: u64) -> Result<Value> {
        let out = DockerCluster::docker(&[
            "exec",
            &self.name(n),
            "/metacenter",
            "cluster",
            "status",
            "--node",
            "127.0.0.1:8080",
        ])?;
        serde_json::from_str(&out).with_context(|| format!("cluster status output: {out}"))
    }

    fn running(&self, n: u64) -> bool {
        DockerCluster::docker(&["inspect", "-f", "{{.State.Running}}", &self.name(n)])
            .is_ok_and(|s| s.trim() == "true")
    }

    fn print_logs(&self) {
        for n in IDS {
            let name = self.name(n);
            let logs = Command::new("docker")
                .args(["logs", "--tail", "60", &name])
                .output()
                .map(|o| {
                    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                    s.push_str(&String::from_utf8_lossy(&o.stderr));
                    s
                })
                .unwrap_or_else(|e| format!("docker logs failed: {e}"));
            eprintln!("----- {name} log, last lines -----\n{logs}");
        }
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        if let Err(e) = self.script(&["down"]) {
            eprintln!("docker-cluster.sh down: {e:#}");
        }
        // Belt and braces: whatever `down` left behind.
        for n in IDS {
            let _ = DockerCluster::docker(&["rm", "-f", &self.name(n)]);
            let _ = DockerCluster::docker(&["volume", "rm", &format!("{}-data", self.name(n))]);
        }
        let _ = DockerCluster::docker(&["network", "rm", &format!("{}-net", self.prefix)]);
    }
}

/// Writes `count` fresh objects `{tag}-{i}` (i from `from`) through `via`, each
/// acknowledged; returns the (hash, value) pairs.
async fn write_keys(
    nodes: &Nodes,
    via: &[u64],
    tag: &str,
    from: usize,
    count: usize,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(count);
    for i in from..from + count {
        let (hash, value) = (format!("{tag}-{i}"), format!("value-{i}"));
        nodes
            .write_acked(via, i, &hash, &value)
            .await
            .expect("acknowledged write");
        out.push((hash, value));
    }
    out
}

fn raft_u64(status: &Value, field: &str) -> u64 {
    status["raft"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no raft.{field} in status {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the static image; run by scripts/ci-containers.sh"]
async fn partitioned_leader_majority_moves_on_and_healed_node_converges() {
    let c = DockerCluster::up("part");
    let nodes = c.nodes.clone();
    let old = nodes.agreed_leader(&IDS, &IDS, SETTLE).await;
    let majority: Vec<u64> = IDS.into_iter().filter(|n| *n != old).collect();
    let mut acked = write_keys(&nodes, &IDS, "part-before", 0, 10).await;
    let before = nodes.wait_converged(&IDS, 0).await;
    let isolated_before = c.exec_status(old).expect("status of the leader");
    let count_before = isolated_before["counts"]["metadata"]
        .as_u64()
        .expect("count");
    let commit_before = raft_u64(&isolated_before, "commitIndex");
    eprintln!("[part] leader {old}, all applied {before}, cutting it off");

    c.script(&["partition", &old.to_string()])
        .expect("partition");
    let cut = Instant::now();
    let new = nodes
        .agreed_leader(&majority, &majority, ELECTION_TIMEOUT)
        .await;
    eprintln!(
        "[part] majority {majority:?} named leader {new} {:.1?} after the partition",
        cut.elapsed()
    );

    // The majority keeps committing; the isolated node commits and applies nothing.
    for round in 0..3 {
        let batch = write_keys(&nodes, &majority, "part-during", round * 10, 10).await;
        acked.extend(batch);
        let majority_applied = nodes.wait_converged(&majority, 0).await;
        let isolated = c.exec_status(old).expect("status of the isolated node");
        eprintln!(
            "[part] round {round}: majority applied {majority_applied}, isolated node raft {}",
            isolated["raft"]
        );
        assert!(
            majority_applied > before,
            "the majority did not commit: applied {majority_applied}, before {before}"
        );
        assert!(
            raft_u64(&isolated, "appliedIndex") < majority_applied,
            "isolated node applied as far as the majority: {isolated}"
        );
        assert_eq!(
            raft_u64(&isolated, "commitIndex"),
            commit_before,
            "isolated node committed something while cut off: {isolated}"
        );
        assert_eq!(
            isolated["counts"]["metadata"].as_u64(),
            Some(count_before),
            "isolated node holds objects written after the partition: {isolated}"
        );
    }
    let majority_applied = nodes.wait_converged(&majority, 0).await;

    c.script(&["heal", &old.to_string()]).expect("heal");
    let healed = Instant::now();
    let converged = nodes.wait_converged(&IDS, majority_applied).await;
    eprintln!(
        "[part] healed; all three applied {converged} {:.1?} later",
        healed.elapsed()
    );
    let after = nodes.agreed_leader(&IDS, &IDS, SETTLE).await;
    eprintln!("[part] leader after heal: {after}");
    nodes.wait_all_keys(&IDS, &acked, false).await;
    nodes.wait_all_keys(&IDS, &acked, true).await;
    eprintln!(
        "[part] {} acknowledged keys on all three nodes",
        acked.len()
    );
}

/// Shared state of the background writer.
#[derive(Default)]
struct Writer {
    acked: Mutex<Vec<(String, String)>>,
    count: AtomicUsize,
    retries: AtomicUsize,
    unexpected: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// Writes fresh keys round robin over the nodes until told to stop, retrying each key
/// on the next node after a 5xx or a transport error; records acknowledged writes.
async fn background_writer(nodes: Nodes, w: Arc<Writer>) {
    for i in 0..MAX_BACKGROUND_WRITES {
        let (hash, value) = (format!("roll-{i}"), format!("value-{i}"));
        let mut attempt = 0u64;
        loop {
            if w.stop.load(Ordering::SeqCst) {
                return;
            }
            let n = IDS[(i + attempt as usize) % IDS.len()];
            match nodes.put(n, &hash, "v", &value).await {
                Ok(200) => {
                    w.acked.lock().unwrap().push((hash, value));
                    w.count.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Ok(s) if s >= 500 => {}
                Ok(s) => {
                    w.unexpected
                        .lock()
                        .unwrap()
                        .push(format!("{hash} via node {n}: HTTP {s}"));
                    break;
                }
                Err(_) => {}
            }
            attempt += 1;
            w.retries.fetch_add(1, Ordering::SeqCst);
            // Back-off between retries while a node restarts; not a condition wait.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until the writer has `more` acknowledged writes beyond its current count.
async fn wait_progress(w: &Writer, more: usize, what: &str) {
    let target = w.count.load(Ordering::SeqCst) + more;
    poll::until(what, SETTLE, || async {
        (w.count.load(Ordering::SeqCst) >= target).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the static image; run by scripts/ci-containers.sh"]
async fn rolling_restart_under_writes_loses_no_acknowledged_write() {
    let c = DockerCluster::up("roll");
    let nodes = c.nodes.clone();
    nodes.agreed_leader(&IDS, &IDS, SETTLE).await;
    let w = Arc::new(Writer::default());
    let task = tokio::spawn(background_writer(nodes.clone(), w.clone()));
    wait_progress(&w, 20, "writes before the first restart").await;

    for n in IDS {
        let leader = nodes.leader_of(n).await;
        let started = Instant::now();
        DockerCluster::docker(&["restart", &c.name(n)]).expect("docker restart");
        nodes.wait_ready(n).await;
        for m in IDS {
            nodes.wait_ready(m).await;
        }
        eprintln!(
            "[roll] restarted {} (leader before: {leader:?}), all ready {:.1?} later, {} acked so far",
            c.name(n),
            started.elapsed(),
            w.count.load(Ordering::SeqCst)
        );
        wait_progress(&w, 20, &format!("writes after restarting node {n}")).await;
    }

    w.stop.store(true, Ordering::SeqCst);
    task.await.expect("writer task");
    let acked = w.acked.lock().unwrap().clone();
    let unexpected = w.unexpected.lock().unwrap().clone();
    eprintln!(
        "[roll] {} writes acknowledged, {} retries",
        acked.len(),
        w.retries.load(Ordering::SeqCst)
    );
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    nodes.wait_converged(&IDS, 0).await;
    let check = Instant::now();
    nodes.wait_all_keys(&IDS, &acked, true).await;
    eprintln!(
        "[roll] every acknowledged key read linearizably on all three in {:.1?}",
        check.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the static image; run by scripts/ci-containers.sh"]
async fn killed_follower_returns_from_its_volume_and_catches_up() {
    let c = DockerCluster::up("kill");
    let nodes = c.nodes.clone();
    let leader = nodes.agreed_leader(&IDS, &IDS, SETTLE).await;
    let follower = IDS.into_iter().find(|n| *n != leader).expect("a follower");
    let others: Vec<u64> = IDS.into_iter().filter(|n| *n != follower).collect();
    let mut acked = write_keys(&nodes, &IDS, "kill-before", 0, 10).await;
    nodes.wait_converged(&IDS, 0).await;

    c.script(&["kill", &follower.to_string()]).expect("kill");
    assert!(!c.running(follower), "{} still running", c.name(follower));
    let volume = format!("{}-data", c.name(follower));
    DockerCluster::docker(&["volume", "inspect", &volume]).expect("the volume stays");
    acked.extend(write_keys(&nodes, &others, "kill-during", 0, 30).await);
    let others_applied = nodes.wait_converged(&others, 0).await;
    eprintln!("[kill] killed node {follower} (leader {leader}); others applied {others_applied}");

    c.script(&["start", &follower.to_string()]).expect("start");
    let started = Instant::now();
    nodes.wait_ready(follower).await;
    nodes.wait_all_keys(&[follower], &acked, false).await;
    eprintln!(
        "[kill] node {follower} back and serving all {} keys {:.1?} after start",
        acked.len(),
        started.elapsed()
    );
    let status = nodes.json(follower, "/status").await.expect("status");
    assert_eq!(status["nodeId"].as_u64(), Some(follower), "{status}");
    let voters = status["membership"]["voters"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(voters, 3, "membership after the restart: {status}");
    nodes.wait_converged(&IDS, others_applied).await;
    nodes.wait_all_keys(&IDS, &acked, true).await;
}
