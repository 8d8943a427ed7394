//! Schemas of Metadata Center's envelope (the load area and `/log/level`):
//! `{"status","error","data","trace_id"}` with HTTP status = `error.code / 100000`, one
//! schema per kind of `data`.

#![allow(dead_code)] // fields are read by the ToSchema derive only

use utoipa::ToSchema;

#[derive(ToSchema)]
pub enum McStatus {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ERROR")]
    Error,
}

/// The `error` of a failed answer.
#[derive(ToSchema)]
pub struct McError {
    /// HTTP status * 100000 + detail, e.g. 40001400.
    #[schema(example = 40001400)]
    code: u64,
    #[schema(example = "Invalid input parameters")]
    message: String,
    reason: String,
}

/// A failed answer.
#[derive(ToSchema)]
pub struct McErrorEnvelope {
    status: McStatus,
    error: McError,
    data: super::AnyJson,
    trace_id: String,
}

/// A successful write: `data` is null.
#[derive(ToSchema)]
pub struct McAck {
    status: McStatus,
    error: Option<McError>,
    data: super::AnyJson,
    trace_id: String,
}

/// A request queued on an engine (`POST /v1/load/stats`).
#[derive(ToSchema)]
pub struct LoadAdd {
    /// The cluster (model) name.
    #[schema(min_length = 1, max_length = 512)]
    cluster: String,
    /// A duplicate is ignored.
    #[schema(min_length = 1, max_length = 512)]
    request_id: String,
    /// Prompt tokens; default 0.
    #[schema(minimum = 0)]
    prompt_length: Option<i64>,
    /// The engine's IPv4 address.
    #[schema(format = Ipv4)]
    ip: String,
    /// Unix ns; informative.
    #[schema(minimum = 0)]
    timestamp: Option<i64>,
}

/// A request's first token or end (`DELETE /v1/load/prompt`, `DELETE /v1/load/stats`).
#[derive(ToSchema)]
pub struct LoadFinish {
    #[schema(min_length = 1, max_length = 512)]
    request_id: String,
    /// Unix ns; informative.
    #[schema(minimum = 0)]
    timestamp: Option<i64>,
}

/// Counters of one inference engine.
#[derive(ToSchema)]
pub struct EngineLoad {
    ip: String,
    queued_req_num: u64,
    prompt_length: u64,
    /// Unix nanoseconds.
    updated_time: u64,
}

/// `data`: the engines of the cluster, null for an unknown cluster.
#[derive(ToSchema)]
pub struct LoadStatsEnvelope {
    status: McStatus,
    error: Option<McError>,
    data: Option<Vec<EngineLoad>>,
    trace_id: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoadOutcome {
    Applied,
    Duplicate,
    Cancelled,
    Tombstoned,
}

/// The outcome of one batch operation.
#[derive(ToSchema)]
pub struct BatchResult {
    status: McStatus,
    error: Option<McError>,
    result: Option<LoadOutcome>,
}

/// `data`: one result per operation, in order.
#[derive(ToSchema)]
pub struct LoadBatchEnvelope {
    status: McStatus,
    error: Option<McError>,
    data: Vec<BatchResult>,
    trace_id: String,
}

/// `data`: `"log level updated successfully"`.
#[derive(ToSchema)]
pub struct LogLevelEnvelope {
    status: McStatus,
    error: Option<McError>,
    data: String,
    trace_id: String,
}
