//! The peer listener and the cluster secret: a peer request without the secret or with
//! a wrong one is refused; a node started with a wrong secret cannot join, while one
//! with the right secret joins (through /cluster/add, which with `auth.tokens` set
//! needs the joiner's admin token) and relays syncs to the leader with the client's
//! token.

mod common;

use common::{answer, until, Node};
use metacenter::{Config, Server};
use metacenter_raft::network::SECRET_HEADER;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "right-secret-0123";
const TOKENS: &str = "adm:admin,wr:write,ta:write:a";

#[tokio::test(flavor = "multi_thread")]
async fn peer_requests_need_the_cluster_secret() {
    let n = Node::single(&[("cluster.secret", SECRET)]).await;
    let client = common::client();
    for path in ["/raft/vote", "/raft/append", "/raft/snapshot", "/forward"] {
        let url = format!("http://{}{path}", n.peer_addr());
        for given in [
            None,
            Some(""),
            Some("wrong-secret-0123"),
            Some("right-secret-012"),
        ] {
            let mut req = client.post(&url).body("x");
            if let Some(g) = given {
                req = req.header(SECRET_HEADER, g);
            }
            let st = req.send().await.expect("answer").status();
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{path} with {given:?}");
        }
        // With the secret the request passes the gate (and fails to decode).
        let r = client.post(&url).header(SECRET_HEADER, SECRET).body("x");
        let st = r.send().await.expect("answer").status();
        assert_eq!(st, StatusCode::BAD_REQUEST, "{path} with the secret");
    }
    // An unknown path is not told apart from a known one without the secret.
    let url = format!("http://{}/raft/nothing", n.peer_addr());
    let st = client.post(&url).send().await.expect("answer").status();
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "unknown path without the secret"
    );
    let r = client.post(&url).header(SECRET_HEADER, SECRET);
    let st = r.send().await.expect("answer").status();
    assert_eq!(st, StatusCode::NOT_FOUND, "unknown path with the secret");
    // Nor is a known path asked with another method.
    let url = format!("http://{}/raft/append", n.peer_addr());
    let st = client.get(&url).send().await.expect("answer").status();
    assert_eq!(st, StatusCode::UNAUTHORIZED, "GET without the secret");
    let r = client.get(&url).header(SECRET_HEADER, SECRET);
    let st = r.send().await.expect("answer").status();
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "GET with the secret");
}

/// Each peer route reads at most its own limit: a vote of 100 KiB is refused unread,
/// with the secret, before it is decoded.
#[tokio::test(flavor = "multi_thread")]
async fn peer_bodies_over_their_route_limit_are_refused() {
    let n = Node::single(&[("cluster.secret", SECRET)]).await;
    let url = format!("http://{}/raft/vote", n.peer_addr());
    let req = common::client().post(&url).header(SECRET_HEADER, SECRET);
    let st = req.body(vec![0u8; 100 << 10]).send().await.expect("answer");
    assert_eq!(st.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let req = common::client().post(&url).header(SECRET_HEADER, SECRET);
    let st = req.body(vec![0u8; 100]).send().await.expect("answer");
    assert_eq!(st.status(), StatusCode::BAD_REQUEST, "a small body is read");
}

/// Node `id` that asks `leader` to add it, with `secret` and the test's tokens.
async fn joiner(id: u64, secret: &str, leader: &Node) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config::default();
    let join = leader.base.trim_start_matches("http://");
    for (k, v) in [
        ("node.id", id.to_string().as_str()),
        ("node.data_dir", dir.path().to_str().expect("UTF-8")),
        ("node.listen", "127.0.0.1:0"),
        ("node.peer_listen", "127.0.0.1:0"),
        ("node.join", join),
        ("cluster.secret", secret),
        ("auth.tokens", TOKENS),
    ] {
        cfg.set(k, v).expect("setting");
    }
    (Server::start(cfg).await.expect("node starts"), dir)
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
    let (bad, _bad_dir) = joiner(3, "wrong-secret-0123", &leader).await;
    let (good, _good_dir) = joiner(2, SECRET, &leader).await;

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
        (good.node().applied_index() >= at).then_some(())
    })
    .await;
    let m = members(&leader).await;
    assert!(!has(&m["voters"], 3), "node 3 became a voter: {m}");
    assert_eq!(bad.node().applied_index(), 0, "node 3 received entries");
    assert!(bad.node().leader().is_none(), "node 3 learned of a leader");

    // A sync sent to the follower is relayed to the leader with the client's token;
    // the leader answers 404 (no source), not 401.
    let base = format!("http://{}", good.api_addr());
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
