//! Cluster and node endpoints (API.md section 1) over real HTTP against one in-process
//! node: `/health`, `/ready`, `/status`, `/leader`, `/role`, `/cluster/members`, and
//! the admin calls `/cluster/init|add|remove` with the answers they give to a node
//! that is already initialised and to bad or oversized bodies.
//!
//! Every test starts its own node on ephemeral ports in a temporary directory and
//! shuts it down at the end.

use std::time::{Duration, Instant};

use metacenter::{Config, Server};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long a node may take to elect itself and become ready.
const DEADLINE: Duration = Duration::from_secs(30);

/// One node and an HTTP client for it.
struct TestNode {
    server: Option<Server>,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// An answer: status, headers and JSON body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn applied_index(&self) -> u64 {
        self.headers
            .get("x-applied-index")
            .expect("X-Applied-Index on every response")
            .to_str()
            .unwrap()
            .parse()
            .expect("X-Applied-Index is a number")
    }

    /// Asserts meta-core's error shape with `status` and a message containing `needle`.
    fn assert_error(&self, status: StatusCode, needle: &str) {
        assert_eq!(self.status, status, "unexpected status, body {}", self.body);
        assert_eq!(
            self.body["error"],
            json!(status.canonical_reason().unwrap()),
            "{}",
            self.body
        );
        let message = self.body["message"].as_str().expect("message is a string");
        assert!(
            message.contains(needle),
            "message {message:?} should contain {needle:?}"
        );
    }
}

impl TestNode {
    /// Starts a node; a bootstrapped one is waited for until it is ready.
    async fn start(bootstrap: bool) -> TestNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config::default();
        let data_dir = dir.path().to_str().expect("UTF-8 temp path");
        for (k, v) in [
            ("node.data_dir", data_dir),
            ("node.listen", "127.0.0.1:0"),
            ("node.peer_listen", "127.0.0.1:0"),
            ("cluster.secret", "test-cluster-secret"),
            ("node.bootstrap", if bootstrap { "true" } else { "false" }),
        ] {
            cfg.set(k, v).expect("valid setting");
        }
        let server = Server::start(cfg).await.expect("node starts");
        let node = TestNode {
            base: format!("http://{}", server.api_addr()),
            server: Some(server),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            _dir: dir,
        };
        if bootstrap {
            node.wait_ready().await;
        }
        node
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    fn api(&self) -> String {
        self.server().api_addr().to_string()
    }

    fn peer(&self) -> String {
        self.server().peer_addr().to_string()
    }

    /// Polls `/ready` until it answers 200 (the node knows a leader and has applied
    /// what it committed); returns its body.
    async fn wait_ready(&self) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let last = match self.http.get(format!("{}/ready", self.base)).send().await {
                Ok(r) if r.status() == StatusCode::OK => {
                    return r.json().await.expect("JSON body");
                }
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "node not ready within {DEADLINE:?}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: &str) -> Answer {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// Asserts that `v` is an RFC 3339 timestamp within a minute of now.
fn assert_recent_rfc3339(v: &Value) {
    let text = v.as_str().expect("timestamp is a string");
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("timestamp {text:?} is not RFC 3339: {e}"));
    let age = chrono::Utc::now()
        .signed_duration_since(t)
        .num_seconds()
        .abs();
    assert!(age < 60, "timestamp {text} is {age}s away from now");
}

/// Asserts the leader object of `/leader` and `/health` for a one-node cluster of `n`.
fn assert_leader_is(n: &TestNode, leader: &Value) {
    assert_eq!(leader["id"], json!("1"), "{leader}");
    assert_eq!(leader["host"], json!("127.0.0.1"), "{leader}");
    assert_eq!(leader["api"], json!(n.api()), "{leader}");
    assert_eq!(
        leader["http"],
        json!(format!("http://{}", n.api())),
        "{leader}"
    );
    assert_eq!(
        leader["pid"],
        json!(std::process::id()),
        "the leader is this process: {leader}"
    );
    assert_recent_rfc3339(&leader["timestamp"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_leader_role_of_a_bootstrapped_node() {
    let n = TestNode::start(true).await;

    let health = n.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], json!("ok"), "{}", health.body);
    assert_eq!(health.body["role"], json!("leader"));
    assert_recent_rfc3339(&health.body["timestamp"]);
    assert_leader_is(&n, &health.body["leader"]);

    let ready = n.get("/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["ready"], json!(true));
    assert_eq!(ready.body["leaderKnown"], json!(true));
    let applied = ready.body["appliedIndex"].as_u64().expect("appliedIndex");
    assert!(applied >= ready.body["commitIndex"].as_u64().expect("commitIndex"));
    assert!(
        applied >= 1,
        "initialisation is a log entry: {}",
        ready.body
    );

    let leader = n.get("/leader").await;
    assert_eq!(leader.status, StatusCode::OK);
    assert_leader_is(&n, &leader.body);

    let role = n.get("/role").await;
    assert_eq!(role.status, StatusCode::OK);
    assert_eq!(role.body, json!({"role": "leader"}));

    // The cross-cutting headers are on these endpoints too.
    for a in [&health, &ready, &leader, &role] {
        assert!(a.applied_index() >= 1);
        let trace = a.headers.get("x-trace-id").expect("X-Trace-ID");
        assert!(!trace.is_empty());
    }
    let traced = n
        .send(
            n.http
                .get(format!("{}/health", n.base))
                .header("TraceId", "health-check-7"),
        )
        .await;
    assert_eq!(traced.headers.get("x-trace-id").unwrap(), "health-check-7");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_node_raft_membership_and_counts() {
    let n = TestNode::start(true).await;
    for (hash, n_props) in [("s1", 1), ("s2", 2)] {
        let fields: serde_json::Map<String, Value> = (0..n_props)
            .map(|i| (format!("p{i}"), json!("v")))
            .collect();
        let r = n
            .send(n.http.put(format!("{}/meta/{hash}", n.base)).json(&fields))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let svc = n.http.put(format!("{}/services/svc", n.base));
    let r = n.send(svc.json(&json!({"name": "svc"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let load = json!({"cluster": "c", "request_id": "r1", "ip": "10.0.0.1", "prompt_length": 3});
    let r = n
        .send(n.http.post(format!("{}/v1/load/stats", n.base)).json(&load))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ready = n.wait_ready().await;

    let s = n.get("/status").await;
    assert_eq!(s.status, StatusCode::OK);
    let b = &s.body;
    assert_eq!(b["nodeId"], json!(1), "{b}");
    assert_eq!(b["version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(b["uptimeSeconds"].is_u64(), "{b}");
    assert_eq!(b["role"], json!("leader"));
    let raft = &b["raft"];
    assert!(raft["term"].as_u64().expect("term") >= 1, "{raft}");
    assert_eq!(raft["leader"], json!(1));
    let applied = raft["appliedIndex"].as_u64().expect("appliedIndex");
    let commit = raft["commitIndex"].as_u64().expect("commitIndex");
    let last = raft["lastLogIndex"].as_u64().expect("lastLogIndex");
    assert!(
        applied >= ready["appliedIndex"].as_u64().unwrap(),
        "status is at least as fresh as the earlier /ready: {raft}"
    );
    assert!(applied <= commit, "{raft}");
    assert!(last >= applied, "{raft}");
    assert!(raft.get("snapshotIndex").is_some() && raft.get("purgedIndex").is_some());

    let m = &b["membership"];
    assert_eq!(
        m["voters"],
        json!([{"id": 1, "peer": n.peer(), "api": n.api()}]),
        "{m}"
    );
    assert_eq!(m["learners"], json!([]));
    assert_eq!(m["leader"], json!(1));
    assert!(
        b["replication"].is_object(),
        "the leader reports replication: {b}"
    );
    assert_eq!(
        b["counts"],
        json!({"metadata": 2, "services": 1, "engines": 1, "metricMetadata": 0}),
        "{b}"
    );
    let metrics = n
        .http
        .get(format!("{}/metrics", n.base))
        .send()
        .await
        .unwrap();
    let text = metrics.text().await.unwrap();
    for line in [
        "stored_objects{area=\"metadata\"} 2",
        "stored_objects{area=\"services\"} 1",
        "stored_objects{area=\"engines\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(b["storageBytes"].is_u64(), "{b}");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_lists_the_single_voter() {
    let n = TestNode::start(true).await;
    let m = n.get("/cluster/members").await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(
        m.body,
        json!({
            "voters": [{"id": 1, "peer": n.peer(), "api": n.api()}],
            "learners": [],
            "leader": 1,
        })
    );
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_with_bad_input_are_400_and_change_nothing() {
    let n = TestNode::start(true).await;
    let before_members = n.get("/cluster/members").await.body;
    let before = n.wait_ready().await["appliedIndex"].as_u64().unwrap();

    n.post("/cluster/init", "")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "already initialized");
    let members = json!({"members": [{"id": 1, "peer": n.peer(), "api": n.api()}]});
    n.post("/cluster/init", &members.to_string())
        .await
        .assert_error(StatusCode::BAD_REQUEST, "already initialized");
    n.post("/cluster/init", "{\"members\": 7}")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid JSON body");

    for body in [
        "",
        "{",
        "[]",
        "{\"id\": 2}",
        "{\"id\": \"two\", \"peer\": \"127.0.0.1:1\", \"api\": \"127.0.0.1:2\"}",
        "{\"id\": -2, \"peer\": \"127.0.0.1:1\", \"api\": \"127.0.0.1:2\"}",
    ] {
        n.post("/cluster/add", body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid JSON body");
    }
    for body in [
        "{\"id\": 0, \"peer\": \"127.0.0.1:1\", \"api\": \"127.0.0.1:2\"}",
        "{\"id\": 2, \"peer\": \"\", \"api\": \"127.0.0.1:2\"}",
        "{\"id\": 2, \"peer\": \"127.0.0.1:1\", \"api\": \"\"}",
    ] {
        n.post("/cluster/add", body).await.assert_error(
            StatusCode::BAD_REQUEST,
            "id (> 0), peer and api are required",
        );
    }
    for body in ["", "{}", "{\"id\": \"x\"}"] {
        n.post("/cluster/remove", body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid JSON body");
    }
    n.post("/cluster/remove", "{\"id\": 9}")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "not a member");
    // Regression: a body over limits.max_body_bytes was axum's plain-text 413.
    let huge = " ".repeat(1_048_577);
    for path in ["/cluster/init", "/cluster/add", "/cluster/remove"] {
        n.post(path, &huge)
            .await
            .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "larger than");
    }

    let after = n.wait_ready().await["appliedIndex"].as_u64().unwrap();
    assert_eq!(after, before, "no refused admin call reached the log");
    assert_eq!(n.get("/cluster/members").await.body, before_members);
    assert_eq!(n.get("/role").await.body, json!({"role": "leader"}));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninitialised_node_has_no_leader_until_init() {
    let n = TestNode::start(false).await;

    n.get("/leader")
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "no leader available");
    let leader = n.get("/leader").await;
    assert_eq!(
        leader.body,
        json!({"error": "Service Unavailable", "message": "no leader available"})
    );
    let ready = n.get("/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["ready"], json!(false));
    assert_eq!(ready.body["leaderKnown"], json!(false));
    let health = n.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], json!("degraded"), "{}", health.body);
    assert_eq!(health.body["leader"], Value::Null);
    assert_ne!(health.body["role"], json!("leader"));
    let members = n.get("/cluster/members").await.body;
    assert_eq!(members["voters"], json!([]), "{members}");

    // Refused inits leave the node uninitialised.
    n.post(
        "/cluster/init",
        "{\"members\": [{\"id\": 0, \"peer\": \"a:1\", \"api\": \"b:2\"}]}",
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "> 0");
    n.post("/cluster/init", "{oops")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid JSON body");
    assert_eq!(
        n.get("/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // An empty body initialises a cluster of this node alone.
    let init = n.post("/cluster/init", "").await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.body);
    assert_eq!(init.body, json!({"success": true}));
    n.wait_ready().await;
    assert_eq!(n.get("/role").await.body, json!({"role": "leader"}));
    assert_leader_is(&n, &n.get("/leader").await.body);
    assert_eq!(
        n.get("/cluster/members").await.body["voters"],
        json!([{"id": 1, "peer": n.peer(), "api": n.api()}])
    );
    assert_eq!(n.get("/health").await.body["status"], json!("ok"));
    n.post("/cluster/init", "")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "already initialized");
    n.stop().await;
}

/// The value of the sample `series` (name and labels exactly) in a scrape, 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_and_timed_by_route_method_and_status() {
    let n = TestNode::start(true).await;
    let scrape = || async {
        let r = n.http.get(format!("{}/metrics", n.base)).send().await;
        r.unwrap().text().await.unwrap()
    };
    let ok = r#"http_requests_total{method="GET",route="/cluster/members",status="200"}"#;
    let other = r#"http_requests_total{method="OTHER",route="unmatched",status="404"}"#;
    let timed = r#"http_request_duration_seconds_count{route="/cluster/members"}"#;
    let before = scrape().await;
    for _ in 0..3 {
        assert_eq!(n.get("/cluster/members").await.status, StatusCode::OK);
    }
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let r = n.http.request(brew, format!("{}/no/such/route", n.base));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers().contains_key("x-trace-id"));
    assert!(r.headers().contains_key("x-applied-index"));
    let after = scrape().await;
    // Other tests of this binary share the process-wide recorder: at least, not exactly.
    for (series, added) in [(ok, 3.0), (timed, 3.0), (other, 1.0)] {
        let grew = sample(&after, series) - sample(&before, series);
        assert!(grew >= added, "{series} grew by {grew}:\n{after}");
    }
    assert!(!after.contains("method=\"BREW\""), "{after}");
    n.stop().await;
}
