//! Clusters of the real `metacenter` binary, one OS process per node.
//!
//! [`ProcessCluster::start`] runs `metacenter run` three times on free loopback ports:
//! node 1 with `--bootstrap`, the others with `--join` to node 1's API, and returns once
//! every node lists all of them as voters and a leader is known. Each node writes its
//! stdout and stderr to `node<N>.log` in the cluster's temporary directory; the tails of
//! those logs are printed when a start fails or the cluster is dropped while panicking.
//!
//! Faults: [`kill9`](ProcessCluster::kill9) (SIGKILL), [`stop`](ProcessCluster::stop) /
//! [`cont`](ProcessCluster::cont) (SIGSTOP / SIGCONT) and
//! [`restart`](ProcessCluster::restart) (same arguments, data directory and ports).
//! Nodes are addressed by their raft id, 1-based. Dropping the cluster kills every node
//! and removes the directory.
//!
//! A restore test [`prepare`](ProcessCluster::prepare)s nodes without starting them,
//! writes their data directories, then [`boot_members`](ProcessCluster::boot_members);
//! [`add_joiner`](ProcessCluster::add_joiner) starts a new node that joins a member.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

/// Settings every process cluster gets unless overridden: generous raft timeouts so
/// that two shared cores and parallel builds do not cause spurious elections.
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("raft.heartbeat_ms", "100"),
    ("raft.election_min_ms", "1000"),
    ("raft.election_max_ms", "2000"),
    ("raft.forward_timeout_ms", "10000"),
    ("log.level", "info"),
];

/// The cluster secret of every process cluster (through the environment, as an
/// operator should pass it: the command line is readable by every local process).
pub const SECRET: &str = "process-cluster-secret";

/// How long start-up and membership changes may take.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The path of the `metacenter` binary built by `cargo build --bin metacenter`, or
/// `$METACENTER_BIN` when set.
pub fn binary_path() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("METACENTER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir), // an absolute dir replaces the workspace prefix
        None => workspace.join("target"),
    };
    let bin = target.join("debug").join("metacenter");
    if !bin.is_file() {
        bail!(
            "the metacenter binary is missing at {}: run `cargo build --bin metacenter` first",
            bin.display()
        );
    }
    Ok(bin)
}

/// Picks `n` distinct free loopback ports (all bound at once, then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding 127.0.0.1:0")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The last `lines` lines of a file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How a node joins its cluster when it starts.
enum Start {
    /// `--bootstrap`: a new one-node cluster.
    Bootstrap,
    /// `--join API`: asks that member to add it.
    Join(String),
    /// Neither: its data directory already names its cluster (a restore).
    Member,
}

/// One node process and what is needed to restart it.
struct Node {
    id: u64,
    api: String,
    peer: String,
    data: PathBuf,
    args: Vec<String>,
    /// Extra environment of this node's process (a fake clock, ...).
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    stopped: bool,
}

impl Node {
    fn new(
        dir: &Path,
        id: u64,
        (api_port, peer_port): (u16, u16),
        start: Start,
        settings: &[(&str, &str)],
        env: Vec<(String, String)>,
    ) -> Node {
        let api = format!("127.0.0.1:{api_port}");
        let peer = format!("127.0.0.1:{peer_port}");
        let data = dir.join(format!("data{id}"));
        let args = node_args(id, &api, &peer, &data, start, settings);
        Node {
            id,
            api,
            peer,
            data,
            args,
            env,
            log: dir.join(format!("node{id}.log")),
            child: None,
            stopped: false,
        }
    }

    fn spawn(&mut self, bin: &Path) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err: File = log.try_clone()?;
        let child = Command::new(bin)
            .args(&self.args)
            .env("METACENTER_CLUSTER_SECRET", SECRET)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting node {} ({})", self.id, bin.display()))?;
        self.child = Some(child);
        self.stopped = false;
        Ok(())
    }

    fn pid(&self) -> Result<Pid> {
        let child = self
            .child
            .as_ref()
            .with_context(|| format!("node {} is not running", self.id))?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        Ok(Pid::from_raw(pid))
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        kill(self.pid()?, sig).with_context(|| format!("sending {sig} to node {}", self.id))
    }

    /// SIGKILL and reap; a no-op when not running.
    fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("SIGKILL")?;
            child.wait().context("reaping a killed node")?;
        }
        self.stopped = false;
        Ok(())
    }

    /// Running and not stopped.
    fn is_live(&self) -> bool {
        self.child.is_some() && !self.stopped
    }
}

/// A cluster of `metacenter` processes on loopback.
pub struct ProcessCluster {
    nodes: Vec<Node>,
    bin: PathBuf,
    http: reqwest::Client,
    dir: TempDir,
}

impl ProcessCluster {
    /// Starts three nodes with [`DEFAULT_SETTINGS`].
    pub async fn start() -> Result<ProcessCluster> {
        ProcessCluster::start_with(3, &[]).await
    }

    /// Starts `n` nodes; `settings` (key, value) override [`DEFAULT_SETTINGS`].
    pub async fn start_with(n: usize, settings: &[(&str, &str)]) -> Result<ProcessCluster> {
        ProcessCluster::start_with_env(n, settings, &[]).await
    }

    /// [`ProcessCluster::start_with`], node `id` of each `(id, key, value)` started with
    /// that environment variable too (and restarted with it).
    pub async fn start_with_env(
        n: usize,
        settings: &[(&str, &str)],
        env: &[(u64, &str, &str)],
    ) -> Result<ProcessCluster> {
        let bin = binary_path()?;
        let dir = tempfile::Builder::new()
            .prefix("metacenter-proc-")
            .tempdir()?;
        let ports = free_ports(2 * n)?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let id = i as u64 + 1;
            let start = match i {
                0 => Start::Bootstrap,
                _ => Start::Join(format!("127.0.0.1:{}", ports[0])),
            };
            let env = env.iter().filter(|(of, _, _)| *of == id);
            let env = env.map(|(_, k, v)| (k.to_string(), v.to_string()));
            let ports = (ports[2 * i], ports[2 * i + 1]);
            nodes.push(Node::new(
                dir.path(),
                id,
                ports,
                start,
                settings,
                env.collect(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .build()?;
        let mut cluster = ProcessCluster {
            nodes,
            bin,
            http,
            dir,
        };
        if let Err(e) = cluster.boot().await {
            cluster.print_logs();
            return Err(e);
        }
        Ok(cluster)
    }

    async fn boot(&mut self) -> Result<()> {
        let bin = self.bin.clone();
        for node in &mut self.nodes {
            node.spawn(&bin)?;
        }
        let ids = self.ids();
        self.wait_voters(&ids, START_TIMEOUT).await?;
        self.leader(START_TIMEOUT).await?;
        Ok(())
    }

    /// `n` nodes on free ports, none started: the caller writes their data directories
    /// ([`data_dir`](Self::data_dir); a restore for [`members`](Self::members)), then
    /// [`boot_members`](Self::boot_members) starts each with neither `--bootstrap` nor
    /// `--join`.
    pub fn prepare(n: usize, settings: &[(&str, &str)]) -> Result<ProcessCluster> {
        let dir = tempfile::Builder::new()
            .prefix("metacenter-proc-")
            .tempdir()?;
        let ports = free_ports(2 * n)?;
        let nodes = (0..n)
            .map(|i| {
                let ports = (ports[2 * i], ports[2 * i + 1]);
                Node::new(
                    dir.path(),
                    i as u64 + 1,
                    ports,
                    Start::Member,
                    settings,
                    Vec::new(),
                )
            })
            .collect();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(ProcessCluster {
            nodes,
            bin: binary_path()?,
            http,
            dir,
        })
    }

    /// Starts every node of a [`prepare`](Self::prepare)d cluster; returns once all
    /// list each other as voters and a leader is known.
    pub async fn boot_members(&mut self) -> Result<()> {
        let booted = self.boot().await;
        if booted.is_err() {
            self.print_logs();
        }
        booted
    }

    /// `ID=PEER@API,...` of every node, as `metacenter restore --members` takes it.
    pub fn members(&self) -> String {
        let each = self
            .nodes
            .iter()
            .map(|n| format!("{}={}@{}", n.id, n.peer, n.api));
        each.collect::<Vec<_>>().join(",")
    }

    /// The data directory of node `id`.
    pub fn data_dir(&self, id: u64) -> Result<PathBuf> {
        Ok(self.node(id)?.data.clone())
    }

    /// Starts a new node (the next id, fresh ports and data) that asks node `via` to
    /// add it; returns its id.
    pub fn add_joiner(&mut self, via: u64, settings: &[(&str, &str)]) -> Result<u64> {
        let id = self.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        let ports = free_ports(2)?;
        let start = Start::Join(self.api(via)?);
        let mut node = Node::new(
            self.dir.path(),
            id,
            (ports[0], ports[1]),
            start,
            settings,
            Vec::new(),
        );
        node.spawn(&self.bin)?;
        self.nodes.push(node);
        Ok(id)
    }

    /// Kills node `id`, wipes its data directory and starts it again with the same id
    /// and addresses, asking node `via` to add it (`settings` as at the start): how an
    /// operator brings a removed machine back.
    pub fn rejoin_wiped(&mut self, id: u64, via: u64, settings: &[(&str, &str)]) -> Result<()> {
        let (bin, join) = (self.bin.clone(), self.api(via)?);
        let node = self.node_mut(id)?;
        node.kill9()?;
        std::fs::remove_dir_all(&node.data)
            .with_context(|| format!("wiping {}", node.data.display()))?;
        node.args = node_args(
            id,
            &node.api,
            &node.peer,
            &node.data,
            Start::Join(join),
            settings,
        );
        node.spawn(&bin)
    }

    /// Node ids, 1-based.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    fn node(&self, id: u64) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    /// The API address (host:port) of node `id`.
    pub fn api(&self, id: u64) -> Result<String> {
        Ok(self.node(id)?.api.clone())
    }

    /// API addresses of all nodes, in id order.
    pub fn apis(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.api.clone()).collect()
    }

    /// Ids of nodes that are running and not stopped.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.is_live())
            .map(|n| n.id)
            .collect()
    }

    /// Nodes that exited on their own (not through [`kill9`](Self::kill9)), with their
    /// exit status. A healthy cluster returns an empty list.
    pub fn exited(&mut self) -> Vec<(u64, std::process::ExitStatus)> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let Some(Ok(Some(status))) = n.child.as_mut().map(Child::try_wait) {
                out.push((n.id, status));
            }
        }
        out
    }

    /// The cluster's temporary directory (data directories and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `GET path` on node `id`; the JSON body of a 2xx answer, else `None`.
    pub async fn get_json(&self, id: u64, path: &str) -> Option<Value> {
        let url = format!("http://{}{path}", self.node(id).ok()?.api);
        let resp = self.http.get(url).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// Waits until every node in `ids` lists exactly `ids` as voters.
    pub async fn wait_voters(&self, ids: &[u64], timeout: Duration) -> Result<()> {
        let mut want = ids.to_vec();
        want.sort_unstable();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut all = true;
            for &id in ids {
                all &= self.voters(id).await.as_ref() == Some(&want);
            }
            if all {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nodes {ids:?} did not all list voters {want:?} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn voters(&self, id: u64) -> Option<Vec<u64>> {
        let m = self.get_json(id, "/cluster/members").await?;
        let mut v: Vec<u64> = m["voters"]
            .as_array()?
            .iter()
            .filter_map(|n| n["id"].as_u64())
            .collect();
        v.sort_unstable();
        Some(v)
    }

    /// Waits until a live node leads and every live node agrees; returns its id.
    pub async fn leader(&self, timeout: Duration) -> Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(id) = self.agreed_leader().await {
                return Ok(id);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "no leader agreed by live nodes {:?} within {timeout:?}",
                    self.live()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn agreed_leader(&self) -> Option<u64> {
        let live = self.live();
        let mut agreed = None;
        for &id in &live {
            let l = self.get_json(id, "/leader").await?;
            let lid: u64 = l["id"].as_str()?.parse().ok()?;
            if agreed.is_some_and(|a| a != lid) {
                return None;
            }
            agreed = Some(lid);
        }
        let lid = agreed?;
        let role = self.get_json(lid, "/role").await?;
        (live.contains(&lid) && role["role"] == "leader").then_some(lid)
    }

    /// Waits until node `id` answers `GET /ready` with 200.
    pub async fn wait_ready(&self, id: u64, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.get_json(id, "/ready").await.is_none() {
            if tokio::time::Instant::now() > deadline {
                bail!("node {id} not ready within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// SIGKILL node `id` (and reap it). Its data directory stays.
    pub fn kill9(&mut self, id: u64) -> Result<()> {
        self.node_mut(id)?.kill9()
    }

    /// SIGSTOP node `id`: it keeps its sockets but does nothing.
    pub fn stop(&mut self, id: u64) -> Result<()> {
        let node = self.node_mut(id)?;
        node.signal(Signal::SIGSTOP)?;
        node.stopped = true;
        Ok(())
    }

    /// SIGCONT node `id` after [`stop`](Self::stop).
    pub fn cont(&mut self, id: u64) -> Result<()> {
        let node = self.node_mut(id)?;
        node.signal(Signal::SIGCONT)?;
        node.stopped = false;
        Ok(())
    }

    /// Starts node `id` again with the same arguments (kills it first if running).
    pub fn restart(&mut self, id: u64) -> Result<()> {
        let bin = self.bin.clone();
        let node = self.node_mut(id)?;
        node.kill9()?;
        node.spawn(&bin)
    }

    /// The path of node `id`'s log file.
    pub fn log_path(&self, id: u64) -> Result<PathBuf> {
        Ok(self.node(id)?.log.clone())
    }

    /// Prints the last lines of every node's log to stderr.
    pub fn print_logs(&self) {
        for n in &self.nodes {
            eprintln!(
                "----- node {} log ({}), last lines -----\n{}",
                n.id,
                n.log.display(),
                tail(&n.log, 60)
            );
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for n in &mut self.nodes {
            if let Err(e) = n.kill9() {
                eprintln!("cleaning up node {}: {e:#}", n.id);
            }
        }
    }
}

/// The `metacenter run` arguments of one node.
fn node_args(
    id: u64,
    api: &str,
    peer: &str,
    data: &Path,
    start: Start,
    settings: &[(&str, &str)],
) -> Vec<String> {
    let mut args: Vec<String> = ["run", "--id", &id.to_string(), "--listen", api]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["--peer-listen".into(), peer.into()]);
    args.extend(["--data-dir".into(), data.display().to_string()]);
    match start {
        Start::Join(j) => args.extend(["--join".into(), j]),
        Start::Bootstrap => args.push("--bootstrap".into()),
        Start::Member => {}
    }
    let overridden = |k: &str| settings.iter().any(|(s, _)| *s == k);
    let defaults = DEFAULT_SETTINGS.iter().filter(|(k, _)| !overridden(k));
    for (k, v) in defaults.chain(settings.iter()) {
        args.extend(["--set".into(), format!("{k}={v}")]);
    }
    args
}
