//! Cluster and node endpoints (API.md section 1) over real HTTP against one in-process
//! node: `/health`, `/ready`, `/status`, `/leader`, `/role`, `/cluster/members`, and
//! the admin calls `/cluster/init|add|remove` with the answers they give to a node
//! that is already initialised and to bad or oversized bodies.
//!
//! Every test starts its own node on ephemeral ports in a temporary directory
//! (`tests/common`) and shuts it down at the end; the refused admin calls are tables
//! run by `common::bad_input`.

mod common;

use common::bad_input::{self, json_text, row, Case, NO_HEADERS};
use common::{shape, Node, Reply};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The status of `r`, whose body must be JSON like every answer of these endpoints.
fn json_status(r: &Reply) -> StatusCode {
    r.json();
    r.status
}

/// `POST path` with a JSON content type and `body` as it is.
async fn post(n: &Node, path: &str, body: &str) -> Reply {
    let req = n.request(Method::POST, path);
    let req = req.header("content-type", "application/json");
    n.send(req.body(body.to_string())).await
}

/// The node as the membership lists it: voter 1 with its peer and API addresses.
fn voter(n: &Node) -> Value {
    json!({"id": 1, "peer": n.peer_addr().to_string(), "api": n.api_addr().to_string()})
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
fn assert_leader_is(n: &Node, leader: &Value) {
    assert_eq!(leader["id"], json!("1"), "{leader}");
    assert_eq!(leader["host"], json!("127.0.0.1"), "{leader}");
    assert_eq!(leader["api"], json!(n.api_addr().to_string()), "{leader}");
    assert_eq!(leader["http"], json!(n.base), "{leader}");
    assert_eq!(
        leader["pid"],
        json!(std::process::id()),
        "the leader is this process: {leader}"
    );
    assert_recent_rfc3339(&leader["timestamp"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_leader_role_of_a_bootstrapped_node() {
    let mut n = Node::single(&[]).await;

    let health = n.fetch("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    let h = health.json();
    assert_eq!(h["status"], json!("ok"), "{h}");
    assert_eq!(h["role"], json!("leader"));
    assert_recent_rfc3339(&h["timestamp"]);
    assert_leader_is(&n, &h["leader"]);

    let ready = n.fetch("/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    let r = ready.json();
    assert_eq!(r["ready"], json!(true));
    assert_eq!(r["leaderKnown"], json!(true));
    let applied = r["appliedIndex"].as_u64().expect("appliedIndex");
    assert!(applied >= r["commitIndex"].as_u64().expect("commitIndex"));
    assert!(applied >= 1, "initialisation is a log entry: {r}");

    let leader = n.fetch("/leader").await;
    assert_eq!(leader.status, StatusCode::OK);
    assert_leader_is(&n, &leader.json());

    let role = n.fetch("/role").await;
    assert_eq!(role.status, StatusCode::OK);
    assert_eq!(role.json(), json!({"role": "leader"}));

    // The cross-cutting headers are on these endpoints too.
    for a in [&health, &ready, &leader, &role] {
        assert!(a.applied_index() >= 1);
        let trace = a.headers.get("x-trace-id").expect("X-Trace-ID");
        assert!(!trace.is_empty());
    }
    let traced = n
        .send(
            n.request(Method::GET, "/health")
                .header("TraceId", "health-check-7"),
        )
        .await;
    assert_eq!(json_status(&traced), StatusCode::OK);
    assert_eq!(traced.headers.get("x-trace-id").unwrap(), "health-check-7");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_node_raft_membership_and_counts() {
    let mut n = Node::single(&[]).await;
    for (hash, n_props) in [("s1", 1), ("s2", 2)] {
        let fields: serde_json::Map<String, Value> = (0..n_props)
            .map(|i| (format!("p{i}"), json!("v")))
            .collect();
        let r = n
            .json(Method::PUT, &format!("/meta/{hash}"), Value::Object(fields))
            .await;
        let body = r.json();
        assert_eq!(r.status, StatusCode::OK, "{body}");
    }
    let r = n
        .json(Method::PUT, "/services/svc", json!({"name": "svc"}))
        .await;
    let body = r.json();
    assert_eq!(r.status, StatusCode::OK, "{body}");
    let load = json!({"cluster": "c", "request_id": "r1", "ip": "10.0.0.1", "prompt_length": 3});
    let r = n.json(Method::POST, "/v1/load/stats", load).await;
    let body = r.json();
    assert_eq!(r.status, StatusCode::OK, "{body}");
    let ready = n.wait_ready().await;

    let s = n.fetch("/status").await;
    assert_eq!(s.status, StatusCode::OK);
    let b = &s.json();
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
    assert_eq!(m["voters"], json!([voter(&n)]), "{m}");
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
    let text = n.fetch("/metrics").await.text();
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
    let mut n = Node::single(&[]).await;
    let m = n.fetch("/cluster/members").await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(
        m.json(),
        json!({
            "voters": [voter(&n)],
            "learners": [],
            "leader": 1,
        })
    );
    n.stop().await;
}

/// meta-core's error shape with the row's status and needle.
fn core_error(case: &Case, r: &Reply) -> Result<(), String> {
    shape::core(r, case.status(r), case.needle())
}

/// `POST path` with `body` (JSON content type), refused with `status` and a message
/// holding `needle`.
fn admin(path: &str, body: &str, status: u16, needle: &str) -> Case {
    row(
        Method::POST,
        path,
        NO_HEADERS,
        json_text(body),
        status,
        needle,
    )
}

/// The admin calls refused by an initialised node: another init, bodies that are no
/// member or id, a member to remove that is none, and bodies over
/// `limits.max_body_bytes` (once axum's plain-text 413).
#[rustfmt::skip]
fn admin_bad_input(n: &Node) -> Vec<Case> {
    let members = json!({ "members": [voter(n)] }).to_string();
    let huge = " ".repeat(1_048_577);
    let (json_body, required) = ("invalid JSON body", "id (> 0), peer and api are required");
    let add = "/cluster/add";
    vec![
        admin("/cluster/init", "", 400, "already initialized"),
        admin("/cluster/init", &members, 400, "already initialized"),
        admin("/cluster/init", r#"{"members": 7}"#, 400, json_body),
        admin("/cluster/add", "", 400, json_body),
        admin("/cluster/add", "{", 400, json_body),
        admin("/cluster/add", "[]", 400, json_body),
        admin("/cluster/add", r#"{"id": 2}"#, 400, json_body),
        admin(add, r#"{"id": "two", "peer": "127.0.0.1:1", "api": "127.0.0.1:2"}"#, 400, json_body),
        admin(add, r#"{"id": -2, "peer": "127.0.0.1:1", "api": "127.0.0.1:2"}"#, 400, json_body),
        admin(add, r#"{"id": 0, "peer": "127.0.0.1:1", "api": "127.0.0.1:2"}"#, 400, required),
        admin("/cluster/add", r#"{"id": 2, "peer": "", "api": "127.0.0.1:2"}"#, 400, required),
        admin("/cluster/add", r#"{"id": 2, "peer": "127.0.0.1:1", "api": ""}"#, 400, required),
        admin("/cluster/remove", "", 400, json_body),
        admin("/cluster/remove", "{}", 400, json_body),
        admin("/cluster/remove", r#"{"id": "x"}"#, 400, json_body),
        admin("/cluster/remove", r#"{"id": 9}"#, 400, "not a member"),
        // Regression: a body over limits.max_body_bytes was axum's plain-text 413.
        admin("/cluster/init", &huge, 413, "larger than"),
        admin("/cluster/add", &huge, 413, "larger than"),
        admin("/cluster/remove", &huge, 413, "larger than"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_with_bad_input_are_400_and_change_nothing() {
    let mut n = Node::single(&[]).await;
    let before_members = n.fetch("/cluster/members").await.json();
    let before = n.wait_ready().await["appliedIndex"].as_u64().unwrap();

    bad_input::run_shaped(&n, &admin_bad_input(&n), core_error).await;

    let after = n.wait_ready().await["appliedIndex"].as_u64().unwrap();
    assert_eq!(after, before, "no refused admin call reached the log");
    assert_eq!(n.fetch("/cluster/members").await.json(), before_members);
    assert_eq!(n.fetch("/role").await.json(), json!({"role": "leader"}));
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninitialised_node_has_no_leader_until_init() {
    let mut n = Node::launch(&[("node.bootstrap", "false")], &[]).await;

    n.fetch("/leader")
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "no leader available");
    let leader = n.fetch("/leader").await;
    assert_eq!(
        leader.json(),
        json!({"error": "Service Unavailable", "message": "no leader available"})
    );
    let ready = n.fetch("/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = ready.json();
    assert_eq!(r["ready"], json!(false));
    assert_eq!(r["leaderKnown"], json!(false));
    let says =
        |text: &str| text.contains("not part of an initialised cluster") && text.contains("--join");
    assert!(says(r["reason"].as_str().unwrap_or("")), "{r}");
    // A write answers at once, saying what to do (not after the forward timeout).
    let started = std::time::Instant::now();
    let w = n.json(Method::PUT, "/meta/uninit", json!({"v": 1})).await;
    assert_eq!(w.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(says(&w.lossy()), "{}", w.lossy());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let health = n.fetch("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    let h = health.json();
    assert_eq!(h["status"], json!("degraded"), "{h}");
    assert_eq!(h["leader"], Value::Null);
    assert_ne!(h["role"], json!("leader"));
    let members = n.fetch("/cluster/members").await.json();
    assert_eq!(members["voters"], json!([]), "{members}");

    // Refused inits leave the node uninitialised.
    let zero = "{\"members\": [{\"id\": 0, \"peer\": \"a:1\", \"api\": \"b:2\"}]}";
    let refused = [
        admin("/cluster/init", zero, 400, "> 0"),
        admin("/cluster/init", "{oops", 400, "invalid JSON body"),
    ];
    bad_input::run_shaped(&n, &refused, core_error).await;
    assert_eq!(
        json_status(&n.fetch("/ready").await),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // An empty body initialises a cluster of this node alone.
    let init = post(&n, "/cluster/init", "").await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.json());
    assert_eq!(init.json(), json!({"success": true}));
    n.wait_ready().await;
    assert_eq!(n.fetch("/role").await.json(), json!({"role": "leader"}));
    assert_leader_is(&n, &n.fetch("/leader").await.json());
    assert_eq!(
        n.fetch("/cluster/members").await.json()["voters"],
        json!([voter(&n)])
    );
    assert_eq!(n.fetch("/health").await.json()["status"], json!("ok"));
    post(&n, "/cluster/init", "")
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
    let mut n = Node::single(&[]).await;
    let scrape = || async { n.fetch("/metrics").await.text() };
    let ok = r#"http_requests_total{method="GET",route="/cluster/members",status="200"}"#;
    let other = r#"http_requests_total{method="OTHER",route="unmatched",status="404"}"#;
    let timed = r#"http_request_duration_seconds_count{route="/cluster/members"}"#;
    let before = scrape().await;
    for _ in 0..3 {
        let members = n.fetch("/cluster/members").await;
        assert_eq!(json_status(&members), StatusCode::OK);
    }
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let r = n.request(brew, "/no/such/route");
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

/// Only the leader knows its process id: `/leader` on a follower leaves `pid` out
/// (rather than `null`), and has it on the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_pid_only_from_the_leader() {
    let mut nodes = common::cluster(&[]).await;
    let leader = nodes[0].leader().await.expect("a leader");
    for (n, id) in nodes.iter().zip(1u64..) {
        let l = n.fetch("/leader").await.json();
        let has_pid = l.as_object().is_some_and(|o| o.contains_key("pid"));
        assert_eq!(has_pid, id == leader, "node {id}, leader {leader}: {l}");
    }
    common::stop_all(&mut nodes).await;
}
