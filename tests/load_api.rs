//! Load API (Metadata Center, API.md section 4) over real HTTP against in-process nodes.
//!
//! Single node: every happy path of `POST|DELETE|GET /v1/load/stats`,
//! `DELETE /v1/load/prompt`, `POST /v1/load/batch` and `POST /log/level` with the exact
//! envelope `{"status","error","data","trace_id"}` and the `X-Trace-ID` header; the
//! error shapes (malformed JSON, wrong types, missing or invalid fields, unknown `/v1/`
//! routes, bodies over `limits.max_body_bytes`), each followed by a check that nothing
//! changed (the cluster read and every load gauge of `/metrics`).
//!
//! Three nodes: 50 concurrent clients spread over the nodes end at exactly zero;
//! counters are unchanged after the leader is shut down and updates keep working; the
//! leader's housekeeping expires a request, then its engine (also from `/metrics`).
//!
//! Every node listens on ephemeral ports in a temporary directory and is shut down at
//! the end; conditions are polled with a deadline, never waited for with a fixed sleep.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metacenter::{Config, Server};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Deadline for readiness, elections and polled conditions.
const SETTLE: Duration = Duration::from_secs(60);

/// Raft timings of the three-node tests.
const RAFT: &[(&str, &str)] = &[
    ("raft.heartbeat_ms", "100"),
    ("raft.election_min_ms", "800"),
    ("raft.election_max_ms", "1600"),
];

const INVALID: u64 = 40001400;
const NOT_FOUND: u64 = 40401404;
const TOO_LARGE: u64 = 41301413;
const INVALID_MSG: &str = "Invalid input parameters";
const JSON_MSG: &str = "Invalid input parameters: invalid JSON format";

// ------------------------------------------------------------------ harness

/// Polls `check` every 20 ms until it yields `Some`, or panics naming `what`.
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn trace_header(&self) -> String {
        self.headers
            .get("x-trace-id")
            .expect("X-Trace-ID on every response")
            .to_str()
            .expect("ASCII trace id")
            .to_string()
    }

    /// Checks the envelope's shape and that `trace_id` equals the `X-Trace-ID`
    /// header; returns the body.
    fn envelope(&self) -> Value {
        let body = self.json();
        let keys: BTreeSet<&str> = body
            .as_object()
            .unwrap_or_else(|| panic!("envelope is an object: {body}"))
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["status", "error", "data", "trace_id"]),
            "{body}"
        );
        assert_eq!(body["trace_id"], json!(self.trace_header()), "{body}");
        body
    }

    /// Asserts a successful envelope and returns `data`.
    fn data(&self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "body {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.envelope();
        assert_eq!(body["status"], "OK", "{body}");
        assert_eq!(body["error"], Value::Null, "{body}");
        body["data"].clone()
    }

    /// Asserts a failed envelope with `code` (HTTP status `code / 100000`) and
    /// `message`; returns the reason.
    fn error(&self, code: u64, message: &str) -> String {
        let body = self.envelope();
        assert_eq!(self.status.as_u16() as u64, code / 100000, "{body}");
        assert_eq!(body["status"], "ERROR", "{body}");
        assert_eq!(body["data"], Value::Null, "{body}");
        let err = body["error"].as_object().expect("error object");
        let keys: BTreeSet<&str> = err.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["code", "message", "reason"]),
            "{body}"
        );
        assert_eq!(err["code"], json!(code), "{body}");
        assert_eq!(err["message"], json!(message), "{body}");
        err["reason"].as_str().expect("reason string").to_string()
    }
}

/// One in-process node and a client for it.
struct Node {
    server: Option<Server>,
    base: String,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Node {
    async fn start(id: u64, bootstrap: bool, extra: &[(&str, &str)]) -> Node {
        let data = tempfile::tempdir().expect("temp data dir");
        let mut cfg = Config::default();
        let id = id.to_string();
        let base = [
            ("node.id", id.as_str()),
            ("node.data_dir", data.path().to_str().expect("UTF-8 path")),
            ("node.listen", "127.0.0.1:0"),
            ("node.peer_listen", "127.0.0.1:0"),
            ("cluster.secret", "test-cluster-secret"),
            ("node.bootstrap", if bootstrap { "true" } else { "false" }),
        ];
        for (k, v) in base.iter().chain(extra) {
            cfg.set(k, v).unwrap_or_else(|e| panic!("setting {k}: {e}"));
        }
        let server = Server::start(cfg).await.expect("node starts");
        Node {
            base: format!("http://{}", server.api_addr()),
            server: Some(server),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            _data: data,
        }
    }

    /// A bootstrapped, ready single node.
    async fn single(extra: &[(&str, &str)]) -> Node {
        let n = Node::start(1, true, extra).await;
        n.wait_ready().await;
        n
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    async fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>, trace: &str) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if !trace.is_empty() {
            req = req.header("TraceId", trace);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("request sent");
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body").to_vec(),
        }
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> Reply {
        self.send(method, path, Some(body.to_string().into_bytes()), "")
            .await
    }

    async fn raw(&self, method: Method, path: &str, body: &str) -> Reply {
        self.send(method, path, Some(body.as_bytes().to_vec()), "")
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, "").await
    }

    async fn add(&self, cluster: &str, id: &str, ip: &str, prompt: i64) -> Reply {
        self.json(
            Method::POST,
            "/v1/load/stats",
            json!({"cluster": cluster, "request_id": id, "ip": ip, "prompt_length": prompt}),
        )
        .await
    }

    async fn prompt_done(&self, id: &str) -> Reply {
        self.json(
            Method::DELETE,
            "/v1/load/prompt",
            json!({ "request_id": id }),
        )
        .await
    }

    async fn done(&self, id: &str) -> Reply {
        self.json(
            Method::DELETE,
            "/v1/load/stats",
            json!({ "request_id": id }),
        )
        .await
    }

    /// `data` of a linearizable cluster read.
    async fn stats(&self, cluster: &str) -> Value {
        self.get(&format!(
            "/v1/load/stats?cluster={}&consistency=linearizable",
            enc(cluster)
        ))
        .await
        .data()
    }

    /// (queued_req_num, prompt_length) of one engine, `None` when absent.
    async fn counts(&self, cluster: &str, ip: &str) -> Option<(u64, u64)> {
        counts_of(&self.stats(cluster).await, ip)
    }

    /// The load gauge lines of `/metrics` (`queued_num{...}` and `prompt_length{...}`).
    async fn load_gauges(&self) -> BTreeSet<String> {
        let r = self.get("/metrics").await;
        assert_eq!(r.status, StatusCode::OK);
        String::from_utf8(r.body)
            .expect("UTF-8 metrics")
            .lines()
            .filter(|l| l.starts_with("queued_num{") || l.starts_with("prompt_length{"))
            .map(str::to_string)
            .collect()
    }

    async fn wait_ready(&self) {
        poll(&format!("{} ready", self.base), || async {
            let r = self.http.get(format!("{}/ready", self.base)).send().await;
            r.ok().filter(|r| r.status() == StatusCode::OK).map(|_| ())
        })
        .await
    }

    /// The id of the leader this node knows, if any.
    async fn leader(&self) -> Option<u64> {
        let r = self
            .http
            .get(format!("{}/leader", self.base))
            .send()
            .await
            .ok()?;
        if r.status() != StatusCode::OK {
            return None;
        }
        let v: Value = r.json().await.ok()?;
        match &v["id"] {
            Value::String(s) => s.parse().ok(),
            other => other.as_u64(),
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Three nodes (ids 1..=3) initialised through `POST /cluster/init` on node 1, with a
/// leader known on all.
async fn cluster(extra: &[(&str, &str)]) -> Vec<Node> {
    let settings: Vec<(&str, &str)> = RAFT.iter().chain(extra).copied().collect();
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(Node::start(id, false, &settings).await);
    }
    let members: Vec<Value> = nodes
        .iter()
        .zip(1..)
        .map(|(n, id)| {
            json!({
                "id": id,
                "peer": n.server().peer_addr().to_string(),
                "api": n.server().api_addr().to_string(),
            })
        })
        .collect();
    let r = nodes[0]
        .json(Method::POST, "/cluster/init", json!({ "members": members }))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&r.body)
    );
    for n in &nodes {
        n.wait_ready().await;
        poll("leader known", || n.leader()).await;
    }
    nodes
}

async fn stop_all(nodes: Vec<Node>) {
    for n in nodes {
        n.stop().await;
    }
}

/// (queued_req_num, prompt_length) of engine `ip` in a cluster read's `data`.
fn counts_of(data: &Value, ip: &str) -> Option<(u64, u64)> {
    let rows = data.as_array()?;
    let mut found = rows.iter().filter(|r| r["ip"] == ip);
    let row = found.next()?;
    assert!(found.next().is_none(), "engine {ip} listed twice: {data}");
    Some((
        row["queued_req_num"].as_u64().expect("queued_req_num"),
        row["prompt_length"].as_u64().expect("prompt_length"),
    ))
}

fn gauge_line(metric: &str, cluster: &str, ip: &str) -> String {
    format!("{metric}{{model_name=\"{cluster}\",engine_ip=\"{ip}\"}}")
}

// ------------------------------------------------------------------ single node

#[tokio::test]
async fn happy_paths_answer_the_exact_envelope() {
    let n = Node::single(&[]).await;
    let (c, ip) = ("llama-7b", "10.1.0.1");
    let before = now_ns();
    let body = |v: Value| Some(v.to_string().into_bytes());

    let r = n
        .send(
            Method::POST,
            "/v1/load/stats",
            body(json!({"cluster": c, "request_id": "r1", "prompt_length": 100, "ip": ip, "timestamp": 1})),
            "trace-add-1",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"status": "OK", "error": null, "data": null, "trace_id": "trace-add-1"})
    );
    assert_eq!(r.trace_header(), "trace-add-1");

    let r = n
        .send(
            Method::GET,
            &format!("/v1/load/stats?cluster={c}"),
            None,
            "trace-get-1",
        )
        .await;
    let data = r.data();
    assert_eq!(r.json()["trace_id"], "trace-get-1");
    let rows = data.as_array().expect("data is an array");
    assert_eq!(rows.len(), 1, "{data}");
    let keys: BTreeSet<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["ip", "queued_req_num", "prompt_length", "updated_time"])
    );
    assert_eq!(rows[0]["ip"], ip);
    assert_eq!(rows[0]["queued_req_num"], 1);
    assert_eq!(rows[0]["prompt_length"], 100);
    let t1 = rows[0]["updated_time"]
        .as_u64()
        .expect("updated_time in ns");
    assert!(
        (before..=now_ns()).contains(&t1),
        "updated_time {t1} is the node's unix ns (not the client's timestamp 1)"
    );

    // A duplicate request_id is ignored and still answers 200.
    n.add(c, "r1", ip, 100).await.data();
    assert_eq!(n.counts(c, ip).await, Some((1, 100)));

    n.add(c, "r2", ip, 50).await.data();
    assert_eq!(n.counts(c, ip).await, Some((2, 150)));

    let r = n
        .send(
            Method::DELETE,
            "/v1/load/prompt",
            body(json!({"request_id": "r1", "timestamp": 5})),
            "trace-prompt",
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"status": "OK", "error": null, "data": null, "trace_id": "trace-prompt"})
    );
    assert_eq!(n.counts(c, ip).await, Some((2, 50)));
    // Repeated first-token: subtracted once.
    assert_eq!(n.prompt_done("r1").await.data(), Value::Null);
    assert_eq!(n.counts(c, ip).await, Some((2, 50)));

    let r = n
        .send(
            Method::DELETE,
            "/v1/load/stats",
            body(json!({"request_id": "r1"})),
            "trace-done",
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"status": "OK", "error": null, "data": null, "trace_id": "trace-done"})
    );
    assert_eq!(n.counts(c, ip).await, Some((1, 50)));
    assert_eq!(n.done("r2").await.data(), Value::Null);
    let data = n.stats(c).await;
    assert_eq!(counts_of(&data, ip), Some((0, 0)));
    let t2 = data[0]["updated_time"].as_u64().unwrap();
    assert!(
        t2 >= t1 && t2 <= now_ns(),
        "updated_time moves with changes"
    );

    // A done that overtook its add: the late add answers 200 and counts nothing.
    n.done("early").await.data();
    n.add(c, "early", ip, 70).await.data();
    assert_eq!(n.counts(c, ip).await, Some((0, 0)));
    // A first token that overtook its add: the request counts, its prompt does not.
    n.prompt_done("early2").await.data();
    n.add(c, "early2", ip, 70).await.data();
    assert_eq!(n.counts(c, ip).await, Some((1, 0)));
    n.done("early2").await.data();
    assert_eq!(n.counts(c, ip).await, Some((0, 0)));

    n.stop().await;
}

#[tokio::test]
async fn engines_and_clusters_read_independently() {
    let n = Node::single(&[]).await;
    let odd = "model a/b+c%";
    n.add("m1", "a", "10.0.0.2", 5).await.data();
    n.add("m1", "b", "10.0.0.1", 7).await.data();
    n.add("m1", "c", "10.0.0.1", 11).await.data();
    n.add(odd, "d", "10.0.0.1", 13).await.data();

    let m1 = n.stats("m1").await;
    assert_eq!(m1.as_array().map(Vec::len), Some(2), "{m1}");
    assert_eq!(counts_of(&m1, "10.0.0.1"), Some((2, 18)));
    assert_eq!(counts_of(&m1, "10.0.0.2"), Some((1, 5)));
    // The cluster name travels percent-encoded in the query.
    let o = n.stats(odd).await;
    assert_eq!(o.as_array().map(Vec::len), Some(1), "{o}");
    assert_eq!(counts_of(&o, "10.0.0.1"), Some((1, 13)));
    assert_eq!(
        n.stats("m").await,
        Value::Null,
        "a prefix is another cluster"
    );

    n.done("b").await.data();
    assert_eq!(n.counts("m1", "10.0.0.1").await, Some((1, 11)));
    assert_eq!(n.counts("m1", "10.0.0.2").await, Some((1, 5)));
    assert_eq!(n.counts(odd, "10.0.0.1").await, Some((1, 13)));

    let gauges = n.load_gauges().await;
    assert!(gauges.contains(&format!("{} 1", gauge_line("queued_num", "m1", "10.0.0.1"))));
    assert!(gauges.contains(&format!(
        "{} 11",
        gauge_line("prompt_length", "m1", "10.0.0.1")
    )));
    assert!(gauges.contains(&format!(
        "{} 5",
        gauge_line("prompt_length", "m1", "10.0.0.2")
    )));
    assert_eq!(gauges.len(), 6, "two gauges per engine: {gauges:?}");
    n.stop().await;
}

#[tokio::test]
async fn trace_id_comes_from_either_header_or_is_a_new_uuid() {
    let n = Node::single(&[]).await;
    let path = "/v1/load/stats?cluster=nobody";

    let r = n.send(Method::GET, path, None, "from-traceid").await;
    assert_eq!(r.data(), Value::Null);
    assert_eq!(r.trace_header(), "from-traceid");

    let r = n
        .http
        .get(format!("{}{path}", n.base))
        .header("X-Trace-ID", "from-x-trace-id")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-trace-id"], "from-x-trace-id");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["trace_id"], "from-x-trace-id");

    let (a, b) = (n.get(path).await, n.get(path).await);
    a.data();
    b.data();
    for r in [&a, &b] {
        uuid::Uuid::parse_str(&r.trace_header()).expect("a generated trace id is a UUID");
    }
    assert_ne!(a.trace_header(), b.trace_header(), "a new id per request");

    // Errors and unknown routes carry it too.
    let r = n
        .send(
            Method::POST,
            "/v1/load/stats",
            Some(b"{".to_vec()),
            "err-trace",
        )
        .await;
    r.error(INVALID, JSON_MSG);
    assert_eq!(r.trace_header(), "err-trace");
    let r = n
        .send(Method::GET, "/v1/no/such/route", None, "nf-trace")
        .await;
    r.error(NOT_FOUND, "Resource not found");
    assert_eq!(r.json()["trace_id"], "nf-trace");
    n.stop().await;
}

#[tokio::test]
async fn cluster_read_of_unknown_or_missing_cluster() {
    let n = Node::single(&[]).await;
    n.add("known", "r", "10.0.0.1", 1).await.data();
    assert_eq!(n.stats("unknown").await, Value::Null);
    for path in [
        "/v1/load/stats",
        "/v1/load/stats?cluster=",
        "/v1/load/stats?consistency=linearizable",
        "/v1/load/stats?clusterx=known",
    ] {
        let reason = n.get(path).await.error(INVALID, INVALID_MSG);
        assert!(reason.contains("cluster"), "{path}: reason {reason:?}");
    }
    n.stop().await;
}

/// A state every bad request must leave as it is: the cluster read and every gauge.
async fn snapshot(n: &Node, cluster: &str) -> (Value, BTreeSet<String>) {
    (n.stats(cluster).await, n.load_gauges().await)
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let n = Node::single(&[]).await;
    let (c, ip) = ("bad-c", "10.2.0.1");
    n.add(c, "r0", ip, 42).await.data();
    let before = snapshot(&n, c).await;
    assert_eq!(counts_of(&before.0, ip), Some((1, 42)));

    let post = Method::POST;
    let del = Method::DELETE;
    let add = "/v1/load/stats";
    let prompt = "/v1/load/prompt";

    // Malformed JSON: the decoder's text is the reason.
    for (m, p, body) in [
        (
            post.clone(),
            add,
            r#"{"cluster":"bad-c","request_id":"x1","ip":"10.2.0.1""#,
        ),
        (post.clone(), add, "not json"),
        (post.clone(), add, ""),
        (del.clone(), add, r#"{"request_id":"r0""#),
        (del.clone(), prompt, r#"{"request_id": r0}"#),
        (
            post.clone(),
            "/v1/load/batch",
            r#"{"operations":[{"op":"add""#,
        ),
    ] {
        let reason = n.raw(m.clone(), p, body).await.error(INVALID, JSON_MSG);
        assert!(!reason.is_empty(), "{m} {p} {body:?}: empty reason");
        assert_eq!(snapshot(&n, c).await, before, "after {m} {p} {body:?}");
    }

    // Well-formed JSON of the wrong type.
    for (m, p, body) in [
        (
            post.clone(),
            add,
            json!({"cluster": c, "request_id": "x1", "ip": ip, "prompt_length": "1"}),
        ),
        (
            post.clone(),
            add,
            json!({"cluster": c, "request_id": 7, "ip": ip, "prompt_length": 1}),
        ),
        (post.clone(), add, json!([c, "x1", ip, 1])),
        (del.clone(), add, json!({"request_id": ["r0"]})),
        (
            del.clone(),
            prompt,
            json!({"request_id": "r0", "timestamp": "soon"}),
        ),
    ] {
        let reason = n
            .json(m.clone(), p, body.clone())
            .await
            .error(INVALID, INVALID_MSG);
        assert!(!reason.is_empty(), "{m} {p} {body}: empty reason");
        assert_eq!(snapshot(&n, c).await, before, "after {m} {p} {body}");
    }

    // Missing or invalid fields: the reason names the field.
    let full = json!({"cluster": c, "request_id": "x1", "ip": ip, "prompt_length": 1});
    let with = |k: &str, v: Value| {
        let mut b = full.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = full.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    for (m, p, body, field) in [
        (post.clone(), add, without("cluster"), "cluster"),
        (post.clone(), add, with("cluster", json!("")), "cluster"),
        (post.clone(), add, without("request_id"), "request_id"),
        (
            post.clone(),
            add,
            with("request_id", json!("")),
            "request_id",
        ),
        (post.clone(), add, without("ip"), "ip"),
        (post.clone(), add, with("ip", json!("1.2.3")), "ip"),
        (post.clone(), add, with("ip", json!("::1")), "ip"),
        (post.clone(), add, with("ip", json!("256.0.0.1")), "ip"),
        (post.clone(), add, with("ip", json!("10.2.0.1 ")), "ip"),
        (
            post.clone(),
            add,
            with("prompt_length", json!(-1)),
            "prompt_length",
        ),
        (post.clone(), add, with("timestamp", json!(-1)), "timestamp"),
        (del.clone(), add, json!({}), "request_id"),
        (del.clone(), add, json!({"request_id": ""}), "request_id"),
        (
            del.clone(),
            add,
            json!({"request_id": "r0", "timestamp": -5}),
            "timestamp",
        ),
        (del.clone(), prompt, json!({"cluster": c}), "request_id"),
        (
            del.clone(),
            prompt,
            json!({"request_id": "r0", "timestamp": -5}),
            "timestamp",
        ),
    ] {
        let reason = n
            .json(m.clone(), p, body.clone())
            .await
            .error(INVALID, INVALID_MSG);
        assert!(
            reason.contains(field),
            "{m} {p} {body}: reason {reason:?} should name {field}"
        );
        assert_eq!(snapshot(&n, c).await, before, "after {m} {p} {body}");
    }

    // Unknown routes under /v1/.
    for (m, p) in [
        (Method::GET, "/v1/load/nope"),
        (Method::POST, "/v1/load/stats/extra"),
        (Method::DELETE, "/v1/nothing"),
    ] {
        let r = n
            .send(m.clone(), p, Some(full.to_string().into_bytes()), "")
            .await;
        let reason = r.error(NOT_FOUND, "Resource not found");
        assert!(reason.contains(p), "{m} {p}: reason {reason:?}");
        assert_eq!(snapshot(&n, c).await, before, "after {m} {p}");
    }
    n.stop().await;
}

#[tokio::test]
async fn regression_wrong_method_on_a_load_route_is_not_in_the_envelope() {
    let n = Node::single(&[]).await;
    for (m, p) in [
        (Method::PUT, "/v1/load/stats"),
        (Method::GET, "/v1/load/prompt"),
        (Method::GET, "/v1/load/batch"),
    ] {
        let r = n.send(m.clone(), p, Some(b"{}".to_vec()), "wm").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        assert!(
            serde_json::from_slice::<Value>(&r.body).is_ok(),
            "{m} {p}: body {:?} is not the envelope",
            String::from_utf8_lossy(&r.body)
        );
        let body = r.envelope();
        assert_eq!(body["status"], "ERROR", "{m} {p}: {body}");
        assert_eq!(body["trace_id"], "wm");
    }
    n.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let n = Node::single(&[("limits.max_body_bytes", "256")]).await;
    let (c, ip) = ("big", "10.3.0.1");
    let small = json!({"cluster": c, "request_id": "ok", "ip": ip, "prompt_length": 3, "pad": "x".repeat(64)});
    assert!(small.to_string().len() < 256);
    n.json(Method::POST, "/v1/load/stats", small).await.data();
    let before = snapshot(&n, c).await;
    assert_eq!(counts_of(&before.0, ip), Some((1, 3)));

    let pad = "x".repeat(1000);
    let big_add =
        json!({"cluster": c, "request_id": "big", "ip": ip, "prompt_length": 5, "pad": pad});
    let big_done = json!({"request_id": "ok", "pad": pad});
    let big_batch = json!({"operations": [
        {"op": "add", "cluster": c, "request_id": "big2", "ip": ip, "prompt_length": 5},
        {"op": "done", "request_id": "ok", "pad": pad},
    ]});
    for (m, p, body) in [
        (Method::POST, "/v1/load/stats", big_add),
        (Method::DELETE, "/v1/load/stats", big_done.clone()),
        (Method::DELETE, "/v1/load/prompt", big_done),
        (Method::POST, "/v1/load/batch", big_batch),
    ] {
        let r = n.json(m.clone(), p, body).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{m} {p}");
        let body = r.envelope();
        assert_eq!(body["status"], "ERROR");
        assert_eq!(body["error"]["code"], TOO_LARGE, "{body}");
        assert_eq!(snapshot(&n, c).await, before, "after {m} {p}");
    }
    n.stop().await;
}

#[tokio::test]
async fn batch_applies_valid_operations_in_order() {
    let n = Node::single(&[]).await;
    let (c, ip, ip2) = ("batch-c", "10.4.0.1", "10.4.0.2");
    let ops = json!([
        {"op": "add", "cluster": c, "request_id": "b1", "ip": ip, "prompt_length": 10},
        {"op": "add", "cluster": c, "request_id": "bad-ip", "ip": "1.2.3", "prompt_length": 10},
        {"op": "add", "cluster": c, "request_id": "b2", "ip": ip, "prompt_length": 20},
        {"op": "add", "cluster": c, "request_id": "b1", "ip": ip, "prompt_length": 10},
        {"op": "prompt_done", "request_id": "b1"},
        {"op": "done"},
        {"op": "bogus", "request_id": "b1"},
        {"op": "done", "request_id": "b2"},
        {"cluster": c, "request_id": "b3", "ip": ip, "prompt_length": 1},
        {"op": "add", "cluster": c, "request_id": "b3", "ip": ip2, "prompt_length": -5},
        {"op": "done", "request_id": "b4"},
        {"op": "add", "cluster": c, "request_id": "b4", "ip": ip2, "prompt_length": 7},
        {"op": "prompt_done", "request_id": "b1"},
    ]);
    // (status, result or the text the error reason must hold)
    let want = [
        ("OK", "applied"),
        ("ERROR", "ip"),
        ("OK", "applied"),
        ("OK", "duplicate"),
        ("OK", "applied"),
        ("ERROR", "request_id"),
        ("ERROR", "bogus"),
        ("OK", "applied"),
        ("ERROR", "op is required"),
        ("ERROR", "prompt_length"),
        ("OK", "tombstoned"),
        ("OK", "cancelled"),
        ("OK", "duplicate"),
    ];
    let r = n
        .send(
            Method::POST,
            "/v1/load/batch",
            Some(json!({ "operations": ops }).to_string().into_bytes()),
            "batch-trace",
        )
        .await;
    let data = r.data();
    assert_eq!(r.trace_header(), "batch-trace");
    let results = data.as_array().expect("data is an array");
    assert_eq!(results.len(), want.len(), "{data}");
    for (i, (res, (status, what))) in results.iter().zip(want).enumerate() {
        let keys: BTreeSet<&str> = res
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["status", "error", "result"]),
            "[{i}] {res}"
        );
        assert_eq!(res["status"], status, "[{i}] {res}");
        if status == "OK" {
            assert_eq!(res["error"], Value::Null, "[{i}] {res}");
            assert_eq!(res["result"], what, "[{i}] {res}");
        } else {
            assert_eq!(res["result"], Value::Null, "[{i}] {res}");
            assert_eq!(res["error"]["code"], INVALID, "[{i}] {res}");
            assert_eq!(res["error"]["message"], INVALID_MSG, "[{i}] {res}");
            let reason = res["error"]["reason"].as_str().unwrap();
            assert!(
                reason.contains(&format!("operations[{i}]")) && reason.contains(what),
                "[{i}] reason {reason:?} should name operations[{i}] and {what}"
            );
        }
    }
    // b1 counted with its prompt done, b2 added and done, nothing of the invalid ones,
    // b4 cancelled: the second engine never appears.
    let data = n.stats(c).await;
    assert_eq!(data.as_array().map(Vec::len), Some(1), "{data}");
    assert_eq!(counts_of(&data, ip), Some((1, 0)));

    // The batch's done of b1 later still works like a single one.
    let r = n
        .json(
            Method::POST,
            "/v1/load/batch",
            json!({"operations": [{"op": "done", "request_id": "b1"}]}),
        )
        .await;
    assert_eq!(
        r.data(),
        json!([{"status": "OK", "error": null, "result": "applied"}])
    );
    assert_eq!(n.counts(c, ip).await, Some((0, 0)));
    n.stop().await;
}

#[tokio::test]
async fn batch_without_operations_is_refused() {
    let n = Node::single(&[]).await;
    let (c, ip) = ("batch-empty", "10.5.0.1");
    n.add(c, "r", ip, 9).await.data();
    let before = snapshot(&n, c).await;
    for (body, needle) in [
        (json!({"operations": []}), "operations"),
        (json!({}), "operations"),
        (json!({"operations": null}), "null"),
    ] {
        let r = n.json(Method::POST, "/v1/load/batch", body.clone()).await;
        let reason = r.error(INVALID, INVALID_MSG);
        assert!(reason.contains(needle), "{body}: reason {reason:?}");
        assert_eq!(snapshot(&n, c).await, before, "after {body}");
    }
    n.stop().await;
}

#[tokio::test]
async fn log_level_is_set_or_refused() {
    let n = Node::single(&[]).await;
    let r = n
        .send(
            Method::POST,
            "/log/level",
            Some(br#"{"LevelParam":"DEBUG"}"#.to_vec()),
            "lvl",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"status": "OK", "error": null, "data": "log level updated successfully", "trace_id": "lvl"})
    );
    let reason = n
        .raw(Method::POST, "/log/level", r#"{"LevelParam":"LOUD"}"#)
        .await
        .error(INVALID, INVALID_MSG);
    assert!(reason.to_lowercase().contains("loud"), "reason {reason:?}");
    n.raw(Method::POST, "/log/level", r#"{"Level":"INFO"}"#)
        .await
        .error(INVALID, INVALID_MSG);
    n.raw(Method::POST, "/log/level", r#"{"LevelParam":"#)
        .await
        .error(INVALID, JSON_MSG);
    assert_eq!(
        n.raw(Method::POST, "/log/level", r#"{"LevelParam":"INFO"}"#)
            .await
            .data(),
        "log level updated successfully"
    );
    n.stop().await;
}

// ------------------------------------------------------------------ three nodes

/// Sends a write; a 503 (no leader for a moment) or a transport error is retried.
/// Every load write is safe to repeat: the add and prompt-done are idempotent per
/// request id and a repeated done only leaves a tombstone.
async fn write(http: &reqwest::Client, url: &str, method: Method, body: &Value) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let last = match http.request(method.clone(), url).json(body).send().await {
            Ok(r) if r.status() == StatusCode::OK => {
                let v: Value = r.json().await.expect("JSON envelope");
                assert_eq!(v["status"], "OK", "{method} {url} {body}: {v}");
                return;
            }
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                r.text().await.unwrap_or_default()
            }
            Ok(r) => panic!(
                "{method} {url} {body}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) => e.to_string(),
        };
        assert!(Instant::now() < deadline, "{method} {url} {body}: {last}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts engine `ip` reads `want` on every node (linearizable reads).
async fn assert_counts(nodes: &[&Node], cluster: &str, ip: &str, want: (u64, u64), when: &str) {
    for n in nodes {
        assert_eq!(
            n.counts(cluster, ip).await,
            Some(want),
            "{when}: node {}",
            n.base
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_one_engine_end_at_zero() {
    const CLIENTS: usize = 50;
    const EACH: usize = 20;
    let nodes = cluster(&[]).await;
    let (c, ip) = ("busy-model", "10.6.0.1");
    let prompt = |client: usize, j: usize| ((client * EACH + j) % 97 + 1) as u64;
    let total: u64 = (0..CLIENTS)
        .flat_map(|i| (0..EACH).map(move |j| prompt(i, j)))
        .sum();

    // Three phases (adds, first tokens, dones). Between two phases every client
    // waits at `finished`, the test reads every node, then releases them at `checked`.
    let finished = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let checked = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let base = nodes[i % nodes.len()].base.clone();
        let http = nodes[0].http.clone();
        let (finished, checked) = (finished.clone(), checked.clone());
        tasks.push(tokio::spawn(async move {
            let id = |j: usize| format!("c{i}-r{j}");
            let stats = format!("{base}/v1/load/stats");
            let prompt_url = format!("{base}/v1/load/prompt");
            for j in 0..EACH {
                let body = json!({"cluster": c, "request_id": id(j), "ip": ip, "prompt_length": prompt(i, j)});
                write(&http, &stats, Method::POST, &body).await;
            }
            finished.wait().await;
            checked.wait().await;
            for j in 0..EACH {
                write(&http, &prompt_url, Method::DELETE, &json!({"request_id": id(j)})).await;
            }
            finished.wait().await;
            checked.wait().await;
            for j in 0..EACH {
                write(&http, &stats, Method::DELETE, &json!({"request_id": id(j)})).await;
            }
        }));
    }
    let all: Vec<&Node> = nodes.iter().collect();
    let until_finished = |name: &'static str| {
        let b = finished.clone();
        async move {
            tokio::time::timeout(SETTLE, b.wait())
                .await
                .unwrap_or_else(|_| panic!("clients did not finish {name}"));
        }
    };
    let n = (CLIENTS * EACH) as u64;
    until_finished("adds").await;
    assert_counts(&all, c, ip, (n, total), "after all adds").await;
    checked.wait().await;
    until_finished("first tokens").await;
    assert_counts(&all, c, ip, (n, 0), "after all first tokens").await;
    checked.wait().await;
    for t in tasks {
        tokio::time::timeout(SETTLE, t)
            .await
            .expect("clients finish their dones")
            .expect("client task");
    }
    assert_counts(&all, c, ip, (0, 0), "after all dones").await;
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_unchanged_after_the_leader_is_killed() {
    let mut nodes = cluster(&[]).await;
    let (c, ip1, ip2) = ("failover", "10.7.0.1", "10.7.0.2");
    let mut want1 = (0, 0);
    for k in 0..30u64 {
        let ip = if k.is_multiple_of(3) { ip2 } else { ip1 };
        nodes[k as usize % 3]
            .add(c, &format!("r{k}"), ip, k as i64 + 1)
            .await
            .data();
        if ip == ip1 {
            want1 = (want1.0 + 1, want1.1 + k + 1);
        }
    }
    // r1, r2 (ip1) first token; r4 (ip1) done.
    nodes[1].prompt_done("r1").await.data();
    nodes[2].prompt_done("r2").await.data();
    nodes[0].done("r4").await.data();
    want1 = (want1.0 - 1, want1.1 - 2 - 3 - 5);
    let want2 = (
        10,
        (0..30u64)
            .filter(|k| k.is_multiple_of(3))
            .map(|k| k + 1)
            .sum(),
    );

    let before = nodes[0].stats(c).await;
    assert_eq!(counts_of(&before, ip1), Some(want1));
    assert_eq!(counts_of(&before, ip2), Some(want2));
    for n in &nodes[1..] {
        assert_eq!(n.stats(c).await, before, "every node reads the same");
    }

    let old = nodes[0].leader().await.expect("leader known");
    let pos = (old - 1) as usize;
    assert_eq!(nodes[pos].leader().await, Some(old));
    nodes.remove(pos).stop().await;
    for n in &nodes {
        poll("a new leader among the survivors", || async {
            n.leader().await.filter(|l| *l != old)
        })
        .await;
    }
    for n in &nodes {
        assert_eq!(
            n.stats(c).await,
            before,
            "survivor {} after failover",
            n.base
        );
    }

    // Updates keep working through both survivors.
    nodes[0].add(c, "after", ip1, 1000).await.data();
    nodes[1].done("r1").await.data(); // first token already counted
    nodes[0].done("r5").await.data(); // prompt 6
    nodes[1].prompt_done("r7").await.data(); // prompt 8
    nodes[0].done("r3").await.data(); // ip2, prompt 4
    let want1 = (want1.0 + 1 - 2, want1.1 + 1000 - 6 - 8);
    let want2 = (want2.0 - 1, want2.1 - 4);
    let all: Vec<&Node> = nodes.iter().collect();
    assert_counts(&all, c, ip1, want1, "after failover updates").await;
    assert_counts(&all, c, ip2, want2, "after failover updates").await;
    stop_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_expires_the_request_then_the_engine() {
    let nodes = cluster(&[
        ("load.gc_interval_ms", "100"),
        ("load.req_expire_ms", "300"),
        ("load.engine_expire_ms", "600"),
    ])
    .await;
    let (c, ip) = ("expiring", "10.8.0.1");
    let leader = nodes[0].leader().await.expect("leader known");
    let l = &nodes[(leader - 1) as usize];
    let queued = gauge_line("queued_num", c, ip);
    let prompt = gauge_line("prompt_length", c, ip);

    l.add(c, "r1", ip, 100).await.data();
    // The request lives at least 300 ms and its engine at least 600 ms past the add;
    // the reads below happen while the engine exists.
    let first = l.get(&format!("/v1/load/stats?cluster={c}")).await.data();
    let gauges = l.load_gauges().await;
    assert!(
        gauges.iter().any(|g| g.starts_with(&format!("{queued} "))),
        "{queued} while the engine exists: {gauges:?}"
    );
    assert!(gauges.iter().any(|g| g.starts_with(&format!("{prompt} "))));
    let counts = counts_of(&first, ip);
    assert!(
        counts == Some((1, 100)) || counts == Some((0, 0)),
        "right after the add: {first}"
    );

    // The request expires first: counters at zero while the engine is still there
    // (for at least another 300 ms of the leader's clock).
    poll("the request's counters drop to zero", || async {
        let data = l.get(&format!("/v1/load/stats?cluster={c}")).await.data();
        match counts_of(&data, ip) {
            Some((0, 0)) => Some(()),
            Some(_) => None,
            None => panic!("the engine went before its counters were seen at zero"),
        }
    })
    .await;

    // Then the idle engine, on every node.
    for n in &nodes {
        poll("the idle engine disappears", || async {
            (n.stats(c).await == Value::Null).then_some(())
        })
        .await;
        poll("its gauges disappear", || async {
            let g = n.load_gauges().await;
            (!g.iter()
                .any(|l| l.starts_with(&queued) || l.starts_with(&prompt)))
            .then_some(())
        })
        .await;
    }

    // A done for the expired request neither fails nor brings the engine back.
    l.done("r1").await.data();
    assert_eq!(l.stats(c).await, Value::Null);
    stop_all(nodes).await;
}
