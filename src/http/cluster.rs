//! Cluster and node endpoints (API.md section 1): health, readiness, status, leader,
//! role, membership and its administration.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metacenter_raft::types::RaftMetrics;
use metacenter_raft::{NodeAddr, NodeId};
use openraft::ServerState;
use serde::Deserialize;
use serde_json::{json, Value};

use super::coreerr::CoreError;
use crate::server::AppState;

type St = State<Arc<AppState>>;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .route("/leader", get(leader))
        .route("/role", get(role))
        .route("/cluster/members", get(members))
        .route("/cluster/init", post(init))
        .route("/cluster/add", post(add))
        .route("/cluster/remove", post(remove))
}

fn role_name(m: &RaftMetrics) -> &'static str {
    match m.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Entries a node may lag behind its known commit index and still count as healthy.
const HEALTHY_LAG: u64 = 10_000;

fn leader_json(s: &AppState) -> Option<Value> {
    let (id, addr) = s.node.leader()?;
    let host = addr
        .api
        .rsplit_once(':')
        .map_or(addr.api.as_str(), |(h, _)| h)
        .to_string();
    let pid = (id == s.node.id()).then(std::process::id);
    Some(json!({
        "id": id.to_string(),
        "host": host,
        "api": addr.api,
        "http": format!("http://{}", addr.api),
        "peer": addr.peer,
        "timestamp": now(),
        "pid": pid,
    }))
}

async fn health(State(s): St) -> Json<Value> {
    let m = s.node.metrics();
    let leader = leader_json(&s);
    let lag = s
        .node
        .committed_index()
        .saturating_sub(s.node.applied_index());
    let ok = leader.is_some() && lag <= HEALTHY_LAG;
    Json(json!({
        "status": if ok { "ok" } else { "degraded" },
        "role": role_name(&m),
        "timestamp": now(),
        "leader": leader,
    }))
}

async fn ready(State(s): St) -> Response {
    let known = s.node.leader().is_some();
    let (applied, committed) = (s.node.applied_index(), s.node.committed_index());
    let ready = known && applied >= committed;
    let body = json!({ "ready": ready, "leaderKnown": known, "appliedIndex": applied, "commitIndex": committed });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

fn members_json(m: &RaftMetrics) -> Value {
    let mem = m.membership_config.membership();
    let voters: Vec<NodeId> = mem.voter_ids().collect();
    let node =
        |id: &NodeId, addr: &NodeAddr| json!({ "id": id, "peer": addr.peer, "api": addr.api });
    let (v, l): (Vec<_>, Vec<_>) = mem.nodes().partition(|(id, _)| voters.contains(id));
    json!({
        "voters": v.into_iter().map(|(id, a)| node(id, a)).collect::<Vec<_>>(),
        "learners": l.into_iter().map(|(id, a)| node(id, a)).collect::<Vec<_>>(),
        "leader": m.current_leader,
    })
}

async fn status(State(s): St) -> Json<Value> {
    let m = s.node.metrics();
    let last_log = m.last_log_index.unwrap_or(0);
    let replication: Option<BTreeMap<String, Value>> = m.replication.as_ref().map(|r| {
        r.iter()
            .map(|(id, matched)| {
                let matched = matched.map_or(0, |l| l.index);
                (
                    id.to_string(),
                    json!({ "matchedIndex": matched, "lag": last_log.saturating_sub(matched) }),
                )
            })
            .collect()
    });
    Json(json!({
        "nodeId": s.node.id(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": s.started.elapsed().as_secs(),
        "role": role_name(&m),
        "raft": {
            "term": m.current_term,
            "leader": m.current_leader,
            "commitIndex": s.node.committed_index(),
            "appliedIndex": s.node.applied_index(),
            "lastLogIndex": last_log,
            "snapshotIndex": m.snapshot.map(|l| l.index),
            "purgedIndex": m.purged.map(|l| l.index),
        },
        "membership": members_json(&m),
        "replication": replication,
        "counts": { "metadata": s.node.store().meta_count() },
        "storageBytes": s.node.store().size_on_disk(),
    }))
}

async fn leader(State(s): St) -> Response {
    match leader_json(&s) {
        Some(l) => Json(l).into_response(),
        None => {
            CoreError::new(StatusCode::SERVICE_UNAVAILABLE, "no leader available").into_response()
        }
    }
}

async fn role(State(s): St) -> Json<Value> {
    Json(json!({ "role": role_name(&s.node.metrics()) }))
}

async fn members(State(s): St) -> Json<Value> {
    Json(members_json(&s.node.metrics()))
}

#[derive(Deserialize)]
struct Member {
    id: NodeId,
    peer: String,
    api: String,
}

#[derive(Deserialize, Default)]
struct InitBody {
    #[serde(default)]
    members: Vec<Member>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CoreError> {
    serde_json::from_slice(body)
        .map_err(|e| CoreError::bad_request(format!("invalid JSON body: {e}")))
}

async fn init(State(s): St, body: axum::body::Bytes) -> Result<Json<Value>, CoreError> {
    let req: InitBody = if body.is_empty() {
        InitBody::default()
    } else {
        parse(&body)?
    };
    let mut members: BTreeMap<NodeId, NodeAddr> = req
        .members
        .into_iter()
        .map(|m| {
            (
                m.id,
                NodeAddr {
                    peer: m.peer,
                    api: m.api,
                },
            )
        })
        .collect();
    if members.is_empty() {
        members.insert(s.node.id(), s.node.addr().clone());
    }
    if members.keys().any(|id| *id == 0) {
        return Err(CoreError::bad_request("node ids must be > 0"));
    }
    s.node.initialize(members).await?;
    Ok(Json(json!({ "success": true })))
}

async fn add(State(s): St, body: axum::body::Bytes) -> Result<Json<Value>, CoreError> {
    let m: Member = parse(&body)?;
    if m.id == 0 || m.peer.is_empty() || m.api.is_empty() {
        return Err(CoreError::bad_request(
            "id (> 0), peer and api are required",
        ));
    }
    s.node
        .add_member(
            m.id,
            NodeAddr {
                peer: m.peer,
                api: m.api,
            },
        )
        .await?;
    Ok(Json(json!({ "success": true, "id": m.id })))
}

#[derive(Deserialize)]
struct RemoveBody {
    id: NodeId,
}

async fn remove(State(s): St, body: axum::body::Bytes) -> Result<Json<Value>, CoreError> {
    let r: RemoveBody = parse(&body)?;
    s.node.remove_member(r.id).await?;
    Ok(Json(json!({ "success": true, "id": r.id })))
}
