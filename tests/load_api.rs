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
//! the end; conditions are polled with a deadline, never waited for with a fixed sleep
//! (`tests/common`). The refused requests are tables ([`bad_input`] and one per other
//! test) run by `common::bad_input`.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::bad_input::{self, json, json_text, row, Body, Case, NO_BODY, NO_HEADERS};
use common::bad_input::{DELETE, GET, POST, PUT};
use common::{cluster, shape, stop_all, until, Node, Reply, DEADLINE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

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
const NOT_FOUND_MSG: &str = "Resource not found";

// ------------------------------------------------------------------ helpers

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

/// The Metadata Center envelope `{"status","error","data","trace_id"}` of an answer.
trait Envelope {
    fn envelope(&self) -> Value;
    fn data(&self) -> Value;
    fn error(&self, code: u64, message: &str) -> String;
}

impl Envelope for Reply {
    /// Checks the envelope's shape and that `trace_id` equals the `X-Trace-ID`
    /// header; returns the body.
    fn envelope(&self) -> Value {
        shape::envelope(self).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Asserts a successful envelope and returns `data`.
    fn data(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body {}", self.lossy());
        let body = self.envelope();
        assert_eq!(body["status"], "OK", "{body}");
        assert_eq!(body["error"], Value::Null, "{body}");
        body["data"].clone()
    }

    /// Asserts a failed envelope with `code` (HTTP status `code / 100000`) and
    /// `message`; returns the reason.
    fn error(&self, code: u64, message: &str) -> String {
        shape::mc_error(self, code, message).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A refused load request: `method path` with `body` (JSON content type, like every
/// request of these tests) answered with `status`, the envelope's `message` and a
/// `reason` holding `reason` (a non-empty reason when `reason` is empty).
fn refused(
    method: Method,
    path: &str,
    body: Body,
    status: u16,
    message: &str,
    reason: &str,
) -> Case {
    let ct: &[(&str, &str)] = match body {
        Body::None => &[("Content-Type", "application/json")],
        _ => NO_HEADERS,
    };
    row(method, path, ct, body, status, [message, reason])
}

/// The shape of a [`refused`] row: the error envelope with the code of its status, its
/// message and a reason holding its reason fragment.
fn load_error(case: &Case, r: &Reply) -> Result<(), String> {
    let status = u64::from(case.status(r).as_u16());
    let code = status * 100_000 + 1_000 + status;
    let reason = shape::mc_error(r, code, &case.fragments[0])?;
    let want = &case.fragments[1];
    if reason.is_empty() || !reason.contains(want.as_str()) {
        return Err(format!("reason {reason:?} should name {want:?}"));
    }
    Ok(())
}

/// The load calls of these tests.
trait Load {
    async fn send_traced(&self, m: Method, path: &str, body: Option<Vec<u8>>, trace: &str)
        -> Reply;
    async fn add(&self, cluster: &str, id: &str, ip: &str, prompt: i64) -> Reply;
    async fn prompt_done(&self, id: &str) -> Reply;
    async fn done(&self, id: &str) -> Reply;
    async fn stats(&self, cluster: &str) -> Value;
    async fn counts(&self, cluster: &str, ip: &str) -> Option<(u64, u64)>;
    async fn load_gauges(&self) -> BTreeSet<String>;
}

impl Load for Node {
    /// `method path` with the JSON content type, an optional body and a `TraceId`
    /// unless `trace` is empty.
    async fn send_traced(
        &self,
        m: Method,
        path: &str,
        body: Option<Vec<u8>>,
        trace: &str,
    ) -> Reply {
        let mut req = self
            .request(m, path)
            .header("Content-Type", "application/json");
        if !trace.is_empty() {
            req = req.header("TraceId", trace);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        self.send(req).await
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
        let body = json!({ "request_id": id });
        self.json(Method::DELETE, "/v1/load/prompt", body).await
    }

    async fn done(&self, id: &str) -> Reply {
        let body = json!({ "request_id": id });
        self.json(Method::DELETE, "/v1/load/stats", body).await
    }

    /// `data` of a linearizable cluster read.
    async fn stats(&self, cluster: &str) -> Value {
        let c = enc(cluster);
        let path = format!("/v1/load/stats?cluster={c}&consistency=linearizable");
        self.fetch(&path).await.data()
    }

    /// (queued_req_num, prompt_length) of one engine, `None` when absent.
    async fn counts(&self, cluster: &str, ip: &str) -> Option<(u64, u64)> {
        counts_of(&self.stats(cluster).await, ip)
    }

    /// The load gauge lines of `/metrics` (`queued_num{...}` and `prompt_length{...}`).
    async fn load_gauges(&self) -> BTreeSet<String> {
        let r = self.fetch("/metrics").await;
        assert_eq!(r.status, StatusCode::OK);
        r.text()
            .lines()
            .filter(|l| l.starts_with("queued_num{") || l.starts_with("prompt_length{"))
            .map(str::to_string)
            .collect()
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
    let mut n = Node::single(&[]).await;
    let (c, ip) = ("llama-7b", "10.1.0.1");
    let before = now_ns();
    let body = |v: Value| Some(v.to_string().into_bytes());

    let r = n
        .send_traced(
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
    assert_eq!(r.trace_id(), "trace-add-1");

    let r = n
        .send_traced(
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
        .send_traced(
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
        .send_traced(
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
    let mut n = Node::single(&[]).await;
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
    let mut n = Node::single(&[]).await;
    let path = "/v1/load/stats?cluster=nobody";

    let r = n.send_traced(Method::GET, path, None, "from-traceid").await;
    assert_eq!(r.data(), Value::Null);
    assert_eq!(r.trace_id(), "from-traceid");

    let r = n
        .request(Method::GET, path)
        .header("X-Trace-ID", "from-x-trace-id")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-trace-id"], "from-x-trace-id");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["trace_id"], "from-x-trace-id");

    let (a, b) = (n.fetch(path).await, n.fetch(path).await);
    a.data();
    b.data();
    for r in [&a, &b] {
        uuid::Uuid::parse_str(&r.trace_id()).expect("a generated trace id is a UUID");
    }
    assert_ne!(a.trace_id(), b.trace_id(), "a new id per request");

    // Errors and unknown routes carry it too.
    let r = n
        .send_traced(
            Method::POST,
            "/v1/load/stats",
            Some(b"{".to_vec()),
            "err-trace",
        )
        .await;
    r.error(INVALID, JSON_MSG);
    assert_eq!(r.trace_id(), "err-trace");
    let r = n
        .send_traced(Method::GET, "/v1/no/such/route", None, "nf-trace")
        .await;
    r.error(NOT_FOUND, "Resource not found");
    assert_eq!(r.json()["trace_id"], "nf-trace");
    n.stop().await;
}

#[tokio::test]
async fn cluster_read_of_unknown_or_missing_cluster() {
    let mut n = Node::single(&[]).await;
    n.add("known", "r", "10.0.0.1", 1).await.data();
    assert_eq!(n.stats("unknown").await, Value::Null);
    let get = |path| refused(GET, path, NO_BODY, 400, INVALID_MSG, "cluster");
    let table = [
        get("/v1/load/stats"),
        get("/v1/load/stats?cluster="),
        get("/v1/load/stats?consistency=linearizable"),
        get("/v1/load/stats?clusterx=known"),
    ];
    bad_input::run_shaped(&n, &table, load_error).await;
    n.stop().await;
}

/// A state every bad request must leave as it is: the cluster read and every gauge.
async fn snapshot(n: &Node, cluster: &str) -> (Value, BTreeSet<String>) {
    (n.stats(cluster).await, n.load_gauges().await)
}

/// The load area's refused requests: malformed JSON (the decoder's text is the
/// reason), well-formed JSON of the wrong type, missing or invalid fields (the reason
/// names the field) and unknown routes under `/v1/` (the reason names the path).
#[rustfmt::skip]
fn bad_input(c: &str, ip: &str) -> Vec<Case> {
    let (add, prompt, batch) = ("/v1/load/stats", "/v1/load/prompt", "/v1/load/batch");
    let full = json!({"cluster": c, "request_id": "x1", "ip": ip, "prompt_length": 1});
    let with = |k: &str, v: Value| {
        let mut b = full.clone();
        b[k] = v;
        json(b)
    };
    let without = |k: &str| {
        let mut b = full.clone();
        b.as_object_mut().unwrap().remove(k);
        json(b)
    };
    let bad = |m, p: &str, body, reason| refused(m, p, body, 400, INVALID_MSG, reason);
    let malformed = |m, p: &str, text, reason| refused(m, p, json_text(text), 400, JSON_MSG, reason);
    let unknown = |m, p: &str| refused(m, p, json(full.clone()), 404, NOT_FOUND_MSG, p);
    vec![
        // Malformed JSON: the decoder's text is the reason.
        malformed(POST, add, r#"{"cluster":"bad-c","request_id":"x1","ip":"10.2.0.1""#, "EOF"),
        malformed(POST, add, "not json", "expected ident"),
        malformed(POST, add, "", "EOF"),
        malformed(DELETE, add, r#"{"request_id":"r0""#, "EOF"),
        malformed(DELETE, prompt, r#"{"request_id": r0}"#, "expected value"),
        malformed(POST, batch, r#"{"operations":[{"op":"add""#, "EOF"),
        // Well-formed JSON of the wrong type: the decoder's text is the reason.
        bad(POST, add, with("prompt_length", json!("1")), "expected i64"),
        bad(POST, add, with("request_id", json!(7)), "expected a string"),
        bad(POST, add, json(json!([c, "x1", ip, 1])), "expected struct"),
        bad(DELETE, add, json(json!({"request_id": ["r0"]})), "expected a string"),
        bad(DELETE, prompt, json(json!({"request_id": "r0", "timestamp": "soon"})), "expected i64"),
        // Missing or invalid fields: the reason names the field.
        bad(POST, add, without("cluster"), "cluster"),
        bad(POST, add, with("cluster", json!("")), "cluster"),
        bad(POST, add, without("request_id"), "request_id"),
        bad(POST, add, with("request_id", json!("")), "request_id"),
        bad(POST, add, without("ip"), "ip"),
        bad(POST, add, with("ip", json!("1.2.3")), "ip"),
        bad(POST, add, with("ip", json!("::1")), "ip"),
        bad(POST, add, with("ip", json!("256.0.0.1")), "ip"),
        bad(POST, add, with("ip", json!("10.2.0.1 ")), "ip"),
        bad(POST, add, with("prompt_length", json!(-1)), "prompt_length"),
        bad(POST, add, with("timestamp", json!(-1)), "timestamp"),
        bad(DELETE, add, json(json!({})), "request_id"),
        bad(DELETE, add, json(json!({"request_id": ""})), "request_id"),
        bad(DELETE, add, json(json!({"request_id": "r0", "timestamp": -5})), "timestamp"),
        bad(DELETE, prompt, json(json!({"cluster": c})), "request_id"),
        bad(DELETE, prompt, json(json!({"request_id": "r0", "timestamp": -5})), "timestamp"),
        // Unknown routes under /v1/: the reason names the path.
        unknown(GET, "/v1/load/nope"),
        unknown(POST, "/v1/load/stats/extra"),
        unknown(DELETE, "/v1/nothing"),
    ]
}

/// After each refused request of a table on `n`: the cluster read of `c` and every
/// load gauge are still `before`.
async fn unchanged(n: &Node, c: &str, before: &(Value, BTreeSet<String>)) -> Result<(), String> {
    let now = snapshot(n, c).await;
    match &now == before {
        true => Ok(()),
        false => Err(format!("the state changed: {now:?}, was {before:?}")),
    }
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let mut n = Node::single(&[]).await;
    let (c, ip) = ("bad-c", "10.2.0.1");
    n.add(c, "r0", ip, 42).await.data();
    let before = snapshot(&n, c).await;
    assert_eq!(counts_of(&before.0, ip), Some((1, 42)));
    let after = || unchanged(&n, c, &before);
    bad_input::run_with(&n, &bad_input(c, ip), load_error, after).await;
    n.stop().await;
}

#[tokio::test]
async fn regression_wrong_method_on_a_load_route_is_not_in_the_envelope() {
    let mut n = Node::single(&[]).await;
    let wrong = |m, p: &str| {
        row(
            m,
            p,
            &[("TraceId", "wm")],
            json_text("{}"),
            405,
            format!("not allowed on {p}"),
        )
    };
    let table = [
        wrong(PUT, "/v1/load/stats"),
        wrong(GET, "/v1/load/prompt"),
        wrong(GET, "/v1/load/batch"),
    ];
    bad_input::run_shaped(&n, &table, |_, r| {
        let body = shape::envelope(r)?;
        match (&body["status"], &body["trace_id"]) {
            (s, t) if s == "ERROR" && t == "wm" => Ok(()),
            _ => Err(format!("not an ERROR traced wm: {body}")),
        }
    })
    .await;
    n.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let mut n = Node::single(&[("limits.max_body_bytes", "256")]).await;
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
    let (h, limit) = (NO_HEADERS, "larger than 256 bytes");
    #[rustfmt::skip]
    let table = [
        row(POST, "/v1/load/stats", h, json(big_add), 413, limit),
        row(DELETE, "/v1/load/stats", h, json(big_done.clone()), 413, limit),
        row(DELETE, "/v1/load/prompt", h, json(big_done), 413, limit),
        row(POST, "/v1/load/batch", h, json(big_batch), 413, limit),
    ];
    let too_large = |_: &Case, r: &Reply| {
        let body = shape::envelope(r)?;
        match body["status"] == "ERROR" && body["error"]["code"] == TOO_LARGE {
            true => Ok(()),
            false => Err(format!("not an ERROR {TOO_LARGE}: {body}")),
        }
    };
    let after = || unchanged(&n, c, &before);
    bad_input::run_with(&n, &table, too_large, after).await;
    n.stop().await;
}

#[tokio::test]
async fn batch_applies_valid_operations_in_order() {
    let mut n = Node::single(&[]).await;
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
        .send_traced(
            Method::POST,
            "/v1/load/batch",
            Some(json!({ "operations": ops }).to_string().into_bytes()),
            "batch-trace",
        )
        .await;
    let data = r.data();
    assert_eq!(r.trace_id(), "batch-trace");
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
    let mut n = Node::single(&[]).await;
    let (c, ip) = ("batch-empty", "10.5.0.1");
    n.add(c, "r", ip, 9).await.data();
    let before = snapshot(&n, c).await;
    let batch =
        |body, reason| refused(POST, "/v1/load/batch", json(body), 400, INVALID_MSG, reason);
    let table = [
        batch(json!({"operations": []}), "operations"),
        batch(json!({}), "operations"),
        batch(json!({"operations": null}), "null"),
    ];
    let after = || unchanged(&n, c, &before);
    bad_input::run_with(&n, &table, load_error, after).await;
    n.stop().await;
}

#[tokio::test]
async fn log_level_is_set_or_refused() {
    let mut n = Node::single(&[]).await;
    let r = n
        .send_traced(
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
    let level =
        |text, message, reason| refused(POST, "/log/level", json_text(text), 400, message, reason);
    let table = [
        level(r#"{"LevelParam":"LOUD"}"#, INVALID_MSG, "loud"),
        level(r#"{"Level":"INFO"}"#, INVALID_MSG, "LevelParam"),
        level(r#"{"LevelParam":"#, JSON_MSG, "EOF"),
    ];
    bad_input::run_shaped(&n, &table, load_error).await;
    let info = br#"{"LevelParam":"INFO"}"#.to_vec();
    assert_eq!(
        n.send_traced(Method::POST, "/log/level", Some(info), "")
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
    until(&format!("{method} {url} {body} answered"), || async {
        match http.request(method.clone(), url).json(body).send().await {
            Ok(r) if r.status() == StatusCode::OK => {
                let v: Value = r.json().await.expect("JSON envelope");
                assert_eq!(v["status"], "OK", "{method} {url} {body}: {v}");
                Some(())
            }
            // No leader for a moment, or a transport error: retried.
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => None,
            Ok(r) => panic!(
                "{method} {url} {body}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => None,
        }
    })
    .await
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
    let mut nodes = cluster(RAFT).await;
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
        let http = common::client();
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
            tokio::time::timeout(DEADLINE, b.wait())
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
        tokio::time::timeout(DEADLINE, t)
            .await
            .expect("clients finish their dones")
            .expect("client task");
    }
    assert_counts(&all, c, ip, (0, 0), "after all dones").await;
    stop_all(&mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_are_unchanged_after_the_leader_is_killed() {
    let mut nodes = cluster(RAFT).await;
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
        until("a new leader among the survivors", || async {
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
    stop_all(&mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_expires_the_request_then_the_engine() {
    let expiry = [
        ("load.gc_interval_ms", "100"),
        ("load.req_expire_ms", "300"),
        ("load.engine_expire_ms", "600"),
    ];
    let mut nodes = cluster(&[RAFT, &expiry].concat()).await;
    let (c, ip) = ("expiring", "10.8.0.1");
    let leader = nodes[0].leader().await.expect("leader known");
    let l = &nodes[(leader - 1) as usize];
    let queued = gauge_line("queued_num", c, ip);
    let prompt = gauge_line("prompt_length", c, ip);

    l.add(c, "r1", ip, 100).await.data();
    // The request lives at least 300 ms and its engine at least 600 ms past the add;
    // the reads below happen while the engine exists.
    let first = l.fetch(&format!("/v1/load/stats?cluster={c}")).await.data();
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
    until("the request's counters drop to zero", || async {
        let data = l.fetch(&format!("/v1/load/stats?cluster={c}")).await.data();
        match counts_of(&data, ip) {
            Some((0, 0)) => Some(()),
            Some(_) => None,
            None => panic!("the engine went before its counters were seen at zero"),
        }
    })
    .await;

    // Then the idle engine, on every node.
    for n in &nodes {
        until("the idle engine disappears", || async {
            (n.stats(c).await == Value::Null).then_some(())
        })
        .await;
        until("its gauges disappear", || async {
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
    stop_all(&mut nodes).await;
}
