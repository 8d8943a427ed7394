//! Metric points (Metric Service, API.md section 5): batch ingest, history newest
//! first with filters, cursor pagination and downsampling, latest, stats, system
//! metrics. Errors are `{"error":"..."}`; bad input is a 400 naming the item and
//! field, and nothing of a bad batch is written. Tenant from `X-Tenant-ID`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metacenter_storage::{
    Command, Cursor, Point, PointIn, PointQuery, Response as R, SystemPointIn,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::metric as doc;
use super::openapi::ApiError as Err;
use crate::config::EdgeLimits;
use crate::server::AppState;

type St = State<Arc<AppState>>;
type Body = Result<Bytes, BytesRejection>;

/// Most points a history read returns.
pub const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 1000;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(write_batch))
        .routes(routes!(write_system))
        .routes(routes!(history))
        .routes(routes!(series_history))
        .routes(routes!(latest))
        .routes(routes!(stats))
        .routes(routes!(system_history))
}

/// An error in the Metric Service's shape.
pub struct PtError(pub StatusCode, pub String);

impl IntoResponse for PtError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> PtError {
    PtError(StatusCode::BAD_REQUEST, msg.into())
}

impl From<metacenter_raft::Error> for PtError {
    fn from(e: metacenter_raft::Error) -> Self {
        match e {
            metacenter_raft::Error::Invalid(m) => bad(m),
            metacenter_raft::Error::Storage(m) => storage(m),
            other => PtError(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

impl From<metacenter_storage::Error> for PtError {
    fn from(e: metacenter_storage::Error) -> Self {
        storage(e)
    }
}

/// The node's storage failed: 503 (see [`super::coreerr::CoreError::storage`]).
pub fn storage(cause: impl std::fmt::Display) -> PtError {
    tracing::error!(error = %cause, "storage failure");
    let msg = format!("storage failure: {cause}");
    PtError(StatusCode::SERVICE_UNAVAILABLE, msg)
}

pub fn internal(cause: impl std::fmt::Display) -> PtError {
    tracing::error!(error = %cause, "internal error");
    PtError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}

/// The tenant of a request: `X-Tenant-ID`, default `default`.
pub fn tenant(headers: &HeaderMap) -> Result<String, PtError> {
    let t = headers
        .get("x-tenant-id")
        .map(|v| v.to_str().unwrap_or(""))
        .unwrap_or("default")
        .trim();
    if t.is_empty() || t.len() > 128 || t.contains('\0') {
        return Err(bad("X-Tenant-ID must be 1 to 128 bytes"));
    }
    Ok(t.to_string())
}

pub fn parse_run(run_id: &str) -> Result<[u8; 16], PtError> {
    uuid::Uuid::parse_str(run_id)
        .map(|u| *u.as_bytes())
        .map_err(|_| bad(format!("invalid run_id `{run_id}`: must be a UUID")))
}

pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn parse_time(field: &str, s: &str) -> Result<i64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("{field}: `{s}` is not RFC3339 ({e})"))?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| format!("{field}: `{s}` is out of range"))
}

fn metadata_json(v: Option<&Value>, max: usize) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => {
            let text = serde_json::to_string(m).map_err(|e| e.to_string())?;
            if text.len() > max {
                return Err(format!("metadata: larger than {max} bytes as JSON"));
            }
            Ok(Some(text))
        }
        Some(_) => Err("metadata: must be an object".into()),
    }
}

fn items(s: &AppState, body: Body) -> Result<Vec<Value>, PtError> {
    let bytes = super::body::read(body, s.cfg.max_body_bytes).map_err(|(st, m)| PtError(st, m))?;
    batch_items(&bytes, s.cfg.points_max_batch)
}

/// The items of a batch body `{"metrics": [...]}`: 1 to `max` of them.
pub fn batch_items(bytes: &[u8], max: usize) -> Result<Vec<Value>, PtError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let Some(Value::Array(items)) = v.get("metrics").cloned() else {
        return Err(bad("body must be {\"metrics\": [...]}"));
    };
    if items.is_empty() || items.len() > max {
        return Err(bad(format!(
            "metrics must hold 1 to {max} items, got {}",
            items.len()
        )));
    }
    Ok(items)
}

pub fn point_in(item: &Value, now: i64, lim: &EdgeLimits) -> Result<PointIn, String> {
    let o = item.as_object().ok_or("must be an object")?;
    let run = o
        .get("run_id")
        .and_then(Value::as_str)
        .ok_or("run_id: required string")?;
    let run_id = *uuid::Uuid::parse_str(run)
        .map_err(|_| format!("run_id: `{run}` is not a UUID"))?
        .as_bytes();
    let metric = o
        .get("metric_name")
        .and_then(Value::as_str)
        .ok_or("metric_name: required string")?;
    if metric.is_empty() || metric.len() > 256 || metric.contains('\0') {
        return Err("metric_name: must be 1 to 256 bytes".into());
    }
    let step = match o.get("step") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or("step: must be an integer or null")?),
    };
    let value = o
        .get("value")
        .and_then(Value::as_f64)
        .ok_or("value: required number")?;
    if !value.is_finite() {
        return Err("value: must be finite".into());
    }
    let time_ns = match o.get("time") {
        None | Some(Value::Null) => now,
        Some(Value::String(t)) => parse_time("time", t)?,
        Some(_) => return Err("time: must be an RFC3339 string".into()),
    };
    let metadata_json = metadata_json(o.get("metadata"), lim.point_metadata)?;
    Ok(PointIn {
        run_id,
        metric: metric.to_string(),
        step,
        value,
        time_ns,
        metadata_json,
    })
}

pub fn system_point_in(item: &Value, now: i64, lim: &EdgeLimits) -> Result<SystemPointIn, String> {
    let o = item.as_object().ok_or("must be an object")?;
    let mut as_point = o.clone();
    let kind = o
        .get("metric_type")
        .and_then(Value::as_str)
        .ok_or("metric_type: required string")?;
    as_point.insert("metric_name".into(), json!(kind));
    let p = point_in(&Value::Object(as_point), now, lim)
        .map_err(|e| e.replace("metric_name", "metric_type"))?;
    Ok(SystemPointIn {
        run_id: p.run_id,
        metric_type: p.metric,
        value: p.value,
        time_ns: p.time_ns,
        metadata_json: p.metadata_json,
    })
}

fn now_ns() -> i64 {
    crate::http::load::now_ns() as i64
}

async fn commit(s: &AppState, cmd: Command) -> Result<Response, PtError> {
    match s.node.write_one(cmd).await? {
        R::PointsWritten { count } => {
            let body = json!({ "message": "Metrics written successfully", "count": count });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        R::Invalid { reason } => Err(bad(reason)),
        other => Err(internal(format!("unexpected response {other:?}"))),
    }
}

/// Parses every item of a batch with `parse` (naming the first bad item and field)
/// and stamps the receiving node's time into items without one.
fn parse_items<T>(
    s: &AppState,
    body: Body,
    parse: fn(&Value, i64, &EdgeLimits) -> Result<T, String>,
) -> Result<Vec<T>, PtError> {
    let now = now_ns();
    items(s, body)?
        .iter()
        .enumerate()
        .map(|(i, it)| parse(it, now, &s.cfg.limits).map_err(|e| bad(format!("metrics[{i}].{e}"))))
        .collect()
}

/// Write metric points (all or none)
#[utoipa::path(post, path = "/api/v1/metrics/batch", tag = "points",
    params(doc::TenantHeader), request_body = doc::PointsBatch,
    responses((status = 201, description = "Written", body = doc::Written),
        (status = 400, description = "Bad body, naming the item and field; nothing is written", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn write_batch(State(s): St, headers: HeaderMap, body: Body) -> Result<Response, PtError> {
    let tenant = tenant(&headers)?;
    let points = parse_items(&s, body, point_in)?;
    commit(&s, Command::PointsWrite { tenant, points }).await
}

/// Write system metrics (all or none)
#[utoipa::path(post, path = "/api/v1/metrics/system/batch", tag = "points",
    params(doc::TenantHeader), request_body = doc::SystemPointsBatch,
    responses((status = 201, description = "Written", body = doc::Written),
        (status = 400, description = "Bad body, naming the item and field; nothing is written", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn write_system(State(s): St, headers: HeaderMap, body: Body) -> Result<Response, PtError> {
    let tenant = tenant(&headers)?;
    let points = parse_items(&s, body, system_point_in)?;
    commit(&s, Command::SystemPointsWrite { tenant, points }).await
}

/// Query parameters of history reads.
pub struct HistoryParams {
    q: PointQuery,
    metric_name: Option<String>,
    downsample: Option<usize>,
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), super::load::percent_decode(v)))
        .collect()
}

fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, PtError> {
    v.parse().map_err(|_| bad(format!("invalid {k}: `{v}`")))
}

pub fn history_params(raw: Option<&str>) -> Result<HistoryParams, PtError> {
    let mut p = HistoryParams {
        q: PointQuery {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        },
        metric_name: None,
        downsample: None,
    };
    for (k, v) in query_pairs(raw) {
        match k.as_str() {
            "start_time" => p.q.start_ns = Some(parse_time("start_time", &v).map_err(bad)?),
            "end_time" => p.q.end_ns = Some(parse_time("end_time", &v).map_err(bad)?),
            "min_step" => p.q.min_step = Some(num(&k, &v)?),
            "max_step" => p.q.max_step = Some(num(&k, &v)?),
            "limit" => p.q.limit = num::<usize>(&k, &v)?.clamp(1, MAX_LIMIT),
            "metric_name" if !v.is_empty() => p.metric_name = Some(v),
            "cursor" => p.q.after = Some(decode_cursor(&v).ok_or_else(|| bad("invalid cursor"))?),
            "downsample" => p.downsample = Some(num::<usize>(&k, &v)?.max(2)),
            _ => {}
        }
    }
    Ok(p)
}

/// Cursor text: hex of `time(8) tie(12) metric`.
pub fn encode_cursor(c: &Cursor) -> String {
    let mut b = c.time_ns.to_be_bytes().to_vec();
    b.extend_from_slice(&c.tie);
    b.extend_from_slice(c.metric.as_bytes());
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn decode_cursor(s: &str) -> Option<Cursor> {
    if !s.len().is_multiple_of(2) || s.len() < 40 {
        return None;
    }
    let b: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    Some(Cursor {
        time_ns: i64::from_be_bytes(b[..8].try_into().ok()?),
        tie: b[8..20].try_into().ok()?,
        metric: String::from_utf8(b[20..].to_vec()).ok()?,
    })
}

/// One point as the Metric Service returns it (its fields in alphabetical order, as
/// they have always been written). Serialised directly: a page holds up to 10,000.
#[derive(Serialize)]
pub struct PointOut<'a> {
    metadata: &'a RawValue,
    metric_name: &'a str,
    run_id: &'a str,
    step: Option<i64>,
    time: String,
    value: f64,
}

impl<'a> PointOut<'a> {
    /// A point as read.
    pub fn new(run_id: &'a str, p: &'a Point) -> PointOut<'a> {
        PointOut::of(
            run_id,
            &p.metric,
            p.step,
            p.value,
            p.time_ns,
            p.metadata_json.as_deref(),
        )
    }

    /// A point as written (pushed to live streams as it is applied).
    pub fn written(run_id: &'a str, p: &'a PointIn) -> PointOut<'a> {
        PointOut::of(
            run_id,
            &p.metric,
            p.step,
            p.value,
            p.time_ns,
            p.metadata_json.as_deref(),
        )
    }

    fn of(
        run_id: &'a str,
        metric_name: &'a str,
        step: Option<i64>,
        value: f64,
        time_ns: i64,
        metadata_json: Option<&'a str>,
    ) -> PointOut<'a> {
        // The stored metadata is the compact JSON of an object, written by the edge.
        let empty = || serde_json::from_str("{}").expect("an empty object is JSON");
        let metadata = metadata_json
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_else(empty);
        PointOut {
            metadata,
            metric_name,
            run_id,
            step,
            time: rfc3339(time_ns),
            value,
        }
    }
}

/// The JSON of one point, as the Metric Service returns it.
pub fn point_json(run_id: &str, p: &Point) -> Value {
    serde_json::to_value(PointOut::new(run_id, p)).unwrap_or(Value::Null)
}

/// A page of history.
#[derive(Serialize)]
struct HistoryOut<'a> {
    count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_name: Option<&'a str>,
    metrics: Vec<PointOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    run_id: &'a str,
}

/// At most `n` points that keep the shape: the points are cut into n/2 buckets of
/// consecutive points, and each bucket contributes its minimum and its maximum.
pub fn downsample(points: Vec<Point>, n: usize) -> Vec<Point> {
    if points.len() <= n {
        return points;
    }
    let buckets = (n / 2).max(1);
    let size = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(n);
    for chunk in points.chunks(size) {
        let by = |f: fn(f64, f64) -> bool| {
            chunk.iter().enumerate().fold(0, |best, (i, p)| {
                if f(p.value, chunk[best].value) {
                    i
                } else {
                    best
                }
            })
        };
        let (lo, hi) = (by(|a, b| a < b), by(|a, b| a > b));
        out.push(chunk[lo.min(hi)].clone());
        if lo != hi {
            out.push(chunk[lo.max(hi)].clone());
        }
    }
    out
}

async fn read_history(
    s: &AppState,
    headers: &HeaderMap,
    run_id: &str,
    metric: Option<String>,
    raw: Option<&str>,
) -> Result<Response, PtError> {
    let tenant = tenant(headers)?;
    let run = parse_run(run_id)?;
    let mut p = history_params(raw)?;
    if super::wants_linearizable(headers, raw) {
        s.node.read_barrier().await?;
    }
    let metric = metric.or(p.metric_name.take());
    let want = p.q.limit;
    p.q.limit = want + 1;
    let (m, q) = (metric.clone(), p.q.clone());
    let mut points = super::read_store(s, move |store| match &m {
        Some(m) => store.series_points(&tenant, &run, m, &q),
        None => store.run_points(&tenant, &run, &q),
    })
    .await?;
    let next = (points.len() > want).then(|| encode_cursor(&points[want - 1].cursor));
    points.truncate(want);
    if let Some(n) = p.downsample {
        points = downsample(points, n);
    }
    let metrics: Vec<PointOut> = points.iter().map(|pt| PointOut::new(run_id, pt)).collect();
    let out = HistoryOut {
        count: metrics.len(),
        metric_name: metric.as_deref(),
        metrics,
        next,
        run_id,
    };
    // ~200 bytes per point without metadata.
    let capacity = 256 + out.metrics.len() * 200;
    Ok(super::json_response(StatusCode::OK, &out, capacity))
}

/// A run's points, newest first
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        doc::HistoryQuery, ("metric_name" = Option<String>, Query, description = "Only this metric"),
        doc::TenantHeader, super::openapi::core::ConsistencyQuery, super::openapi::core::ConsistencyHeader),
    responses((status = 200, description = "Points", body = doc::History),
        (status = 400, description = "Bad run_id, query or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn history(
    State(s): St,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, PtError> {
    read_history(&s, &headers, &run_id, None, q.as_deref()).await
}

/// One metric's points, newest first
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics/{metric_name}", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        ("metric_name" = String, Path, description = "Metric name"),
        doc::HistoryQuery, doc::TenantHeader, super::openapi::core::ConsistencyQuery, super::openapi::core::ConsistencyHeader),
    responses((status = 200, description = "Points", body = doc::History),
        (status = 400, description = "Bad run_id, query or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn series_history(
    State(s): St,
    Path((run_id, metric)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, PtError> {
    read_history(&s, &headers, &run_id, Some(metric), q.as_deref()).await
}

fn not_found() -> PtError {
    PtError(StatusCode::NOT_FOUND, "Metric not found".into())
}

/// One metric's newest point
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics/{metric_name}/latest", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        ("metric_name" = String, Path, description = "Metric name"),
        doc::TenantHeader, super::openapi::core::ConsistencyQuery, super::openapi::core::ConsistencyHeader),
    responses(
        (status = 200, description = "The point", body = doc::Point),
        (status = 404, description = "Metric not found", body = Err),
        (status = 400, description = "Bad run_id, query or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn latest(
    State(s): St,
    Path((run_id, metric)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, PtError> {
    let tenant = tenant(&headers)?;
    let run = parse_run(&run_id)?;
    if super::wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    let q = PointQuery {
        limit: 1,
        ..Default::default()
    };
    let p = s
        .node
        .store()
        .series_points(&tenant, &run, &metric, &q)?
        .pop()
        .ok_or_else(not_found)?;
    Ok(Json(point_json(&run_id, &p)))
}

/// Count, min, max, mean and standard deviation of one metric (O(1) without a time range)
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics/{metric_name}/stats", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        ("metric_name" = String, Path, description = "Metric name"),
        ("start_time" = Option<String>, Query, description = "RFC3339, inclusive"),
        ("end_time" = Option<String>, Query, description = "RFC3339, inclusive"),
        doc::TenantHeader, super::openapi::core::ConsistencyQuery, super::openapi::core::ConsistencyHeader),
    responses(
        (status = 200, description = "Statistics", body = doc::SeriesStats),
        (status = 404, description = "Metric not found (or no point in the range)", body = Err),
        (status = 400, description = "Bad run_id, query or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn stats(
    State(s): St,
    Path((run_id, metric)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, PtError> {
    let tenant = tenant(&headers)?;
    let run = parse_run(&run_id)?;
    let p = history_params(q.as_deref())?;
    if super::wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    let agg = if p.q.start_ns.is_some() || p.q.end_ns.is_some() {
        let (start, end) = (
            p.q.start_ns.unwrap_or(i64::MIN),
            p.q.end_ns.unwrap_or(i64::MAX),
        );
        let m = metric.clone();
        let agg = super::read_store(&s, move |st| {
            st.series_agg_range(&tenant, &run, &m, start, end)
        })
        .await?;
        Some(agg).filter(|a| a.count > 0)
    } else {
        s.node.store().series_agg(&tenant, &run, &metric)?
    };
    let a = agg.ok_or_else(not_found)?;
    Ok(Json(json!({
        "metric_name": metric,
        "count": a.count,
        "min_value": a.min,
        "max_value": a.max,
        "avg_value": a.mean,
        "std_dev": a.std_dev(),
        "first_time": rfc3339(a.first_ns),
        "last_time": rfc3339(a.last_ns),
    })))
}

/// A run's system metrics, newest first
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/system-metrics", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        ("start_time" = Option<String>, Query, description = "RFC3339, inclusive"),
        ("end_time" = Option<String>, Query, description = "RFC3339, inclusive"),
        ("limit" = Option<u64>, Query, description = "Default 1000, clamped to 1..=10000"),
        ("metric_type" = Option<String>, Query, description = "Only this type"),
        doc::TenantHeader, super::openapi::core::ConsistencyQuery, super::openapi::core::ConsistencyHeader),
    responses((status = 200, description = "System metrics", body = doc::SystemHistory),
        (status = 400, description = "Bad run_id, query or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn system_history(
    State(s): St,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, PtError> {
    let tenant = tenant(&headers)?;
    let run = parse_run(&run_id)?;
    let p = history_params(q.as_deref())?;
    let kind = query_pairs(q.as_deref())
        .into_iter()
        .find(|(k, _)| k == "metric_type")
        .map(|(_, v)| v);
    if super::wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    let range = (
        p.q.start_ns.unwrap_or(i64::MIN),
        p.q.end_ns.unwrap_or(i64::MAX),
    );
    let limit = p.q.limit;
    let rows = super::read_store(&s, move |st| {
        st.system_points(&tenant, &run, range, kind.as_deref(), limit)
    })
    .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(kind, value, t, meta)| {
            let meta: Value = meta.as_deref().and_then(|m| serde_json::from_str(m).ok()).unwrap_or(json!({}));
            json!({ "time": rfc3339(t), "run_id": run_id, "metric_type": kind, "value": value, "metadata": meta })
        })
        .collect();
    Ok(Json(
        json!({ "run_id": run_id, "metrics": items, "count": items.len() }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(i: i64, v: f64) -> Point {
        Point {
            metric: "m".into(),
            step: Some(i),
            value: v,
            time_ns: i,
            metadata_json: None,
            cursor: Cursor {
                time_ns: i,
                metric: "m".into(),
                tie: [0; 12],
            },
        }
    }

    #[test]
    fn downsample_keeps_extremes_and_bound() {
        let pts: Vec<Point> = (0..1000)
            .map(|i| pt(i, ((i as f64) / 10.0).sin()))
            .collect();
        let mut spiky = pts.clone();
        spiky[517].value = 100.0;
        spiky[3].value = -100.0;
        let out = downsample(spiky, 50);
        assert!(out.len() <= 50);
        assert!(out.iter().any(|p| p.value == 100.0) && out.iter().any(|p| p.value == -100.0));
        assert_eq!(downsample(pts[..10].to_vec(), 50).len(), 10);
    }

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            time_ns: -5,
            metric: "loss/train".into(),
            tie: [7; 12],
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        assert_eq!(decode_cursor("zz"), None);
    }
}
