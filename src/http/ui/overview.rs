//! The console's own reads, which no other route gives in one answer:
//!
//! - `GET /ui/api/cluster`: every member of the membership this node knows, probed
//!   over the client API in parallel (`/health`, `/ready`, `/status`, each within
//!   [`PROBE_TIMEOUT`]), so the browser needs no cross-origin request and a member that
//!   stops answering reads `up: false` on the next poll. The caller's `Authorization`
//!   is passed on, as a relayed sync's is.
//! - `GET /ui/api/load`: every engine of every load cluster, from the in-memory
//!   counters (`GET /v1/load/stats` needs a cluster's name).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures::future::join_all;
use metacenter_raft::{NodeAddr, NodeId};
use serde::Serialize;
use serde_json::Value;

use crate::http::common::json_error::JsonError;
use crate::http::openapi::console as doc;
use crate::http::openapi::JsonErrorBody as Err;
use crate::state::AppState;

/// How long one probe of a member may take: a member silent this long is down.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(700);

#[derive(Serialize)]
pub(super) struct MemberView {
    id: NodeId,
    api: String,
    peer: String,
    voter: bool,
    up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    health: Option<Value>,
    ready: Option<bool>,
    status: Option<Value>,
}

#[derive(Serialize)]
pub(super) struct ClusterView {
    node: NodeId,
    leader: Option<NodeId>,
    members: Vec<MemberView>,
}

/// `GET http://api{path}` with the caller's token: the JSON and whether it was a 2xx.
async fn probe(
    s: &AppState,
    api: &str,
    path: &str,
    auth: Option<&str>,
) -> Result<(bool, Value), String> {
    let mut req = s
        .http
        .get(format!("http://{api}{path}"))
        .timeout(PROBE_TIMEOUT);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = req.send().await.map_err(|e| short(&e))?;
    let ok = resp.status().is_success();
    let body = resp.json().await.map_err(|e| short(&e))?;
    Ok((ok, body))
}

/// A probe failure in a few words.
fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())
    } else if e.is_connect() {
        "connection refused".into()
    } else if e.is_decode() {
        "answer is not JSON".into()
    } else {
        "request failed".into()
    }
}

async fn member(
    s: &AppState,
    (id, addr, voter): (NodeId, NodeAddr, bool),
    auth: Option<&str>,
) -> MemberView {
    let (health, ready, status) = tokio::join!(
        probe(s, &addr.api, "/health", auth),
        probe(s, &addr.api, "/ready", auth),
        probe(s, &addr.api, "/status", auth),
    );
    let mut view = MemberView {
        id,
        api: addr.api,
        peer: addr.peer,
        voter,
        up: false,
        error: None,
        health: None,
        ready: None,
        status: None,
    };
    match health {
        Ok((_, h)) => {
            view.up = true;
            view.health = Some(h);
        }
        Err(e) => view.error = Some(e),
    }
    view.ready = ready.ok().map(|(ok, _)| ok);
    view.status = status.ok().filter(|(ok, _)| *ok).map(|(_, v)| v);
    view
}

/// Every member of the cluster, probed by this node
#[utoipa::path(get, path = "/ui/api/cluster", tag = "console",
    responses((status = 200, description = "The members as this node sees them", body = doc::ClusterView),
        (status = 503, description = "The node is stopping", body = Err)))]
pub(super) async fn cluster(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<ClusterView>, JsonError> {
    if s.shutdown.is_cancelled() {
        let msg = "the node is stopping";
        return Err(JsonError::new(StatusCode::SERVICE_UNAVAILABLE, msg));
    }
    let m = s.node.metrics();
    let mem = m.membership_config.membership();
    let voters: Vec<NodeId> = mem.voter_ids().collect();
    let nodes: Vec<(NodeId, NodeAddr, bool)> = mem
        .nodes()
        .map(|(id, a)| (*id, a.clone(), voters.contains(id)))
        .collect();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let members = join_all(nodes.into_iter().map(|n| member(&s, n, auth))).await;
    Ok(Json(ClusterView {
        node: s.node.id(),
        leader: m.current_leader,
        members,
    }))
}

#[derive(Serialize)]
pub(super) struct EngineView {
    ip: String,
    queued_req_num: u64,
    prompt_length: u64,
    updated_time: u64,
}

#[derive(Serialize)]
pub(super) struct LoadCluster {
    cluster: String,
    engines: Vec<EngineView>,
}

#[derive(Serialize)]
pub(super) struct LoadView {
    clusters: Vec<LoadCluster>,
}

/// Every engine of every load cluster
#[utoipa::path(get, path = "/ui/api/load", tag = "console",
    responses((status = 200, description = "Load clusters by name, engines by IP", body = doc::LoadView),
        (status = 500, description = "The store failed", body = Err)))]
pub(super) async fn load(State(s): State<Arc<AppState>>) -> Result<Json<LoadView>, JsonError> {
    let rows = s.read_store(|st| st.load_engines()).await?;
    let mut clusters: Vec<LoadCluster> = Vec::new();
    for (cluster, ip, e) in rows {
        let engine = EngineView {
            ip,
            queued_req_num: e.queued_req_num,
            prompt_length: e.prompt_length,
            updated_time: e.updated_ns,
        };
        match clusters.last_mut() {
            Some(c) if c.cluster == cluster => c.engines.push(engine),
            _ => clusters.push(LoadCluster {
                cluster,
                engines: vec![engine],
            }),
        }
    }
    Ok(Json(LoadView { clusters }))
}
