//! Metric points (Metric Service, API.md section 5): batch ingest, history newest
//! first with filters, cursor pagination and downsampling, latest, stats, system
//! metrics. Errors are `{"error":"..."}`; bad input is a 400 naming the item and
//! field, and nothing of a bad batch is written. Tenant from `X-Tenant-ID`.
//!
//! Here: the router and the handlers; `runs` lists a tenant's runs; `input` holds the
//! parsing and validation of bodies, headers, queries and cursors, `output` the JSON
//! written back. The
//! [`MetricError`] envelope, run ids and points as JSON are the shared layer's
//! (`super::common`), since the search and stream areas use them too.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metacenter_storage::{BucketBy, Command, Point, PointQuery, Response as R};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::body::Body;
use super::common::consistency::wants_linearizable;
use super::common::gzip;
use super::common::large::PAGE_BYTES;
use super::common::metric_error::{bad, internal, MetricError};
use super::common::point::{parse_run, PointOut};
use super::common::response::json_response;
use super::openapi::metadata::{ConsistencyHeader, ConsistencyQuery};
use super::openapi::metric as doc;
use super::openapi::MetricErrorBody as Err;
use crate::clock::rfc3339;
use crate::state::AppState;

mod input;
mod output;
mod runs;

pub use input::{
    batch_items, decode_cursor, encode_cursor, history_params, point_in, system_point_in, tenant,
    HistoryParams, MAX_LIMIT,
};
use input::{parse_items, query_pairs};
use output::HistoryOut;
pub use output::{downsample, point_json};

type St = State<Arc<AppState>>;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(write_batch))
        .routes(routes!(write_system))
        .routes(routes!(history))
        .routes(routes!(series_history))
        .routes(routes!(latest))
        .routes(routes!(stats))
        .routes(routes!(system_history))
        .routes(routes!(runs::list_runs))
}

async fn commit(s: &AppState, cmd: Command) -> Result<Response, MetricError> {
    match s.node.write_one(cmd).await? {
        R::PointsWritten { count } => {
            let body = json!({ "message": "Metrics written successfully", "count": count });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        R::Invalid { reason } => Err(bad(reason)),
        other => Err(internal(format!("unexpected response {other:?}"))),
    }
}

/// Write metric points (all or none)
#[utoipa::path(post, path = "/api/v1/metrics/batch", tag = "points",
    params(doc::TenantHeader), request_body = doc::PointsBatch,
    responses((status = 201, description = "Written", body = doc::Written),
        (status = 400, description = "Bad body, naming the item and field; nothing is written", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn write_batch(
    State(s): St,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MetricError> {
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
async fn write_system(
    State(s): St,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, MetricError> {
    let tenant = tenant(&headers)?;
    let points = parse_items(&s, body, system_point_in)?;
    commit(&s, Command::SystemPointsWrite { tenant, points }).await
}

async fn read_history(
    s: &AppState,
    headers: &HeaderMap,
    run_id: &str,
    metric: Option<String>,
    raw: Option<&str>,
) -> Result<Response, MetricError> {
    let tenant = tenant(headers)?;
    let run = parse_run(run_id)?;
    let mut p = history_params(raw)?;
    if wants_linearizable(headers, raw) {
        s.node.read_barrier().await?;
    }
    let metric = metric.or(p.metric_name.take());
    if let Some(n) = p.buckets {
        let m = metric.ok_or_else(|| bad("buckets needs one metric (metric_name)"))?;
        let gzipped = gzip::accepts(headers);
        return read_buckets(s, tenant, run_id, m, (p.q, n, p.bucket_by), gzipped).await;
    }
    let room = s.large.admit().await?;
    let want = p.q.limit;
    p.q.limit = want + 1;
    let (m, q) = (metric.clone(), p.q.clone());
    let mut points = s
        .read_store(move |store| match &m {
            Some(m) => store.series_points(&tenant, &run, m, &q),
            None => store.run_points(&tenant, &run, &q),
        })
        .await?;
    let fit = page_fit(&points, want);
    let next = (points.len() > fit).then(|| encode_cursor(&points[fit - 1].cursor));
    points.truncate(fit);
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
    let capacity = 256 + out.metrics.len() * POINT_BYTES;
    Ok(room.hold(json_response(StatusCode::OK, &out, capacity)))
}

/// One metric's range cut into `n` buckets of time or steps, each giving its lowest and
/// highest point (the range is cut before it is sampled, so a zoom gets full
/// resolution); gzip-compressed when the client accepts it, as browsers do.
async fn read_buckets(
    s: &AppState,
    tenant: String,
    run_id: &str,
    metric: String,
    (q, n, by): (PointQuery, usize, BucketBy),
    gzipped: bool,
) -> Result<Response, MetricError> {
    let run = parse_run(run_id)?;
    let room = s.large.admit().await?;
    let m = metric.clone();
    let points = s
        .read_store(move |store| store.series_buckets(&tenant, &run, &m, &q, n, by))
        .await?;
    let metrics: Vec<PointOut> = points.iter().map(|pt| PointOut::new(run_id, pt)).collect();
    let out = HistoryOut {
        count: metrics.len(),
        metric_name: Some(&metric),
        metrics,
        next: None,
        run_id,
    };
    let capacity = 256 + out.metrics.len() * POINT_BYTES;
    let resp = json_response(StatusCode::OK, &out, capacity);
    Ok(room.hold(if gzipped {
        gzip_response(resp).await
    } else {
        resp
    }))
}

/// A JSON answer gzip-compressed (fast level: a few thousand points shrink about
/// tenfold, which is what a chart of a browser waits for).
async fn gzip_response(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return internal("reading an answer to compress it").into_response();
    };
    let headers = &mut parts.headers;
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.remove(header::CONTENT_LENGTH);
    // Up to a few MB: compressed off the runtime's workers.
    match tokio::task::spawn_blocking(move || gzip::compress(&bytes, 1)).await {
        Ok(gz) => Response::from_parts(parts, axum::body::Body::from(gz)),
        Err(e) => internal(format!("compressing an answer: {e}")).into_response(),
    }
}

/// About the bytes of one point's JSON without its metadata.
const POINT_BYTES: usize = 200;

/// How many of the first `want` points fit in a page of about `PAGE_BYTES` (at least
/// one, when there is one).
fn page_fit(points: &[Point], want: usize) -> usize {
    let mut total = 0;
    for (i, p) in points.iter().take(want).enumerate() {
        total += POINT_BYTES + p.metadata_json.as_ref().map_or(0, String::len);
        if total > PAGE_BYTES && i > 0 {
            return i;
        }
    }
    want.min(points.len())
}

/// A run's points, newest first
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        doc::HistoryQuery, ("metric_name" = Option<String>, Query, description = "Only this metric"),
        doc::TenantHeader, ConsistencyQuery, ConsistencyHeader),
    responses((status = 200, description = "Points", body = doc::History),
        (status = 400, description = "Bad run_id, query or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn history(
    State(s): St,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, MetricError> {
    read_history(&s, &headers, &run_id, None, q.as_deref()).await
}

/// One metric's points, newest first
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics/{metric_name}", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        ("metric_name" = String, Path, description = "Metric name"),
        doc::HistoryQuery, doc::TenantHeader, ConsistencyQuery, ConsistencyHeader),
    responses((status = 200, description = "Points", body = doc::History),
        (status = 400, description = "Bad run_id, query or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn series_history(
    State(s): St,
    Path((run_id, metric)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, MetricError> {
    read_history(&s, &headers, &run_id, Some(metric), q.as_deref()).await
}

fn not_found() -> MetricError {
    MetricError::new(StatusCode::NOT_FOUND, "Metric not found")
}

/// One metric's newest point
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/metrics/{metric_name}/latest", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        ("metric_name" = String, Path, description = "Metric name"),
        doc::TenantHeader, ConsistencyQuery, ConsistencyHeader),
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
) -> Result<Json<Value>, MetricError> {
    let tenant = tenant(&headers)?;
    let run = parse_run(&run_id)?;
    if wants_linearizable(&headers, q.as_deref()) {
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
        doc::TenantHeader, ConsistencyQuery, ConsistencyHeader),
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
) -> Result<Json<Value>, MetricError> {
    let tenant = tenant(&headers)?;
    let run = parse_run(&run_id)?;
    let p = history_params(q.as_deref())?;
    if wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    let agg = if p.q.start_ns.is_some() || p.q.end_ns.is_some() {
        let (start, end) = (
            p.q.start_ns.unwrap_or(i64::MIN),
            p.q.end_ns.unwrap_or(i64::MAX),
        );
        let m = metric.clone();
        let agg = s
            .read_store(move |st| st.series_agg_range(&tenant, &run, &m, start, end))
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
        doc::TenantHeader, ConsistencyQuery, ConsistencyHeader),
    responses((status = 200, description = "System metrics", body = doc::SystemHistory),
        (status = 400, description = "Bad run_id, query or X-Tenant-ID", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn system_history(
    State(s): St,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, MetricError> {
    let tenant = tenant(&headers)?;
    let run = parse_run(&run_id)?;
    let p = history_params(q.as_deref())?;
    let kind = query_pairs(q.as_deref())
        .into_iter()
        .find(|(k, _)| k == "metric_type")
        .map(|(_, v)| v);
    if wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    let range = (
        p.q.start_ns.unwrap_or(i64::MIN),
        p.q.end_ns.unwrap_or(i64::MAX),
    );
    let limit = p.q.limit;
    let rows = s
        .read_store(move |st| st.system_points(&tenant, &run, range, kind.as_deref(), limit))
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
