//! In-process nodes: one bootstrapped node, a node that is started but not waited for
//! (uninitialised, or a cluster member to be), three nodes initialised as one cluster;
//! every node on ephemeral loopback ports with its own temporary data directory, and
//! restartable on that directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use metacenter::{Config, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::reply::{answer, Reply};
use super::{client, until};

/// Raft timings quicker than production's, for tests that elect or fail over.
pub const QUICK_RAFT: &[(&str, &str)] = &[
    ("raft.heartbeat_ms", "100"),
    ("raft.election_min_ms", "500"),
    ("raft.election_max_ms", "1000"),
];

/// A setting value standing for the node's data directory.
pub const DATA_DIR: &str = "{data}";

/// One in-process node and its data directory.
pub struct Node {
    server: Option<Server>,
    pub base: String,
    settings: Vec<(String, String)>,
    env: Vec<(String, String)>,
    pub dir: TempDir,
}

impl Node {
    /// A bootstrapped one-node cluster with the given extra settings, ready to serve.
    pub async fn single(settings: &[(&str, &str)]) -> Node {
        let n = Node::launch(settings, &[]).await;
        n.wait_ready().await;
        n
    }

    /// A node started with `settings` over the bootstrapping base (so
    /// `("node.bootstrap", "false")` makes it uninitialised) and meta-core's
    /// environment variables `env` (`FILES_PATH`, `STALE_THRESHOLD_MS`), not waited for.
    /// A value [`DATA_DIR`] stands for the node's data directory.
    pub async fn launch(settings: &[(&str, &str)], env: &[(&str, &str)]) -> Node {
        let owned = |l: &[(&str, &str)]| -> Vec<(String, String)> {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut n = Node {
            server: None,
            base: String::new(),
            settings: owned(settings),
            env: owned(env),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        n.boot().await;
        n
    }

    /// (Re)starts the node on its data directory and waits until it is ready.
    pub async fn start(&mut self) {
        self.boot().await;
        self.wait_ready().await;
    }

    async fn boot(&mut self) {
        let data = self.dir.path().to_str().expect("UTF-8 path").to_string();
        let mut cfg = base_config(self.dir.path());
        for (k, v) in &self.settings {
            let v = v.replace(DATA_DIR, &data);
            cfg.set(k, &v)
                .unwrap_or_else(|e| panic!("setting {k}={v}: {e}"));
        }
        let env = self.env.clone();
        cfg.apply_env(|k| env.iter().find(|(e, _)| e == k).map(|(_, v)| v.clone()))
            .expect("valid environment");
        let server = Server::start(cfg).await.expect("node starts");
        self.base = format!("http://{}", server.api_addr());
        self.server = Some(server);
    }

    /// Polls `/ready` until it answers 200 (a leader is known and what was committed
    /// is applied); returns its body.
    pub async fn wait_ready(&self) -> Value {
        until(&format!("{} ready", self.base), || async {
            let r = client().get(format!("{}/ready", self.base)).send().await;
            let r = r.ok().filter(|r| r.status() == StatusCode::OK)?;
            r.json().await.ok()
        })
        .await
    }

    /// The applied index once the node has applied everything it committed: then
    /// every write acknowledged before the call is covered by it.
    pub async fn settled(&self) -> u64 {
        let body = self.wait_ready().await;
        let applied = body["appliedIndex"].as_u64().expect("appliedIndex");
        assert!(applied >= body["commitIndex"].as_u64().expect("commitIndex"));
        applied
    }

    /// The id of the leader this node knows, if any (none while it does not answer).
    pub async fn leader(&self) -> Option<u64> {
        let r = self.request(Method::GET, "/leader").send().await.ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        let v: Value = r.json().await.ok()?;
        match &v["id"] {
            Value::String(s) => s.parse().ok(),
            other => other.as_u64(),
        }
    }

    /// Stops the node (its data directory stays).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// The running server, taken out (to shut it down by hand).
    pub fn take_server(&mut self) -> Server {
        self.server.take().expect("running")
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// The bound API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.server().api_addr()
    }

    /// The bound peer (raft) address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.server().peer_addr()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    // ------------------------------------------------------------- requests

    /// A request to this node, to add headers to before [`Node::send`] or [`answer`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        client().request(method, format!("{}{path}", self.base))
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        Reply::read(req.send().await.expect("request sent")).await
    }

    /// `GET path`.
    pub async fn fetch(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// `method path` with a JSON body.
    pub async fn json(&self, method: Method, path: &str, body: Value) -> Reply {
        self.send(self.request(method, path).json(&body)).await
    }

    /// `method path` with a raw body and no content type.
    pub async fn raw(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(self.request(method, path).body(body)).await
    }

    /// Sends a request with an optional JSON body and `X-Tenant-ID`: its status and
    /// body (JSON, else the text as a JSON string).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(method, path);
        if let Some(t) = tenant {
            req = req.header("X-Tenant-ID", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }

    pub async fn get(&self, path: &str, tenant: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, tenant, None).await
    }

    pub async fn post(&self, path: &str, tenant: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, tenant, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, None, Some(body)).await
    }
}

/// A bootstrapping one-node config on `data`, both listeners on ephemeral ports.
pub fn base_config(data: &Path) -> Config {
    let mut cfg = Config::default();
    for (k, v) in [
        ("node.data_dir", data.to_str().expect("UTF-8 path")),
        ("node.listen", "127.0.0.1:0"),
        ("node.peer_listen", "127.0.0.1:0"),
        ("cluster.secret", "test-cluster-secret"),
        ("node.bootstrap", "true"),
    ] {
        cfg.set(k, v).expect("base setting");
    }
    cfg
}

/// Three nodes (ids 1..=3) with `settings`, initialised as one cluster through
/// `POST /cluster/init` on node 1; each is ready and knows the leader.
pub async fn cluster(settings: &[(&str, &str)]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in ["1", "2", "3"] {
        let own = [("node.id", id), ("node.bootstrap", "false")];
        nodes.push(Node::launch(&[&own[..], settings].concat(), &[]).await);
    }
    let members: Vec<Value> = nodes
        .iter()
        .zip(1..)
        .map(|(n, id)| {
            json!({ "id": id, "peer": n.peer_addr().to_string(), "api": n.api_addr().to_string() })
        })
        .collect();
    let init = nodes[0]
        .json(Method::POST, "/cluster/init", json!({ "members": members }))
        .await;
    assert_eq!(init.status, StatusCode::OK, "init: {:?}", init.lossy());
    for n in &nodes {
        n.wait_ready().await;
        until("leader known", || n.leader()).await;
    }
    nodes
}

/// Stops every node of `nodes`.
pub async fn stop_all(nodes: &mut [Node]) {
    for n in nodes {
        n.stop().await;
    }
}
