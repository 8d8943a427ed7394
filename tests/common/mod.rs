//! Helpers shared by the HTTP tests: an in-process node on ephemeral ports that can be
//! restarted on the same data directory, JSON requests, and polling with a deadline.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use metacenter::{Config, Server};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

pub const DEADLINE: Duration = Duration::from_secs(60);

/// One in-process node and its data directory.
pub struct Node {
    server: Option<Server>,
    pub base: String,
    settings: Vec<(String, String)>,
    pub dir: TempDir,
}

impl Node {
    /// A bootstrapped one-node cluster with the given extra settings, ready to serve.
    pub async fn single(settings: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut n = Node {
            server: None,
            base: String::new(),
            settings,
            dir,
        };
        n.start().await;
        n
    }

    /// (Re)starts the node on its data directory and waits until it is ready.
    pub async fn start(&mut self) {
        let mut cfg = base_config(self.dir.path());
        for (k, v) in &self.settings {
            cfg.set(k, v).expect("valid setting");
        }
        let server = Server::start(cfg).await.expect("node starts");
        self.base = format!("http://{}", server.api_addr());
        self.server = Some(server);
        let ready = || async {
            let r = client().get(format!("{}/ready", self.base)).send().await;
            r.ok().filter(|r| r.status() == StatusCode::OK).map(|_| ())
        };
        until("node ready", ready).await;
    }

    /// Stops the node (its data directory stays).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// The bound peer (raft) address.
    pub fn peer_addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().expect("running").peer_addr()
    }

    /// A request to this node, to add headers to before [`answer`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        client().request(method, format!("{}{path}", self.base))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Sends a request with an optional JSON body and `X-Tenant-ID`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = client().request(method, format!("{}{path}", self.base));
        if let Some(t) = tenant {
            req = req.header("X-Tenant-ID", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("HTTP answer");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
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
pub fn base_config(data: &std::path::Path) -> Config {
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

/// Sends `req`; its status and body (JSON, else the text as a JSON string).
pub async fn answer(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("HTTP answer");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .expect("client")
}

/// Polls `check` every 20 ms until it returns `Some`; panics after [`DEADLINE`].
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
