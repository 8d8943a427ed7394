//! The peer listener and the cluster secret: a peer request without the secret or with
//! a wrong one is refused; a node started with a wrong secret cannot join, while one
//! with the right secret joins (through /cluster/add, which with `auth.tokens` set
//! needs the joiner's admin token) and relays syncs to the leader with the client's
//! token.
//!
//! The refused peer requests are tables run by `common::bad_input` against the peer
//! port.

mod common;

use common::bad_input::{self, raw, row, NO_BODY};
use common::{answer, until, Node};
use metacenter_raft::network::SECRET_HEADER;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "right-secret-0123";
const TOKENS: &str = "adm:admin,wr:write,ta:write:a";

/// The peer port's answer to a request without the right secret.
const REFUSED: &str = "missing or wrong cluster secret";

#[tokio::test(flavor = "multi_thread")]
async fn peer_requests_need_the_cluster_secret() {
    let n = Node::single(&[("cluster.secret", SECRET)]).await;
    let peer = format!("http://{}", n.peer_addr());
    let mut table = Vec::new();
    for path in ["/raft/vote", "/raft/append", "/raft/snapshot", "/forward"] {
        for given in ["", "wrong-secret-0123", "right-secret-012"] {
            let h = [(SECRET_HEADER, given)];
            table.push(row(Method::POST, path, &h, raw("x"), 401, REFUSED));
        }
        table.push(row(Method::POST, path, &[], raw("x"), 401, REFUSED));
        // With the secret the request passes the gate (and fails to decode).
        let h = [(SECRET_HEADER, SECRET)];
        table.push(row(
            Method::POST,
            path,
            &h,
            raw("x"),
            400,
            "bad peer request",
        ));
    }
    let secret = [(SECRET_HEADER, SECRET)];
    table.extend([
        // An unknown path is not told apart from a known one without the secret.
        row(Method::POST, "/raft/nothing", &[], NO_BODY, 401, REFUSED),
        row(Method::POST, "/raft/nothing", &secret, NO_BODY, 404, ""),
        // Nor is a known path asked with another method.
        row(Method::GET, "/raft/append", &[], NO_BODY, 401, REFUSED),
        row(Method::GET, "/raft/append", &secret, NO_BODY, 405, ""),
    ]);
    bad_input::run(&peer, &table).await;
}

/// Each peer route reads at most its own limit: a vote of 100 KiB is refused unread,
/// with the secret, before it is decoded.
#[tokio::test(flavor = "multi_thread")]
async fn peer_bodies_over_their_route_limit_are_refused() {
    let n = Node::single(&[("cluster.secret", SECRET)]).await;
    let peer = format!("http://{}", n.peer_addr());
    let h = [(SECRET_HEADER, SECRET)];
    let table = [
        row(
            Method::POST,
            "/raft/vote",
            &h,
            raw(vec![0u8; 100 << 10]),
            413,
            "over its 65536-byte limit",
        ),
        // A small body is read.
        row(
            Method::POST,
            "/raft/vote",
            &h,
            raw(vec![0u8; 100]),
            400,
            "bad peer request",
        ),
    ];
    bad_input::run(&peer, &table).await;
}

/// Node `id` that asks `leader` to add it, with `secret` and the test's tokens.
async fn joiner(id: &str, secret: &str, leader: &Node) -> Node {
    let join = leader.base.trim_start_matches("http://");
    let settings = [
        ("node.id", id),
        ("node.bootstrap", "false"),
        ("node.join", join),
        ("cluster.secret", secret),
        ("auth.tokens", TOKENS),
    ];
    Node::launch(&settings, &[]).await
}

async fn members(leader: &Node) -> Value {
    let req = leader
        .request(Method::GET, "/cluster/members")
        .bearer_auth("adm");
    let (st, m) = answer(req).await;
    assert_eq!(st, StatusCode::OK, "{m}");
    m
}

fn has(list: &Value, id: u64) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|n| n["id"] == id))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_a_wrong_secret_cannot_join() {
    let leader = Node::single(&[("cluster.secret", SECRET), ("auth.tokens", TOKENS)]).await;
    let bad = joiner("3", "wrong-secret-0123", &leader).await;
    let good = joiner("2", SECRET, &leader).await;

    // Both join requests get through (node 3 is added as a learner first) ...
    until("node 3 listed as a learner", || async {
        has(&members(&leader).await["learners"], 3).then_some(())
    })
    .await;
    until("node 2 a voter", || async {
        has(&members(&leader).await["voters"], 2).then_some(())
    })
    .await;
    // ... but only node 2 receives the log, and node 3 is never promoted: a voter no
    // quorum could include would stop the cluster from committing.
    let put = leader
        .request(Method::PUT, "/meta/after-join")
        .bearer_auth("wr");
    let resp = put.json(&json!({ "k": "v" })).send().await.expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let at: u64 = resp.headers()["x-applied-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    until("node 2 applied the write", || async {
        (good.server().node().applied_index() >= at).then_some(())
    })
    .await;
    let m = members(&leader).await;
    assert!(!has(&m["voters"], 3), "node 3 became a voter: {m}");
    assert_eq!(
        bad.server().node().applied_index(),
        0,
        "node 3 received entries"
    );
    assert!(
        bad.server().node().leader().is_none(),
        "node 3 learned of a leader"
    );

    // A sync sent to the follower is relayed to the leader with the client's token;
    // the leader answers 404 (no source), not 401.
    let base = good.base.clone();
    let relay = |token: &'static str, body: Value| {
        let url = format!("{base}/api/v1/metrics/sync");
        answer(common::client().post(url).bearer_auth(token).json(&body))
    };
    let (st, b) = relay("wr", json!({ "tenant_id": "t1" })).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{b}");
    let (st, b) = relay("ta", json!({ "tenant_id": "a" })).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{b}");
    let (st, b) = relay("ta", json!({ "tenant_id": "b" })).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
}
