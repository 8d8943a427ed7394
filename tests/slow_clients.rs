//! Slow clients cannot hold connections: a request head that does not arrive within
//! `limits.header_read_timeout_ms` closes the connection, a body still arriving after
//! `limits.body_read_timeout_ms` is answered 408 in the area's envelope, and neither
//! timeout cuts a handler that is legitimately slow (a blocking query).

mod common;

use std::time::{Duration, Instant};

use common::{Node, DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SETTINGS: &[(&str, &str)] = &[
    ("limits.header_read_timeout_ms", "300"),
    ("limits.body_read_timeout_ms", "300"),
];

async fn connect(node: &Node) -> TcpStream {
    let addr = node.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection (or resets it); everything it sent.
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let r = tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the server kept a slow connection open");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let node = Node::single(SETTINGS).await;
    let mut tcp = connect(&node).await;
    let start = Instant::now();
    read_to_close(&mut tcp).await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
}

#[tokio::test]
async fn a_trickled_request_head_is_cut_off() {
    let node = Node::single(SETTINGS).await;
    let mut tcp = connect(&node).await;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let answer = read_to_close(&mut tcp).await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    assert!(!answer.contains("200 OK"), "an incomplete head was served");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_answer() {
    let node = Node::single(SETTINGS).await;
    let mut tcp = connect(&node).await;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_stalled_body_gets_408_in_the_areas_envelope() {
    let node = Node::single(SETTINGS).await;
    let mut tcp = connect(&node).await;
    let head = "PUT /meta/abc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{\"title\":";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"Request Timeout\""), "{answer}");
    assert!(answer.contains("body_read_timeout_ms"), "{answer}");
    // Nothing of it was written.
    let (status, _) = node.get("/meta/abc", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_blocking_query_outlives_both_timeouts() {
    let node = Node::single(SETTINGS).await;
    let (status, _) = node
        .put("/meta/abc", serde_json::json!({"title": "t"}))
        .await;
    assert!(status.is_success(), "{status}");
    let (_, listed) = node.get("/meta/abc", None).await;
    assert_eq!(listed["metadata"]["title"], "t");
    let start = Instant::now();
    // The index is far ahead of anything applied: the query waits out `wait`.
    let (status, body) = node.get("/meta/abc?index=1000000&wait=1s", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(body["metadata"]["title"], "t");
}

/// A connection a client opened and never used (a connection pool's spare) must not
/// hold shutdown for the drain period: the node is stopping, and a leader that lingers
/// delays the election that replaces it.
#[tokio::test]
async fn shutdown_does_not_wait_for_a_silent_connection() {
    // The default head timeout (10 s) is longer than the drain (5 s).
    let mut node = Node::single(&[]).await;
    let mut silent = connect(&node).await;
    let mut idle = connect(&node).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.expect("an answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let bound = metacenter::listen::DRAIN / 2;
    let stopped = tokio::time::timeout(bound, node.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited on idle connections");
    read_to_close(&mut silent).await;
    read_to_close(&mut idle).await;
}
