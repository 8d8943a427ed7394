//! Schemas of the web console's own reads: every member as this node sees it (probed
//! over the client API) and every engine of every load cluster. Each mirrors what the
//! console area (`super::super::ui`) writes, field for field.

#![allow(dead_code)] // fields are read by the ToSchema derive only

use utoipa::{IntoParams, ToSchema};

/// One member of the cluster, probed by the answering node.
#[derive(ToSchema)]
pub struct MemberView {
    id: u64,
    /// host:port of its client API.
    api: String,
    /// host:port of its peer listener.
    peer: String,
    /// A voter (else a learner).
    voter: bool,
    /// It answered `/health` within the probe timeout.
    up: bool,
    /// Why it is down (refused, timed out, ...).
    error: Option<String>,
    /// Its `/health` answer.
    health: Option<super::AnyJson>,
    /// Its `/ready` verdict (503 is `false`).
    ready: Option<bool>,
    /// Its `/status` answer.
    status: Option<super::AnyJson>,
}

/// The cluster as the answering node sees it.
#[derive(ToSchema)]
pub struct ClusterView {
    /// The answering node's id.
    node: u64,
    /// The leader this node knows of, if any.
    leader: Option<u64>,
    members: Vec<MemberView>,
}

/// One engine of a load cluster.
#[derive(ToSchema)]
pub struct EngineView {
    ip: String,
    queued_req_num: u64,
    prompt_length: u64,
    /// Unix ns of the last update.
    updated_time: u64,
}

/// One load cluster with its engines, by IP.
#[derive(ToSchema)]
pub struct LoadCluster {
    cluster: String,
    engines: Vec<EngineView>,
}

/// Every load cluster, by name.
#[derive(ToSchema)]
pub struct LoadView {
    clusters: Vec<LoadCluster>,
}

/// An embedded asset's name.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssetPath {
    /// e.g. `app.js`
    file: String,
}
