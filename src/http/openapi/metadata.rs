//! Schemas of the bodies of the metadata side of the API (cluster and node, metadata
//! objects, discovery, files), whose handlers build their JSON in place: each mirrors
//! what the handler writes, field for field, and schemathesis checks answers against
//! them. The consistency parameters, which the other areas take too, are here as well.

#![allow(dead_code)] // fields are read by the ToSchema derive only

use std::collections::BTreeMap;

use utoipa::{IntoParams, ToSchema};

/// The node's raft role.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Ok,
    Degraded,
    /// This node was removed from the cluster and stands down (see `reason`).
    Removed,
}

/// The current leader.
#[derive(ToSchema)]
pub struct Leader {
    /// Node id, as a string.
    id: String,
    host: String,
    api: String,
    http: String,
    peer: String,
    timestamp: String,
    /// Process id, when the answering node is the leader.
    pid: Option<u32>,
}

#[derive(ToSchema)]
pub struct Health {
    /// `degraded` when no leader is known, this node lags far behind, or it has had
    /// no proof within the leader lease that it can commit (see `Ready.inTouch`).
    status: HealthState,
    role: RoleName,
    timestamp: String,
    leader: Option<Leader>,
    /// Why the node stands down, when `status` is `removed`.
    reason: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ready {
    ready: bool,
    leader_known: bool,
    /// Within the leader lease, this node (as leader) heard from a quorum, or (as
    /// follower) heard from its leader.
    in_touch: bool,
    applied_index: u64,
    commit_index: u64,
    /// Why the node stands down, when it was removed from the cluster.
    removed: Option<String>,
    /// What to do, when the node is in no initialised cluster yet.
    reason: Option<String>,
}

#[derive(ToSchema)]
pub struct Role {
    role: RoleName,
}

/// A member of the cluster.
#[derive(ToSchema)]
pub struct MemberAddr {
    id: u64,
    peer: String,
    api: String,
}

#[derive(ToSchema)]
pub struct Members {
    voters: Vec<MemberAddr>,
    learners: Vec<MemberAddr>,
    leader: Option<u64>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RaftStatus {
    term: u64,
    leader: Option<u64>,
    commit_index: u64,
    applied_index: u64,
    last_log_index: u64,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FollowerLag {
    matched_index: u64,
    lag: u64,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Metadata objects.
    metadata: u64,
    /// Registered services.
    services: u64,
    /// Engines with load counters.
    engines: u64,
    /// Metric metadata documents, all tenants.
    metric_metadata: u64,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    node_id: u64,
    version: String,
    uptime_seconds: u64,
    role: RoleName,
    /// Why the node stands down, when it was removed from the cluster.
    removed: Option<String>,
    raft: RaftStatus,
    membership: Members,
    /// Per follower id (on the leader only).
    replication: Option<BTreeMap<String, FollowerLag>>,
    counts: Counts,
    storage_bytes: u64,
    disk: DiskBytes,
    points: PointsStored,
    log: LogBytes,
    snapshots: SnapshotsBuilt,
}

/// Bytes on disk per area of the data directory.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskBytes {
    /// The sled database (`db/`).
    db: u64,
    /// The raft log (`raft-log/`).
    raft_log: u64,
    /// Snapshot files (`snapshots/`).
    snapshots: u64,
    /// The search index (`search.index_dir`).
    search_index: u64,
}

/// What the metric-points keyspaces hold.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointsStored {
    series: u64,
    stored: u64,
    chunks: u64,
    /// Bytes of the chunks' keys and values.
    chunk_bytes: u64,
}

/// The raft log.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogBytes {
    /// Bytes of entries appended since the node started.
    appended_bytes: u64,
}

/// The snapshots this node built since it started.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotsBuilt {
    built: u64,
    last_bytes: u64,
    last_build_ms: u64,
    total_bytes: u64,
}

#[derive(ToSchema)]
pub struct Success {
    success: bool,
}

#[derive(ToSchema)]
pub struct MemberChanged {
    success: bool,
    id: u64,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HashList {
    hash_ids: Vec<String>,
    count: u64,
    /// The `after` of the next page, when there is one.
    next: Option<String>,
}

/// A property value as sent: strings as they are, numbers and booleans stored as text.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Flag(bool),
}

/// Properties to merge into an object.
#[derive(ToSchema)]
pub struct MetaFields(BTreeMap<String, Scalar>);

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaObject {
    hash_id: String,
    metadata: BTreeMap<String, String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaWritten {
    success: bool,
    hash_id: String,
    version: u64,
    /// PATCH only: properties changed.
    updated: Option<u64>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaDeleted {
    success: bool,
    hash_id: String,
    deleted: u64,
}

/// One property value as JSON (a raw text body is also accepted).
#[derive(ToSchema)]
pub struct PropValue {
    value: Scalar,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropWritten {
    success: bool,
    hash_id: String,
    key: String,
    version: u64,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropDeleted {
    success: bool,
    hash_id: String,
    key: String,
    deleted: u64,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberAdded {
    success: bool,
    hash_id: String,
    /// false when the member was already in the set.
    added: bool,
}

/// A service as registered; any further fields are kept and returned.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    /// Must match the path when given.
    name: Option<String>,
    version: Option<String>,
    api: Option<String>,
    /// As registered; `stale` when the last heartbeat is too old.
    status: Option<String>,
    pid: Option<u64>,
    hostname: Option<String>,
    started_at: Option<String>,
    capabilities: Option<Vec<String>>,
    endpoints: Option<super::AnyJson>,
    /// Remove the service once stale for this long.
    deregister_after_ms: Option<u64>,
}

/// A service as read: as registered, plus `name`, `lastHeartbeat` and `status`.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    name: String,
    /// `stale` when `lastHeartbeat` is older than the stale threshold; `healthy` when
    /// the registration set none.
    status: super::AnyJson,
    last_heartbeat: String,
    deregister_after_ms: Option<u64>,
}

#[derive(ToSchema)]
pub struct ServiceList {
    services: Vec<ServiceView>,
    /// Services in this page.
    count: u64,
    /// The last name of this page when more follow: pass it as `after`.
    next: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    success: bool,
    name: String,
    last_heartbeat: String,
}

#[derive(ToSchema)]
pub struct Deregistered {
    success: bool,
    name: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataPath {
    hash_id: String,
    /// `files.root` joined with the object's `filePath`.
    path: String,
    exists: bool,
}

#[derive(ToSchema)]
pub struct CidOf {
    /// CIDv1, raw codec, sha2-256, base32.
    cid: String,
    path: String,
    size: u64,
}

/// The bytes of a file.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBytes(Vec<u8>);

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Confirm the leader's commit index before reading.
    Linearizable,
}

/// `?consistency=linearizable`: a linearizable read.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    #[param(inline)]
    consistency: Option<Consistency>,
}

/// `X-Consistency: linearizable`: a linearizable read.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ConsistencyHeader {
    #[param(rename = "X-Consistency", inline)]
    consistency: Option<Consistency>,
}

/// A blocking query: hold the read until the data changes after raft index `index`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatchQuery {
    /// The `X-Applied-Index` of the previous answer.
    index: Option<u64>,
    /// Seconds, or a duration such as `250ms` or `30s`; default and maximum 5 minutes.
    wait: Option<String>,
}

/// `If-Match: <version>` (`"12"`, `12`, `W/"12"`; `*` for any): 412 on mismatch.
#[derive(IntoParams)]
#[into_params(names("If-Match"), parameter_in = Header)]
pub struct IfMatch(Option<String>);
