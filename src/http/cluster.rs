//! Cluster and node endpoints (API.md section 1): health, readiness, status, leader,
//! role, membership and its administration.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metacenter_raft::types::RaftMetrics;
use metacenter_raft::{NodeAddr, NodeId};
use openraft::ServerState;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::body::{self, Body};
use super::common::json_error::JsonError;
use super::openapi::metadata as doc;
use super::openapi::JsonErrorBody as Err;
use crate::clock::now_rfc3339_ms;
use crate::state::AppState;

type St = State<Arc<AppState>>;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(status))
        .routes(routes!(leader))
        .routes(routes!(role))
        .routes(routes!(members))
        .routes(routes!(init))
        .routes(routes!(add))
        .routes(routes!(remove))
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

/// Entries a node may lag behind its known commit index and still count as healthy.
const HEALTHY_LAG: u64 = 10_000;

fn leader_json(s: &AppState) -> Option<Value> {
    let (id, addr) = s.node.leader()?;
    let host = addr
        .api
        .rsplit_once(':')
        .map_or(addr.api.as_str(), |(h, _)| h)
        .to_string();
    let mut leader = json!({
        "id": id.to_string(),
        "host": host,
        "api": addr.api,
        "http": format!("http://{}", addr.api),
        "peer": addr.peer,
        "timestamp": now_rfc3339_ms(),
    });
    // Only the leader knows its process id; a follower leaves the field out.
    if id == s.node.id() {
        leader["pid"] = json!(std::process::id());
    }
    Some(leader)
}

/// Health: ok, or degraded without a leader, when far behind, or out of touch
#[utoipa::path(get, path = "/health", tag = "cluster",
    responses((status = 200, description = "Always 200; see `status`", body = doc::Health)))]
async fn health(State(s): St) -> Json<Value> {
    let m = s.node.metrics();
    let leader = leader_json(&s);
    let lag = s
        .node
        .committed_index()
        .saturating_sub(s.node.applied_index());
    let ok = leader.is_some() && lag <= HEALTHY_LAG && s.node.in_touch();
    let removed = s.node.removed();
    let status = match (&removed, ok) {
        (Some(_), _) => "removed",
        (None, true) => "ok",
        (None, false) => "degraded",
    };
    let mut body = json!({
        "status": status,
        "role": role_name(&m),
        "timestamp": now_rfc3339_ms(),
        "leader": leader,
    });
    if let Some(why) = removed {
        body["reason"] = json!(why);
    }
    Json(body)
}

/// Readiness for load balancers
#[utoipa::path(get, path = "/ready", tag = "cluster", responses(
    (status = 200, description = "A leader is known, the node is in touch with a quorum, and it applied what it knows committed", body = doc::Ready),
    (status = 503, description = "Not ready", body = doc::Ready)))]
async fn ready(State(s): St) -> Response {
    let (known, in_touch) = (s.node.leader().is_some(), s.node.in_touch());
    let (applied, committed) = (s.node.applied_index(), s.node.committed_index());
    let removed = s.node.removed();
    let ready = known && in_touch && applied >= committed && removed.is_none();
    let mut body = json!({ "ready": ready, "leaderKnown": known, "inTouch": in_touch,
        "appliedIndex": applied, "commitIndex": committed });
    if let Some(why) = removed {
        body["removed"] = json!(why);
    }
    if !s.node.has_membership() {
        body["reason"] = json!(metacenter_raft::node::NOT_INITIALISED);
    }
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

/// Node and raft status, membership, replication lag
#[utoipa::path(get, path = "/status", tag = "cluster",
    responses((status = 200, description = "Status", body = doc::NodeStatus)))]
async fn status(State(s): St) -> Json<Value> {
    // Sizing the database walks its files: off the executor.
    let (node, index_dir) = (s.node.clone(), s.cfg.index_dir());
    let disk = tokio::task::spawn_blocking(move || {
        let points = node.store().points_stored().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the stored points for /status");
            Default::default()
        });
        let areas = (node.disk_bytes(), metacenter_raft::dir_bytes(&index_dir));
        (node.store().counts(), node.storage_bytes(), points, areas)
    });
    let (counts, storage_bytes, points, (areas, index_bytes)) = disk.await.unwrap_or_else(|_| {
        let none = Default::default();
        (Ok(none), 0, Default::default(), Default::default())
    });
    let snaps = s.node.snapshot_stats();
    let counts = counts.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading the counts for /status");
        Default::default()
    });
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
        "removed": s.node.removed(),
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
        "counts": {
            "metadata": counts.metadata,
            "services": counts.services,
            "engines": counts.engines,
            "metricMetadata": counts.metric_metadata,
        },
        "storageBytes": storage_bytes,
        "disk": {
            "db": areas.db,
            "raftLog": areas.raft_log,
            "snapshots": areas.snapshots,
            "searchIndex": index_bytes,
        },
        "points": {
            "series": points.series,
            "stored": points.points,
            "chunks": points.chunks,
            "chunkBytes": points.chunk_bytes,
        },
        "log": { "appendedBytes": s.node.log_appended_bytes() },
        "snapshots": {
            "built": snaps.count,
            "lastBytes": snaps.last_bytes,
            "lastBuildMs": snaps.last_build.as_millis() as u64,
            "totalBytes": snaps.total_bytes,
        },
    }))
}

/// The current leader
#[utoipa::path(get, path = "/leader", tag = "cluster", responses(
    (status = 200, description = "The leader", body = doc::Leader),
    (status = 503, description = "No leader available", body = Err)))]
async fn leader(State(s): St) -> Response {
    match leader_json(&s) {
        Some(l) => Json(l).into_response(),
        None => {
            JsonError::new(StatusCode::SERVICE_UNAVAILABLE, "no leader available").into_response()
        }
    }
}

/// This node's raft role
#[utoipa::path(get, path = "/role", tag = "cluster",
    responses((status = 200, description = "Role", body = doc::Role)))]
async fn role(State(s): St) -> Json<Value> {
    Json(json!({ "role": role_name(&s.node.metrics()) }))
}

/// Voters and learners with their addresses
#[utoipa::path(get, path = "/cluster/members", tag = "cluster",
    responses((status = 200, description = "Members", body = doc::Members)))]
async fn members(State(s): St) -> Json<Value> {
    Json(members_json(&s.node.metrics()))
}

/// A node to add.
#[derive(Deserialize, ToSchema)]
struct Member {
    /// > 0
    id: NodeId,
    peer: String,
    api: String,
}

#[derive(Deserialize, Default, ToSchema)]
struct InitBody {
    #[serde(default)]
    members: Vec<Member>,
}

/// The body's bytes; a body over the limit is a 413 in meta-core's envelope.
fn bytes(s: &AppState, b: Body) -> Result<axum::body::Bytes, JsonError> {
    Ok(body::read(b, s.cfg.max_body_bytes)?)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, JsonError> {
    serde_json::from_slice(body)
        .map_err(|e| JsonError::bad_request(format!("invalid JSON body: {e}")))
}

/// Initialize a new cluster (default: this node alone); admin
#[utoipa::path(post, path = "/cluster/init", tag = "cluster",
    request_body(content = Option<InitBody>, description = "Initial voters; empty body: this node alone"),
    responses(
        (status = 200, description = "Initialized", body = doc::Success),
        (status = 400, description = "Bad body, id 0, or already initialized", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "The node is stopping", body = Err)))]
async fn init(State(s): St, body: Body) -> Result<Json<Value>, JsonError> {
    let body = bytes(&s, body)?;
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
        return Err(JsonError::bad_request("node ids must be > 0"));
    }
    s.node.initialize(members).await?;
    Ok(Json(json!({ "success": true })))
}

/// Add a node: a learner until caught up, then a voter; admin
#[utoipa::path(post, path = "/cluster/add", tag = "cluster", request_body = Member,
    responses(
        (status = 200, description = "Added", body = doc::MemberChanged),
        (status = 400, description = "Bad body or refused change", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "No leader available or node stopping", body = Err)))]
async fn add(State(s): St, body: Body) -> Result<Json<Value>, JsonError> {
    let body = bytes(&s, body)?;
    let m: Member = parse(&body)?;
    if m.id == 0 || m.peer.is_empty() || m.api.is_empty() {
        return Err(JsonError::bad_request(
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

#[derive(Deserialize, ToSchema)]
struct RemoveBody {
    id: NodeId,
}

/// Remove a node (voter or learner); admin
#[utoipa::path(post, path = "/cluster/remove", tag = "cluster", request_body = RemoveBody,
    responses(
        (status = 200, description = "Removed", body = doc::MemberChanged),
        (status = 400, description = "Bad body or refused change", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "No leader available or node stopping", body = Err)))]
async fn remove(State(s): St, body: Body) -> Result<Json<Value>, JsonError> {
    let body = bytes(&s, body)?;
    let r: RemoveBody = parse(&body)?;
    s.node.remove_member(r.id).await?;
    Ok(Json(json!({ "success": true, "id": r.id })))
}
