//! In-process clusters: N `metacenter` nodes ([`metacenter::Server`]) in the current
//! tokio runtime, each with its own temporary data directory, all sharing one
//! [`Faults`] so tests can partition the peer network.
//!
//! Every node gets fixed loopback ports chosen up front (bind `127.0.0.1:0`, read the
//! port, release it), so a node restarted from its data directory keeps the addresses
//! recorded in the raft membership. Node ids are 1-based and never reused; every method
//! takes a node id, not a position.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use cluster_tests::inproc::Cluster;
//! let c = Cluster::start(3, &[]).await?;
//! let leader = c.leader_id().await;
//! c.api().put(leader, "h", "k", "v").await?;
//! c.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Call [`Cluster::shutdown`] at the end of a test; [`Drop`] is a best-effort fallback
//! (for panicking tests) that stops the nodes and removes the directories.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use metacenter::server::StartError;
use metacenter::{Config, Server};
use metacenter_raft::{Faults, NodeId, RaftNode};
use reqwest::header::{HeaderMap, HeaderValue, ETAG};
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::poll;

/// Settings every node gets unless a test overrides them: generous enough not to
/// flap on two busy cores.
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("raft.heartbeat_ms", "100"),
    ("raft.election_min_ms", "800"),
    ("raft.election_max_ms", "1600"),
];

/// How long helpers wait for the cluster to settle (leader, convergence).
pub const SETTLE: Duration = Duration::from_secs(60);

/// Client-side bound on one HTTP request (adding a node waits for its catch-up).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One HTTP answer from a node.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// The `ETag` header, quotes removed.
    pub etag: Option<String>,
    /// The `X-Applied-Index` header.
    pub applied_index: Option<u64>,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// Serialises in-process cluster tests: hold the guard for the whole test so that
/// several three-node clusters do not compete for two cores and flap.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Installs a test-friendly tracing subscriber (warnings and errors, captured per test).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
}

/// One member slot: its fixed addresses, its data directory, and the server if running.
struct Slot {
    id: NodeId,
    api: SocketAddr,
    peer: SocketAddr,
    dir: TempDir,
    server: Option<Server>,
}

/// A running in-process cluster.
pub struct Cluster {
    slots: BTreeMap<NodeId, Slot>,
    faults: Arc<Faults>,
    settings: Vec<(String, String)>,
    api: Api,
}

/// Picks `n` distinct free loopback ports (all held until every one is chosen).
fn free_ports(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("picking a free port")?;
    listeners
        .iter()
        .map(|l| l.local_addr().context("reading a picked port"))
        .collect()
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) with [`DEFAULT_SETTINGS`] overridden by `settings`,
    /// initialises them as one cluster through `POST /cluster/init` on node 1 and waits
    /// until every node agrees on a leader.
    pub async fn start(n: usize, settings: &[(&str, &str)]) -> anyhow::Result<Cluster> {
        if n == 0 {
            bail!("a cluster needs at least one node");
        }
        let mut cluster = Cluster {
            slots: BTreeMap::new(),
            faults: Arc::new(Faults::default()),
            settings: DEFAULT_SETTINGS
                .iter()
                .chain(settings)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            api: Api::new()?,
        };
        for _ in 0..n {
            cluster.spawn_node().await?;
        }
        cluster.init().await?;
        cluster.leader_id().await;
        Ok(cluster)
    }

    /// `POST /cluster/init` on the lowest id with every current slot as a member.
    async fn init(&self) -> anyhow::Result<()> {
        let members: Vec<Value> = self
            .slots
            .values()
            .map(|s| json!({ "id": s.id, "peer": s.peer.to_string(), "api": s.api.to_string() }))
            .collect();
        let first = *self.slots.keys().next().context("no nodes")?;
        let r = self
            .api
            .send(
                first,
                Method::POST,
                "/cluster/init",
                Some(json!({ "members": members })),
            )
            .await?;
        if !r.ok() {
            bail!("cluster init failed: {} {}", r.status, r.body);
        }
        Ok(())
    }

    /// The settings this cluster starts nodes with.
    fn config(&self, slot: &Slot) -> anyhow::Result<Config> {
        let mut cfg = Config::default();
        cfg.set("node.id", &slot.id.to_string())?;
        cfg.set("node.data_dir", &slot.dir.path().to_string_lossy())?;
        cfg.set("node.listen", &slot.api.to_string())?;
        cfg.set("node.peer_listen", &slot.peer.to_string())?;
        cfg.set("cluster.secret", "inproc-cluster-secret")?;
        for (k, v) in &self.settings {
            cfg.set(k, v)?;
        }
        cfg.faults = self.faults.clone();
        Ok(cfg)
    }

    /// Starts a fresh node with the next id on new ports, not yet a member of anything.
    /// Retries with other ports if a picked port was taken in the meantime.
    pub async fn spawn_node(&mut self) -> anyhow::Result<NodeId> {
        let id = self.slots.keys().next_back().map_or(1, |last| last + 1);
        let mut dir = tempfile::Builder::new()
            .prefix(&format!("metacenter-node{id}-"))
            .tempdir()
            .context("creating a data directory")?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let ports = free_ports(2)?;
            let mut slot = Slot {
                id,
                api: ports[0],
                peer: ports[1],
                dir,
                server: None,
            };
            match Server::start(self.config(&slot)?).await {
                Ok(server) => {
                    slot.server = Some(server);
                    self.api.addrs.insert(id, slot.api);
                    self.slots.insert(id, slot);
                    return Ok(id);
                }
                Err(StartError::Bind { .. }) if attempts < 5 => dir = slot.dir,
                Err(e) => return Err(anyhow!(e).context(format!("starting node {id}"))),
            }
        }
    }

    /// Asks a running member (not `id`) to add node `id`: `POST /cluster/add`. Returns
    /// once the member answered, i.e. the node caught up and became a voter.
    pub async fn join(&self, id: NodeId) -> anyhow::Result<()> {
        let slot = self.slot(id)?;
        let member = self
            .live_ids()
            .into_iter()
            .find(|m| *m != id)
            .context("no running member to ask")?;
        let body = json!({ "id": id, "peer": slot.peer.to_string(), "api": slot.api.to_string() });
        let r = self
            .api
            .send(member, Method::POST, "/cluster/add", Some(body))
            .await?;
        if !r.ok() {
            bail!(
                "adding node {id} through node {member}: {} {}",
                r.status,
                r.body
            );
        }
        Ok(())
    }

    /// Starts a fresh node and adds it to the cluster; returns its id.
    pub async fn add_node(&mut self) -> anyhow::Result<NodeId> {
        let id = self.spawn_node().await?;
        self.join(id).await?;
        Ok(id)
    }

    /// Stops node `id` (graceful shutdown; its data directory and ports are kept).
    pub async fn stop(&mut self, id: NodeId) -> anyhow::Result<()> {
        let slot = self
            .slots
            .get_mut(&id)
            .with_context(|| format!("no node {id}"))?;
        let server = slot
            .server
            .take()
            .with_context(|| format!("node {id} is not running"))?;
        server.shutdown().await;
        Ok(())
    }

    /// Starts stopped node `id` again from its data directory, on the same ports.
    pub async fn restart(&mut self, id: NodeId) -> anyhow::Result<()> {
        let slot = self.slot(id)?;
        if slot.server.is_some() {
            bail!("node {id} is already running");
        }
        let cfg = self.config(slot)?;
        let server = Server::start(cfg)
            .await
            .with_context(|| format!("restarting node {id}"))?;
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.server = Some(server);
        }
        Ok(())
    }

    /// Cuts node `id` off from every other node (peer traffic only; clients still
    /// reach its API).
    pub fn isolate(&self, id: NodeId) {
        let others: Vec<NodeId> = self.ids().into_iter().filter(|o| *o != id).collect();
        self.faults.isolate(id, &others);
    }

    /// Removes every injected fault.
    pub fn heal(&self) {
        self.faults.heal();
    }

    /// The shared fault table (for finer cuts than [`Cluster::isolate`]).
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// Every node id ever started, running or not.
    pub fn ids(&self) -> Vec<NodeId> {
        self.slots.keys().copied().collect()
    }

    /// Ids of the running nodes.
    pub fn live_ids(&self) -> Vec<NodeId> {
        self.slots
            .values()
            .filter(|s| s.server.is_some())
            .map(|s| s.id)
            .collect()
    }

    fn slot(&self, id: NodeId) -> anyhow::Result<&Slot> {
        self.slots.get(&id).with_context(|| format!("no node {id}"))
    }

    /// The running server of node `id`.
    pub fn server(&self, id: NodeId) -> anyhow::Result<&Server> {
        self.slot(id)?
            .server
            .as_ref()
            .with_context(|| format!("node {id} is not running"))
    }

    /// The raft node of running node `id`.
    pub fn node(&self, id: NodeId) -> anyhow::Result<&Arc<RaftNode>> {
        Ok(self.server(id)?.node())
    }

    /// The HTTP client for every node's API (clone it into tasks).
    pub fn api(&self) -> &Api {
        &self.api
    }
}

/// Leader election and convergence.
impl Cluster {
    /// Waits until every running node knows the same leader, itself running, and
    /// returns its id. Panics after [`SETTLE`].
    pub async fn leader_id(&self) -> NodeId {
        self.leader_among(&self.live_ids()).await
    }

    /// Like [`Cluster::leader_id`] but only asks (and accepts a leader among) `ids`:
    /// used while a partitioned minority still believes in an old leader.
    pub async fn leader_among(&self, ids: &[NodeId]) -> NodeId {
        let what = format!("nodes {ids:?} to agree on a leader among them");
        poll::until(&what, SETTLE, || async { self.agreed_leader(ids) }).await
    }

    fn agreed_leader(&self, ids: &[NodeId]) -> Option<NodeId> {
        let mut leaders = ids.iter().map(|id| {
            let server = self.server(*id).ok()?;
            server.node().leader().map(|(l, _)| l)
        });
        let first = leaders.next()??;
        let all_agree = leaders.all(|l| l == Some(first));
        (all_agree && ids.contains(&first)).then_some(first)
    }

    /// Waits until every running node has applied the same index.
    pub async fn wait_applied_equal(&self) -> u64 {
        self.wait_applied_equal_among(&self.live_ids()).await
    }

    /// Waits until nodes `ids` have applied the same index, at least the commit index
    /// each of them knows, and returns it.
    pub async fn wait_applied_equal_among(&self, ids: &[NodeId]) -> u64 {
        let what = format!("nodes {ids:?} to apply the same index");
        poll::until(&what, SETTLE, || async {
            let mut applied = Vec::new();
            for id in ids {
                let node = self.server(*id).ok()?.node();
                if node.applied_index() < node.committed_index() {
                    return None;
                }
                applied.push(node.applied_index());
            }
            let first = *applied.first()?;
            applied.iter().all(|a| *a == first).then_some(first)
        })
        .await
    }

    /// Every metadata object of node `id`'s local state machine: hash -> fields.
    pub fn dump(&self, id: NodeId) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
        let store = self.server(id)?.node().store();
        let mut out = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.meta_list(after.as_deref(), 1000)?;
            for hash in page.hash_ids {
                if let Some(obj) = store.meta_get(&hash)? {
                    out.insert(hash, obj.fields);
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }
}

/// A cheap, cloneable HTTP client for the nodes' client APIs, addressed by node id.
/// Node addresses never change, so a copy stays valid across stops and restarts.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    addrs: BTreeMap<NodeId, SocketAddr>,
}

impl Api {
    fn new() -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            http,
            addrs: BTreeMap::new(),
        })
    }

    /// The client API address of node `id`.
    pub fn addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.addrs.get(&id).copied()
    }

    /// Sends `method path` to node `id` with an optional JSON body. `Err` only when no
    /// HTTP answer arrived.
    pub async fn send(
        &self,
        id: NodeId,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Reply> {
        self.send_with(id, method, path, body, HeaderMap::new())
            .await
    }

    /// [`Api::send`] with extra request headers.
    pub async fn send_with(
        &self,
        id: NodeId,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: HeaderMap,
    ) -> anyhow::Result<Reply> {
        let addr = self
            .addrs
            .get(&id)
            .with_context(|| format!("no node {id}"))?;
        let url = format!("http://{addr}{path}");
        let mut req = self.http.request(method.clone(), &url).headers(headers);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let etag = header(ETAG.as_str()).map(|e| e.trim_matches('"').to_string());
        let applied_index = header("x-applied-index").and_then(|v| v.parse().ok());
        let body = resp
            .text()
            .await
            .with_context(|| format!("{method} {url}"))?;
        Ok(Reply {
            status,
            body,
            etag,
            applied_index,
        })
    }

    /// `PUT /meta/{hash}/{key}` with `{"value": value}` through node `id`.
    pub async fn put(
        &self,
        id: NodeId,
        hash: &str,
        key: &str,
        value: &str,
    ) -> anyhow::Result<Reply> {
        let body = json!({ "value": value });
        self.send(id, Method::PUT, &format!("/meta/{hash}/{key}"), Some(body))
            .await
    }

    /// `GET /meta/{hash}/{key}` from node `id`'s local state.
    pub async fn get(&self, id: NodeId, hash: &str, key: &str) -> anyhow::Result<Reply> {
        self.send(id, Method::GET, &format!("/meta/{hash}/{key}"), None)
            .await
    }

    /// `GET /meta/{hash}/{key}?consistency=linearizable` from node `id`.
    pub async fn get_linearizable(
        &self,
        id: NodeId,
        hash: &str,
        key: &str,
    ) -> anyhow::Result<Reply> {
        let path = format!("/meta/{hash}/{key}?consistency=linearizable");
        self.send(id, Method::GET, &path, None).await
    }

    /// `GET /meta/{hash}/{key}` with header `X-Consistency: linearizable`.
    pub async fn get_linearizable_header(
        &self,
        id: NodeId,
        hash: &str,
        key: &str,
    ) -> anyhow::Result<Reply> {
        let mut h = HeaderMap::new();
        h.insert("x-consistency", HeaderValue::from_static("linearizable"));
        let path = format!("/meta/{hash}/{key}");
        self.send_with(id, Method::GET, &path, None, h).await
    }

    /// Polls node `id` until `GET /meta/{hash}/{key}` answers 200 with `value`.
    pub async fn wait_value(&self, id: NodeId, hash: &str, key: &str, value: &str) {
        let what = format!("node {id} to serve {hash}/{key} = {value:?}");
        poll::until(&what, SETTLE, || async {
            let r = self.get(id, hash, key).await.ok()?;
            (r.status == 200 && r.body == value).then_some(())
        })
        .await
    }
}

impl Cluster {
    /// Stops every running node and removes the data directories.
    pub async fn shutdown(mut self) {
        for slot in self.slots.values_mut() {
            if let Some(server) = slot.server.take() {
                server.shutdown().await;
            }
        }
    }
}

impl Drop for Cluster {
    /// Best effort for tests that did not call [`Cluster::shutdown`] (panics): stop the
    /// nodes that still run, then remove their directories.
    fn drop(&mut self) {
        let running: Vec<Server> = self
            .slots
            .values_mut()
            .filter_map(|s| s.server.take())
            .collect();
        let dirs: Vec<TempDir> = std::mem::take(&mut self.slots)
            .into_values()
            .map(|s| s.dir)
            .collect();
        if running.is_empty() {
            return;
        }
        self.faults.heal();
        let stop_all = async move {
            for server in running {
                let _ = tokio::time::timeout(Duration::from_secs(15), server.shutdown()).await;
            }
            drop(dirs);
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| handle.block_on(stop_all));
        } else {
            // Cannot block here: finish in the background (cancelled, dropping the
            // directories, if the runtime ends first).
            handle.spawn(stop_all);
        }
    }
}
