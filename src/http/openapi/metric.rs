//! Schemas of the metric areas' bodies: points (Metric Service), metadata search and
//! sync (MIRADOR-CORE) and the Prometheus-compatible discovery. Each mirrors what its
//! handler reads or writes, field for field; schemathesis checks answers against them.

#![allow(dead_code)] // fields are read by the ToSchema derive only

use std::collections::BTreeMap;

use utoipa::{IntoParams, ToSchema};

/// `X-Tenant-ID`: the tenant of the request.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct TenantHeader {
    /// The tenant (default `default`): 1 to 128 bytes, surrounding spaces ignored.
    #[param(
        rename = "X-Tenant-ID",
        min_length = 1,
        max_length = 128,
        pattern = r"^[!-~]([ -~]{0,126}[!-~])?$"
    )]
    tenant: Option<String>,
}

/// One point to write.
#[derive(ToSchema)]
pub struct PointIn {
    #[schema(format = Uuid)]
    run_id: String,
    #[schema(min_length = 1, max_length = 256)]
    metric_name: String,
    step: Option<i64>,
    /// A finite number.
    value: f64,
    /// RFC3339; default: the receiving node's time.
    #[schema(format = DateTime)]
    time: Option<String>,
    metadata: Option<BTreeMap<String, super::AnyJson>>,
}

#[derive(ToSchema)]
pub struct PointsBatch {
    /// 1 to `points.max_batch` (default 1000) items; a bad item fails the batch.
    #[schema(min_items = 1, max_items = 1000)]
    metrics: Vec<PointIn>,
}

/// One system metric to write.
#[derive(ToSchema)]
pub struct SystemPointIn {
    #[schema(format = Uuid)]
    run_id: String,
    #[schema(min_length = 1, max_length = 256)]
    metric_type: String,
    value: f64,
    #[schema(format = DateTime)]
    time: Option<String>,
    metadata: Option<BTreeMap<String, super::AnyJson>>,
}

#[derive(ToSchema)]
pub struct SystemPointsBatch {
    #[schema(min_items = 1, max_items = 1000)]
    metrics: Vec<SystemPointIn>,
}

#[derive(ToSchema)]
pub struct Written {
    #[schema(example = "Metrics written successfully")]
    message: String,
    count: u64,
}

/// A stored point.
#[derive(ToSchema)]
pub struct Point {
    time: String,
    run_id: String,
    metric_name: String,
    step: Option<i64>,
    value: f64,
    metadata: BTreeMap<String, super::AnyJson>,
}

/// Points, newest first.
#[derive(ToSchema)]
pub struct History {
    run_id: String,
    metrics: Vec<Point>,
    count: u64,
    /// On `/metrics/{metric_name}` or with `?metric_name=`.
    metric_name: Option<String>,
    /// The `cursor` of the next page, when there is one.
    next: Option<String>,
}

#[derive(ToSchema)]
pub struct SeriesStats {
    metric_name: String,
    count: u64,
    min_value: f64,
    max_value: f64,
    avg_value: f64,
    /// null for a single point.
    std_dev: Option<f64>,
    first_time: String,
    last_time: String,
}

#[derive(ToSchema)]
pub struct SystemPoint {
    time: String,
    run_id: String,
    metric_type: String,
    value: f64,
    metadata: BTreeMap<String, super::AnyJson>,
}

#[derive(ToSchema)]
pub struct SystemHistory {
    run_id: String,
    metrics: Vec<SystemPoint>,
    count: u64,
}

/// Query of history reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// RFC3339, inclusive.
    #[param(format = DateTime)]
    start_time: Option<String>,
    /// RFC3339, inclusive.
    #[param(format = DateTime)]
    end_time: Option<String>,
    min_step: Option<i64>,
    max_step: Option<i64>,
    /// Default 1000, clamped to 1..=10000.
    limit: Option<u64>,
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// At most this many points that keep the shape (per-bucket min and max), taken
    /// from the page.
    downsample: Option<u64>,
    /// One metric's whole range (`start_time`..`end_time`, default the series' first
    /// and last time; steps filtered) cut into this many equal spans of time or steps
    /// (`bucket_by`), each giving its lowest and highest point: at most twice as many
    /// points, newest first, no `next`; `limit`, `cursor` and `downsample` do not
    /// apply. 1 to 5000.
    #[param(minimum = 1, maximum = 5000)]
    buckets: Option<u64>,
    /// What `buckets` cuts: `time` (default) or `step` (points without a step are
    /// left out).
    #[param(pattern = "^(time|step)$")]
    bucket_by: Option<String>,
}

/// Query of the run listing.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Runs per page: default 100, clamped to 1..=1000.
    limit: Option<u64>,
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// Only these runs: UUIDs separated by commas, at most 100 (those without points
    /// are left out).
    run_id: Option<String>,
}

/// One metric of a run.
#[derive(ToSchema)]
pub struct RunMetric {
    metric_name: String,
    /// Points stored.
    count: u64,
    #[schema(format = DateTime)]
    first_time: String,
    #[schema(format = DateTime)]
    last_time: String,
}

/// One run.
#[derive(ToSchema)]
pub struct Run {
    #[schema(format = Uuid)]
    run_id: String,
    /// Points of all its metrics.
    point_count: u64,
    /// The newest point of any of its metrics.
    #[schema(format = DateTime)]
    last_time: String,
    /// By name.
    metrics: Vec<RunMetric>,
}

/// A page of runs, newest first.
#[derive(ToSchema)]
pub struct Runs {
    runs: Vec<Run>,
    count: u64,
    /// The `cursor` of the next page, when there is one.
    next: Option<String>,
}

/// A metric metadata search.
#[derive(ToSchema)]
pub struct SearchRequest {
    /// Free text over names, help and labels (first 1024 characters).
    query: Option<String>,
    /// Default: `X-Tenant-ID`.
    #[schema(min_length = 1, max_length = 128)]
    tenant_id: Option<String>,
    types: Option<Vec<String>>,
    /// Label -> value, all required.
    labels: Option<BTreeMap<String, String>>,
    /// Default 50 (0 too), at most 1000.
    #[schema(maximum = 1000)]
    limit: Option<u64>,
    #[schema(maximum = 100000)]
    offset: Option<u64>,
}

#[derive(ToSchema)]
pub struct MetricDocument {
    id: String,
    name: String,
    #[schema(rename = "type")]
    kind: String,
    help: String,
    unit: String,
    labels: BTreeMap<String, Vec<String>>,
    label_keys: Vec<String>,
    tenant_id: String,
    /// `sync`, `points` or `sync+points`.
    source: String,
    last_seen: String,
    created_at: String,
    updated_at: String,
}

#[derive(ToSchema)]
pub struct SearchResult {
    results: Vec<MetricDocument>,
    total: u64,
    /// Milliseconds.
    took: f64,
}

#[derive(ToSchema)]
pub struct SyncRequest {
    /// Default: `X-Tenant-ID`.
    #[schema(min_length = 1, max_length = 128)]
    tenant_id: Option<String>,
    force_full_sync: Option<bool>,
}

#[derive(ToSchema)]
pub struct SyncReport {
    metrics_processed: u64,
    metrics_added: u64,
    metrics_updated: u64,
    metrics_removed: u64,
    /// Nanoseconds.
    duration: u64,
    duration_ms: u64,
    full_sync: bool,
    errors: Vec<String>,
}

#[derive(ToSchema)]
pub struct SyncDone {
    tenant_id: String,
    result: SyncReport,
}

#[derive(ToSchema)]
pub struct SyncCompleted {
    #[schema(example = "Sync completed successfully")]
    message: String,
    result: SyncReport,
}

#[derive(ToSchema)]
pub struct SyncState {
    tenant_id: String,
    last_sync_time: Option<String>,
    last_full_sync_time: Option<String>,
    total_syncs: u64,
    successful_syncs: u64,
    failed_syncs: u64,
    metrics_in_index: u64,
    last_error: Option<String>,
    last_error_time: Option<String>,
    is_currently_syncing: bool,
}

#[derive(ToSchema)]
pub struct SyncStatus {
    tenant_id: String,
    /// `running`, `completed`, `failed` or `never_run`.
    status: String,
    strategy: String,
    start_time: Option<String>,
    end_time: Option<String>,
    metrics_processed: u64,
    metrics_added: u64,
    metrics_updated: u64,
    metrics_removed: u64,
    errors: Vec<String>,
    /// Nanoseconds.
    duration: u64,
    last_error: Option<String>,
}

/// Sync settings; durations in nanoseconds.
#[derive(ToSchema)]
pub struct SyncConfig {
    enabled: bool,
    /// `full`, `incremental` or `hybrid`.
    strategy: String,
    interval: u64,
    full_sync_interval: u64,
    batch_size: u32,
    max_retries: u32,
    retry_delay: u64,
    time_range_lookback: u64,
}

/// A duration: integer nanoseconds, a string of them, or text such as `"15m"`.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum DurationIn {
    Nanos(u64),
    Text(String),
}

/// Settings to change; fields left out keep their value. Unknown fields are refused.
#[derive(ToSchema)]
pub struct SyncConfigUpdate {
    enabled: Option<bool>,
    strategy: Option<String>,
    interval: Option<DurationIn>,
    full_sync_interval: Option<DurationIn>,
    batch_size: Option<u32>,
    max_retries: Option<u32>,
    retry_delay: Option<DurationIn>,
    time_range_lookback: Option<DurationIn>,
}

#[derive(ToSchema)]
pub struct SyncConfigUpdated {
    message: String,
    config: SyncConfig,
}

#[derive(ToSchema)]
pub struct SearchHealth {
    is_healthy: bool,
    last_sync_time: Option<String>,
    total_metrics: u64,
    tenants: u64,
    index_size_bytes: u64,
    index_current: bool,
    indexed_index: u64,
    sync_errors: Vec<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromStatus {
    Success,
    Error,
}

/// Prometheus' error envelope.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromError {
    status: PromStatus,
    #[schema(example = "bad_data")]
    error_type: String,
    error: String,
}

/// Series as label sets (`__name__`, `run_id`).
#[derive(ToSchema)]
pub struct PromSeries {
    status: PromStatus,
    data: Vec<BTreeMap<String, String>>,
}

/// Label names or label values.
#[derive(ToSchema)]
pub struct PromStrings {
    status: PromStatus,
    data: Vec<String>,
}

#[derive(ToSchema)]
pub struct PromMetricMeta {
    #[schema(rename = "type")]
    kind: String,
    help: String,
    unit: String,
}

/// Metric name -> its metadata.
#[derive(ToSchema)]
pub struct PromMetadata {
    status: PromStatus,
    data: BTreeMap<String, Vec<PromMetricMeta>>,
}

/// Series selection of the discovery endpoints.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Series selectors, e.g. `train_loss{run_id="..."}` (required on `/series`).
    #[param(rename = "match[]")]
    matches: Option<Vec<String>>,
    /// Unix seconds or RFC3339: series with points at or after it.
    start: Option<String>,
    /// Unix seconds or RFC3339: series with points at or before it.
    end: Option<String>,
}

/// The form body of `POST /api/v1/series` and `/api/v1/labels`: the query's
/// parameters, form-encoded (`match[]` may repeat).
#[derive(ToSchema)]
pub struct SeriesForm {
    /// Series selectors, e.g. `train_loss{run_id="..."}`.
    #[schema(rename = "match[]")]
    matches: Option<Vec<String>>,
    /// Unix seconds or RFC3339.
    start: Option<String>,
    /// Unix seconds or RFC3339.
    end: Option<String>,
}
