//! The peer port against a local attacker: the forged requests that once rewrote a
//! `dev` node's data and took over its cluster (a metadata write and a points retention
//! through `/forward`, a fake voter through `AddMember`, a vote for term 50 and an
//! append that creates an object) are all refused by a `dev` node, which has no
//! configured secret, and nothing changes: no object, no lost point, no new member, no
//! new term. The same forgeries sent with the right secret to a node that has one do
//! take effect, which shows that they are real attacks and not malformed requests.

mod common;

use std::collections::BTreeMap;

use common::{answer, until, Node, Process};
use metacenter_raft::network::SECRET_HEADER;
use metacenter_raft::node::PeerOp;
use metacenter_raft::types::{Request, TypeConfig};
use metacenter_raft::NodeAddr;
use metacenter_storage::{codec, Command as Cmd};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "forgery-test-secret";
const RUN: &str = "6f1c1a6e-0b7e-4c59-9d6a-2f4f1a0c9e11";

/// Sends forged peer requests to one node, with `secret` or none.
struct Forger {
    peer: String,
    secret: Option<&'static str>,
}

impl Forger {
    async fn post(&self, path: &str, body: Vec<u8>) -> StatusCode {
        let mut req = common::client()
            .post(format!("http://{}{path}", self.peer))
            .body(body);
        if let Some(s) = self.secret {
            req = req.header(SECRET_HEADER, s);
        }
        req.timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .map_or(StatusCode::REQUEST_TIMEOUT, |r| r.status())
    }

    async fn forward(&self, op: &PeerOp) -> StatusCode {
        self.post("/forward", codec::encode(op).expect("encode"))
            .await
    }

    async fn write(&self, command: Cmd) -> StatusCode {
        self.forward(&PeerOp::Write(vec![command])).await
    }

    /// A vote for term 50 from node 99, as up to date as the node's own log.
    async fn vote(&self, last: LogId<u64>) -> StatusCode {
        let req = VoteRequest::new(Vote::new(50, 99), Some(last));
        self.post("/raft/vote", codec::encode(&req).expect("encode"))
            .await
    }

    /// An append from node 99 in term 50 that creates object `hash` after `last`.
    async fn append(&self, last: LogId<u64>, hash: &str) -> StatusCode {
        let id = LogId::new(CommittedLeaderId::new(50, 99), last.index + 1);
        let entry = Entry::<TypeConfig> {
            log_id: id,
            payload: EntryPayload::Normal(Request {
                commands: vec![merge(hash)],
            }),
        };
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(50, 99),
            prev_log_id: Some(last),
            entries: vec![entry],
            leader_commit: Some(id),
        };
        self.post("/raft/append", codec::encode(&req).expect("encode"))
            .await
    }
}

fn merge(hash: &str) -> Cmd {
    Cmd::MetaMerge {
        hash: hash.into(),
        fields: BTreeMap::from([("owner".into(), "attacker".into())]),
        expect_version: None,
    }
}

fn retain_nothing() -> Cmd {
    Cmd::PointsRetain {
        tenant: "team-b".into(),
        cutoff_ns: i64::MAX,
    }
}

/// A node's API, as a base URL.
struct Api(String);

impl Api {
    async fn get(&self, path: &str, tenant: Option<&str>) -> (StatusCode, Value) {
        let mut req = common::client().request(Method::GET, format!("{}{path}", self.0));
        if let Some(t) = tenant {
            req = req.header("X-Tenant-ID", t);
        }
        answer(req).await
    }

    /// The node's term and its last log id (a dev node is its only leader).
    async fn last_log(&self) -> (u64, LogId<u64>) {
        let (_, s) = self.get("/status", None).await;
        let term = s["raft"]["term"].as_u64().expect("term");
        let index = s["raft"]["lastLogIndex"].as_u64().expect("last log index");
        (term, LogId::new(CommittedLeaderId::new(term, 1), index))
    }

    async fn team_b_points(&self) -> u64 {
        let path = format!("/api/v1/runs/{RUN}/metrics");
        let (st, v) = self.get(&path, Some("team-b")).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["count"].as_u64().expect("count")
    }

    async fn has_object(&self, hash: &str) -> bool {
        self.get(&format!("/meta/{hash}"), None).await.0 == StatusCode::OK
    }

    /// Writes one point of team-b's run.
    async fn seed(&self) {
        let body =
            json!({"metrics": [{"run_id": RUN, "metric_name": "loss", "step": 1, "value": 0.5}]});
        let req = common::client()
            .post(format!("{}/api/v1/metrics/batch", self.0))
            .header("X-Tenant-ID", "team-b")
            .json(&body);
        let (st, v) = answer(req).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dev_node_refuses_every_forged_peer_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = Process::dev(dir.path()).await;
    let api = Api(dev.base.clone());
    api.seed().await;
    let (term, last) = api.last_log().await;
    let (_, members) = api.get("/cluster/members", None).await;
    for secret in [None, Some(""), Some("guess")] {
        let f = Forger {
            peer: dev.peer.clone(),
            secret,
        };
        let refused = StatusCode::UNAUTHORIZED;
        assert_eq!(f.write(merge("forged")).await, refused, "{secret:?}");
        assert_eq!(f.write(retain_nothing()).await, refused, "{secret:?}");
        let fake = NodeAddr {
            peer: "127.0.0.1:1".into(),
            api: "127.0.0.1:2".into(),
        };
        let add = PeerOp::AddMember { id: 99, addr: fake };
        assert_eq!(f.forward(&add).await, refused, "{secret:?}");
        assert_eq!(f.vote(last).await, refused, "{secret:?}");
        assert_eq!(f.append(last, "appended").await, refused, "{secret:?}");
    }
    assert!(!api.has_object("forged").await);
    assert!(!api.has_object("appended").await);
    assert_eq!(api.team_b_points().await, 1, "team-b lost points");
    assert_eq!(api.get("/cluster/members", None).await.1, members);
    assert_eq!(api.last_log().await.0, term, "the term moved");
}

/// The control: with the secret, the same forgeries take effect.
#[tokio::test(flavor = "multi_thread")]
async fn the_forgeries_work_with_the_secret() {
    let n = Node::single(&[("cluster.secret", SECRET)]).await;
    let api = Api(n.base.clone());
    api.seed().await;
    let f = Forger {
        peer: n.peer_addr().to_string(),
        secret: Some(SECRET),
    };
    assert_eq!(f.write(merge("forged")).await, StatusCode::OK);
    assert!(api.has_object("forged").await);
    assert_eq!(f.write(retain_nothing()).await, StatusCode::OK);
    assert_eq!(api.team_b_points().await, 0);
    let (_, last) = api.last_log().await;
    assert_eq!(f.vote(last).await, StatusCode::OK);
    assert_eq!(f.append(last, "appended").await, StatusCode::OK);
    until("the appended object", || async {
        api.has_object("appended").await.then_some(())
    })
    .await;
    assert!(api.last_log().await.0 >= 50, "the vote moved the term");
}
