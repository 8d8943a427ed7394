//! WebSocket metric streams (`WS /ws/metrics/{run_id}`, API.md section 5) on
//! in-process nodes: a point written through one node of a three-node cluster is
//! pushed to a stream opened on another node; `subscribe` is acknowledged; the
//! stream carries only the subscribed metric names of its own run and tenant; the
//! connection limit refuses the upgrade with 503; a request that is no upgrade gets a
//! JSON 400; shutdown closes open streams; a client message over
//! `limits.max_ws_message_bytes` (one frame, fragments, or a frame header alone)
//! closes the stream with 1009; a subscribe over `limits.max_subscribe_metrics` names
//! is answered `error`, not applied, and the stream goes on; a `?tenant=` outside the
//! one tenant rule is a JSON 400.
//!
//! Absence is checked without timing: after the writes that must not arrive, a marker
//! point that must arrive is written, and streams deliver applied batches in order, so
//! everything before the marker has been filtered by the time it is seen.
//!
//! The plain GETs a stream route refuses are tables run by `common::bad_input`.

mod common;

use common::bad_input::{self, row, NO_BODY, NO_HEADERS};
use common::ws::{self, next_json, Ws};
use common::{cluster, shape, stop_all, until, Node, DEADLINE};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const RUN: &str = "7d9f3c1a-2b4e-4f60-8a11-223344556677";
const RUN2: &str = "7d9f3c1a-2b4e-4f60-8a11-000000000002";

// ---------------------------------------------------------------- nodes

/// The writes and streams of these tests.
trait Streams {
    async fn write(&self, tenant: Option<&str>, items: Vec<Value>);
    async fn ws(&self, run: &str, tenant: Option<&str>) -> Result<Ws, WsError>;
}

impl Streams for Node {
    /// Writes metric points; asserts 201.
    async fn write(&self, tenant: Option<&str>, items: Vec<Value>) {
        let (st, body) = self
            .post("/api/v1/metrics/batch", tenant, json!({ "metrics": items }))
            .await;
        assert_eq!(st, StatusCode::CREATED, "write: {body}");
    }

    /// Opens a stream on this node.
    async fn ws(&self, run: &str, tenant: Option<&str>) -> Result<Ws, WsError> {
        let tenant: Vec<(&str, &str)> = tenant.map(|t| ("X-Tenant-ID", t)).into_iter().collect();
        ws::open(&self.base, &format!("/ws/metrics/{run}"), &tenant).await
    }
}

// ---------------------------------------------------------------- streams

fn point(run: &str, metric: &str, step: i64, value: f64) -> Value {
    json!({ "run_id": run, "metric_name": metric, "step": step, "value": value,
            "time": "2024-05-01T12:00:00Z" })
}

/// Subscribes and checks the acknowledgement.
async fn subscribe(ws: &mut Ws, run: &str, names: &[&str]) {
    let msg = json!({ "type": "subscribe", "payload": { "run_id": run, "metric_names": names } });
    ws.send(Message::text(msg.to_string()))
        .await
        .expect("send subscribe");
    let ack = next_json(ws).await;
    assert_eq!(ack["type"], json!("subscribed"), "{ack}");
    assert_eq!(ack["payload"]["run_id"], json!(run), "{ack}");
    let mut acked: Vec<&str> = ack["payload"]["metric_names"]
        .as_array()
        .unwrap_or_else(|| panic!("metric_names in {ack}"))
        .iter()
        .map(|v| v.as_str().expect("name"))
        .collect();
    acked.sort_unstable();
    let mut want = names.to_vec();
    want.sort_unstable();
    assert_eq!(acked, want, "{ack}");
}

/// Every point pushed until (and including) the one whose step is `marker_step`.
async fn points_until(ws: &mut Ws, marker_step: i64) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let msg = next_json(ws).await;
        assert_eq!(msg["type"], json!("metric"), "unexpected message {msg}");
        let pts = msg["payload"]["metrics"]
            .as_array()
            .unwrap_or_else(|| panic!("metrics in {msg}"));
        assert!(!pts.is_empty(), "empty metric message");
        let done = pts.iter().any(|p| p["step"] == json!(marker_step));
        out.extend(pts.iter().cloned());
        if done {
            return out;
        }
    }
}

fn names_and_steps(points: &[Value]) -> Vec<(String, i64)> {
    points
        .iter()
        .map(|p| {
            (
                p["metric_name"].as_str().expect("name").to_string(),
                p["step"].as_i64().expect("step"),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_written_through_node_1_arrives_on_node_3() {
    let mut nodes = cluster(&[]).await;
    let mut ws = nodes[2].ws(RUN, None).await.expect("connect to node 3");
    subscribe(&mut ws, RUN, &[]).await;
    let mut p = point(RUN, "loss", 1, 0.25);
    p["metadata"] = json!({ "epoch": 3 });
    nodes[0]
        .write(None, vec![p, point(RUN, "acc", 2, 0.5)])
        .await;
    let got = points_until(&mut ws, 2).await;
    assert_eq!(
        names_and_steps(&got),
        vec![("loss".to_string(), 1), ("acc".to_string(), 2)]
    );
    let loss = &got[0];
    assert_eq!(loss["run_id"], json!(RUN));
    assert_eq!(loss["value"].as_f64(), Some(0.25));
    assert_eq!(loss["metadata"], json!({ "epoch": 3 }));
    let t = chrono::DateTime::parse_from_rfc3339(loss["time"].as_str().expect("time"))
        .expect("RFC3339 time");
    assert_eq!(t.to_rfc3339(), "2024-05-01T12:00:00+00:00");
    // Written through node 2 as well: the same stream on node 3 gets it.
    nodes[1].write(None, vec![point(RUN, "loss", 3, 1.0)]).await;
    assert_eq!(
        names_and_steps(&points_until(&mut ws, 3).await),
        vec![("loss".to_string(), 3)]
    );
    ws.close(None).await.expect("close");
    stop_all(&mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_carry_only_subscribed_names_of_their_run_and_tenant() {
    let mut n = Node::single(&[]).await;
    let mut only_loss = n.ws(RUN, None).await.expect("connect");
    subscribe(&mut only_loss, RUN, &["loss", "lr"]).await;
    let mut everything = n.ws(RUN, None).await.expect("connect");
    subscribe(&mut everything, RUN, &[]).await;
    let mut tenant_b = n.ws(RUN, Some("team-b")).await.expect("connect");
    subscribe(&mut tenant_b, RUN, &[]).await;

    // Default tenant, this run: loss, acc and lr in one batch, acc alone.
    n.write(
        None,
        vec![
            point(RUN, "loss", 1, 1.0),
            point(RUN, "acc", 2, 2.0),
            point(RUN, "lr", 3, 3.0),
        ],
    )
    .await;
    n.write(None, vec![point(RUN, "acc", 4, 4.0)]).await;
    // Another run, same tenant; this run, another tenant.
    n.write(None, vec![point(RUN2, "loss", 5, 5.0)]).await;
    n.write(Some("team-c"), vec![point(RUN, "loss", 6, 6.0)])
        .await;
    n.write(Some("team-b"), vec![point(RUN, "acc", 7, 7.0)])
        .await;
    // Markers.
    n.write(None, vec![point(RUN, "loss", 100, 0.0)]).await;
    n.write(Some("team-b"), vec![point(RUN, "loss", 100, 0.0)])
        .await;

    let s = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names_and_steps(&points_until(&mut only_loss, 100).await),
        s(&[("loss", 1), ("lr", 3), ("loss", 100)])
    );
    assert_eq!(
        names_and_steps(&points_until(&mut everything, 100).await),
        s(&[
            ("loss", 1),
            ("acc", 2),
            ("lr", 3),
            ("acc", 4),
            ("loss", 100)
        ])
    );
    let b = points_until(&mut tenant_b, 100).await;
    assert_eq!(names_and_steps(&b), s(&[("acc", 7), ("loss", 100)]));
    assert!(b.iter().all(|p| p["run_id"] == json!(RUN)));

    // Re-subscribing replaces the filter.
    subscribe(&mut only_loss, RUN, &["acc"]).await;
    n.write(
        None,
        vec![point(RUN, "loss", 8, 8.0), point(RUN, "acc", 101, 9.0)],
    )
    .await;
    assert_eq!(
        names_and_steps(&points_until(&mut only_loss, 101).await),
        s(&[("acc", 101)])
    );
    // A subscribe for another run than the path's is refused with an error message
    // (on the team-b stream, which has nothing else pending).
    let bad = json!({ "type": "subscribe", "payload": { "run_id": RUN2 } });
    tenant_b
        .send(Message::text(bad.to_string()))
        .await
        .expect("send");
    let answer = next_json(&mut tenant_b).await;
    assert_eq!(answer["type"], json!("error"), "{answer}");

    for mut ws in [only_loss, everything, tenant_b] {
        ws.close(None).await.expect("close");
    }
    n.stop().await;
}

/// Regression (found by scripts/schemathesis.sh): a plain GET of the stream route was
/// answered by axum's text/plain rejection instead of the area's JSON envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_is_no_upgrade_gets_a_json_400() {
    let mut n = Node::single(&[]).await;
    let path = format!("/ws/metrics/{RUN}");
    let table = [row(Method::GET, path, NO_HEADERS, NO_BODY, 400, "upgrade")];
    bad_input::run_shaped(&n, &table, |case, r| {
        shape::plain(r, case.status(r), &case.needles())
    })
    .await;
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_with_503() {
    let mut n = Node::single(&[("limits.max_websockets", "1")]).await;
    let mut first = n.ws(RUN, None).await.expect("first connection");
    subscribe(&mut first, RUN, &[]).await;
    match n.ws(RUN, None).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        Err(e) => panic!("second connection: expected HTTP 503, got {e}"),
        Ok(_) => panic!("second connection accepted over limits.max_websockets=1"),
    }
    // The first stream still works.
    n.write(None, vec![point(RUN, "loss", 1, 1.0)]).await;
    assert_eq!(points_until(&mut first, 1).await.len(), 1);
    // Once it is closed, its slot is free again.
    first.close(None).await.expect("close");
    let mut again = until("the slot freed", || async {
        match n.ws(RUN, None).await {
            Ok(ws) => Some(ws),
            Err(WsError::Http(resp)) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => None,
            Err(e) => panic!("reconnect: {e}"),
        }
    })
    .await;
    subscribe(&mut again, RUN, &[]).await;
    again.close(None).await.expect("close");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_are_closed_when_the_server_shuts_down() {
    let mut n = Node::single(&[]).await;
    let mut ws = n.ws(RUN, None).await.expect("connect");
    subscribe(&mut ws, RUN, &[]).await;
    let server = n.take_server();
    let stopping = tokio::spawn(server.shutdown());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("stream still open {DEADLINE:?} after shutdown"));
        match msg {
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("unexpected message during shutdown: {other:?}"),
        }
    }
    tokio::time::timeout(DEADLINE, stopping)
        .await
        .expect("shutdown finishes")
        .expect("shutdown task");
}

// ---------------------------------------------------------------- limits

/// A subscribe to `loss`, padded with JSON whitespace to exactly `len` bytes.
fn padded_subscribe(len: usize) -> String {
    let msg =
        json!({ "type": "subscribe", "payload": { "run_id": RUN, "metric_names": ["loss"] } });
    let mut text = msg.to_string();
    assert!(text.len() <= len, "{len} is too small for a subscribe");
    text.push_str(&" ".repeat(len - text.len()));
    text
}

/// Waits for the node to close the stream with 1009 (message too big).
async fn closed_too_big(ws: &mut Ws) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("stream not closed within {DEADLINE:?}"));
        match msg {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 1009, "close frame {f:?}");
                return;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close with 1009, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_max_ws_message_bytes_close_the_stream_with_1009() {
    let mut n = Node::single(&[("limits.max_ws_message_bytes", "1024")]).await;
    // A message of exactly the limit is read and answered; one byte more closes.
    let mut ws = n.ws(RUN, None).await.expect("connect");
    ws.send(Message::text(padded_subscribe(1024)))
        .await
        .expect("send");
    assert_eq!(next_json(&mut ws).await["type"], json!("subscribed"));
    ws.send(Message::text(padded_subscribe(1025)))
        .await
        .expect("send");
    closed_too_big(&mut ws).await;

    // Two fragments, each under the limit, over it together.
    let mut ws = n.ws(RUN, None).await.expect("connect");
    let part = " ".repeat(600).into_bytes();
    let first = Frame::message(part.clone(), OpCode::Data(OpData::Text), false);
    let rest = Frame::message(part, OpCode::Data(OpData::Continue), true);
    ws.send(Message::Frame(first)).await.expect("send");
    ws.send(Message::Frame(rest)).await.expect("send");
    closed_too_big(&mut ws).await;

    // A frame header announcing 1 GiB, and no payload: closed from the header alone,
    // so the node never waits for (or buffers) what is announced.
    let mut ws = n.ws(RUN, None).await.expect("connect");
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    ws.get_mut().write_all(&header).await.expect("raw header");
    closed_too_big(&mut ws).await;

    // The node still streams to a well-behaved client.
    let mut ws = n.ws(RUN, None).await.expect("connect");
    subscribe(&mut ws, RUN, &["loss"]).await;
    n.write(None, vec![point(RUN, "loss", 1, 1.0)]).await;
    assert_eq!(points_until(&mut ws, 1).await.len(), 1);
    ws.close(None).await.expect("close");
    n.stop().await;
}

/// Sends a subscribe naming `names`; returns the answer.
async fn subscribe_answer(ws: &mut Ws, names: &[String]) -> Value {
    let msg = json!({ "type": "subscribe", "payload": { "run_id": RUN, "metric_names": names } });
    ws.send(Message::text(msg.to_string()))
        .await
        .expect("send subscribe");
    next_json(ws).await
}

/// A refused subscribe leaves the stream open with its previous filter: the client can
/// fix its request without reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_over_max_subscribe_metrics_is_refused_and_not_applied() {
    let mut n = Node::single(&[]).await;
    let mut ws = n.ws(RUN, None).await.expect("connect");
    subscribe(&mut ws, RUN, &["loss"]).await;
    // The default limit is 1000 names.
    let names: Vec<String> = (0..1001).map(|i| format!("m{i}")).collect();
    let answer = subscribe_answer(&mut ws, &names).await;
    assert_eq!(answer["type"], json!("error"), "{answer}");
    let msg = answer["payload"]["message"].as_str().expect("a message");
    assert!(msg.contains("1001") && msg.contains("1000"), "{msg}");
    // A name outside the metric-name rule is refused the same way.
    for bad in ["x".repeat(257), String::new(), "a\0b".into()] {
        let answer = subscribe_answer(&mut ws, &[bad]).await;
        assert_eq!(answer["type"], json!("error"), "{answer}");
    }
    // Not applied: the stream still carries `loss` only.
    n.write(
        None,
        vec![point(RUN, "m0", 1, 1.0), point(RUN, "loss", 2, 2.0)],
    )
    .await;
    let got = names_and_steps(&points_until(&mut ws, 2).await);
    assert_eq!(got, vec![("loss".to_string(), 2)]);
    // 1000 names are accepted and applied.
    let answer = subscribe_answer(&mut ws, &names[..1000]).await;
    assert_eq!(answer["type"], json!("subscribed"), "{answer}");
    assert_eq!(
        answer["payload"]["metric_names"].as_array().map(Vec::len),
        Some(1000)
    );
    n.write(
        None,
        vec![point(RUN, "loss", 3, 1.0), point(RUN, "m999", 4, 2.0)],
    )
    .await;
    let got = names_and_steps(&points_until(&mut ws, 4).await);
    assert_eq!(got, vec![("m999".to_string(), 4)]);
    ws.close(None).await.expect("close");
    n.stop().await;
}

/// The one tenant rule on `?tenant=`: an empty, NUL-bearing or 5,000-byte tenant
/// refuses the upgrade with a JSON 400; a valid one (trimmed) streams that tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_tenant_query_refuses_the_stream_with_a_json_400() {
    let mut n = Node::single(&[]).await;
    let long = "t".repeat(5000);
    let mut plain_gets = Vec::new();
    for bad in ["", "%20", "a%00b", long.as_str()] {
        let path = format!("/ws/metrics/{RUN}?tenant={bad}");
        match ws::open(&n.base, &path, &[]).await {
            Err(WsError::Http(resp)) => assert_eq!(resp.status(), StatusCode::BAD_REQUEST),
            Err(e) => panic!("?tenant={bad}: expected HTTP 400, got {e}"),
            Ok(_) => panic!("?tenant={bad:.20}: stream accepted"),
        }
        // The same check answers a plain GET, in the area's envelope.
        plain_gets.push(row(Method::GET, path, NO_HEADERS, NO_BODY, 400, "?tenant="));
    }
    bad_input::run_shaped(&n, &plain_gets, |case, r| {
        shape::plain(r, case.status(r), &case.needles())
    })
    .await;
    let path = format!("/ws/metrics/{RUN}?tenant=%20team-b%20");
    let mut ws = ws::open(&n.base, &path, &[]).await.expect("connect");
    subscribe(&mut ws, RUN, &[]).await;
    n.write(Some("team-b"), vec![point(RUN, "loss", 1, 1.0)])
        .await;
    assert_eq!(points_until(&mut ws, 1).await.len(), 1);
    ws.close(None).await.expect("close");
    n.stop().await;
}
