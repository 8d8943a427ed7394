//! The `peer_routes` harness: untrusted requests to a live one-node cluster's peer
//! router (the production one), with and without the cluster secret. Without it every
//! request must be refused with 401 and change nothing (term, vote, log, applied
//! index). With it, a body that is not a valid request of its route must be refused
//! (400 or 413), never crash the node. Valid requests with the secret are not sent:
//! a peer that knows the secret is a member, and raft does not defend against a
//! member that lies (openraft asserts on, for example, an append in its own name).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use metacenter_raft::network::SECRET_HEADER;
use metacenter_raft::{NodeAddr, NodeConfig, RaftNode};
use tower::ServiceExt;

use super::{pick, scratch_dir};

const SECRET: &str = "fuzz-peer-secret";
const PATHS: [&str; 5] = [
    "/raft/append",
    "/raft/vote",
    "/raft/snapshot",
    "/forward",
    "/raft/nothing",
];

/// Two one-node clusters: `open` gets only the requests without the secret (so its
/// state never has a reason to move), `trusted` those with it.
struct Live {
    rt: tokio::runtime::Runtime,
    open: (Arc<RaftNode>, Router),
    trusted: Router,
}

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let open = rt.block_on(start("peer-open"));
        let trusted = rt.block_on(start("peer-trusted"));
        let router = |n: &Arc<RaftNode>| metacenter_raft::peer::router(n.clone());
        Live {
            open: (open.clone(), router(&open)),
            trusted: router(&trusted),
            rt,
        }
    })
}

/// A node initialised as its own cluster, once it leads and has applied its log.
async fn start(dir: &str) -> Arc<RaftNode> {
    let addr = NodeAddr {
        peer: "127.0.0.1:1".into(),
        api: "127.0.0.1:2".into(),
    };
    let cfg = NodeConfig::new(1, scratch_dir().join(dir), addr.clone(), SECRET.into());
    let node = RaftNode::start(cfg).await.expect("start the node");
    node.initialize(BTreeMap::from([(1, addr)]))
        .await
        .expect("init");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = node.metrics();
        let settled = m.state == openraft::ServerState::Leader
            && m.last_log_index == Some(node.applied_index());
        if settled {
            return node;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not settle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What an unauthenticated request must not move.
fn state(node: &RaftNode) -> (u64, Option<u64>, Option<u64>, u64) {
    let m = node.metrics();
    let last = m.last_log_index;
    (
        m.current_term,
        m.vote.leader_id().voted_for(),
        last,
        node.applied_index(),
    )
}

/// Selector `0`-`4`: append, vote, snapshot, forward, an unknown path, without the
/// secret; `5`-`9`: the same with it. The rest is the body. Accepted: a valid request
/// with the secret (checked, not sent).
pub fn peer_routes(data: &[u8]) -> bool {
    let (variant, body) = pick(data, 10);
    let (path, with_secret) = (PATHS[variant as usize % 5], variant >= 5);
    if with_secret && decodes(variant % 5, body) {
        return true;
    }
    let l = live();
    let mut req = Request::post(path);
    let router = if with_secret {
        req = req.header(SECRET_HEADER, SECRET);
        l.trusted.clone()
    } else {
        l.open.1.clone()
    };
    let req = req.body(Body::from(body.to_vec())).expect("request");
    let before = state(&l.open.0);
    // A forwarded AddMember waits for a learner that never comes: bounded here.
    let call = async { tokio::time::timeout(Duration::from_secs(2), router.oneshot(req)).await };
    let answer = l.rt.block_on(call);
    let Ok(Ok(resp)) = answer else {
        assert!(
            with_secret,
            "an unauthenticated request was not answered at once"
        );
        return false;
    };
    let status = resp.status();
    if !with_secret {
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} without the secret"
        );
        assert_eq!(
            state(&l.open.0),
            before,
            "{path} without the secret changed state"
        );
        return false;
    }
    assert!(!status.is_server_error(), "{path}: {status}");
    assert!(
        !status.is_success(),
        "{path}: a body that does not decode passed"
    );
    false
}

/// Whether `body` is a valid request of route `route` (of [`PATHS`]).
fn decodes(route: u8, body: &[u8]) -> bool {
    use metacenter_raft::node::PeerOp;
    use metacenter_raft::types::TypeConfig;
    use metacenter_storage::codec::decode;
    use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
    match route {
        0 => decode::<AppendEntriesRequest<TypeConfig>>(body).is_ok(),
        1 => decode::<VoteRequest<u64>>(body).is_ok(),
        2 => decode::<InstallSnapshotRequest<TypeConfig>>(body).is_ok(),
        3 => decode::<PeerOp>(body).is_ok(),
        _ => false,
    }
}
