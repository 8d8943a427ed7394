//! `GET /cluster/backup` on an in-process node: one backup at a time, and a client that
//! goes away midway ends its backup and frees the node for the next (a writer left
//! blocked on a client that no longer reads would keep answering 409).

mod common;

use common::{until, Node};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// About 14 MB of state: more than the response's queue and both sockets' buffers.
async fn fill(n: &Node) {
    let value = "v".repeat(48 * 1024);
    futures::stream::iter(0..300)
        .for_each_concurrent(8, |i| {
            let body = value.clone();
            async move {
                let r = n.raw(Method::PUT, &format!("/meta/big-{i}/v"), body).await;
                assert_eq!(
                    r.status,
                    StatusCode::OK,
                    "{}",
                    String::from_utf8_lossy(&r.body)
                );
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_backup_frees_the_node_for_the_next() {
    let n = Node::single(&[]).await;
    fill(&n).await;
    let mut stalled = tokio::net::TcpStream::connect(n.api_addr()).await.unwrap();
    let get = "GET /cluster/backup HTTP/1.1\r\nHost: node\r\n\r\n";
    stalled.write_all(get.as_bytes()).await.unwrap();
    let mut head = [0u8; 512];
    let got = stalled.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..got]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The first backup waits on a client that reads no more: a second is refused.
    let busy = n.fetch("/cluster/backup").await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    // HEAD starts no backup (else it too would be refused while one runs).
    let head = n.send(n.request(Method::HEAD, "/cluster/backup")).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(
        head.header("content-type"),
        Some("application/octet-stream")
    );
    drop(stalled);
    let whole = until("a backup after the abandoned one", || async {
        let r = n.fetch("/cluster/backup").await;
        (r.status == StatusCode::OK).then_some(r.body)
    })
    .await;
    let v = metacenter::backup::format::verify(std::io::Cursor::new(&whole)).expect("verifies");
    assert!(v.bytes > 14_000_000, "{} bytes", v.bytes);
}
