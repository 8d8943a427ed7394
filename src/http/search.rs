//! Metric metadata search and sync (MIRADOR-CORE, API.md section 6). Search runs on
//! any node over its local index (`?consistency=linearizable` waits until the index
//! reflects the leader's commit index); syncs run on the leader — a sync request that
//! reaches a follower is relayed to the leader's API. Errors are `{"error":"..."}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metacenter_storage::{Command, MetricDoc, SyncRecord, SyncSettings};
use serde_json::{json, Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::body::{self, Body};
use super::common::consistency::wants_linearizable;
use super::common::metric_error::{bad, internal, MetricError};
use super::common::tenant;
use super::openapi::metadata::{ConsistencyHeader, ConsistencyQuery};
use super::openapi::metric as doc;
use super::openapi::MetricErrorBody as Err;
use crate::clock::rfc3339;
use crate::search::settings::{parse_duration, validate};
use crate::search::{SearchQuery, SyncError, SyncReport};
use crate::state::AppState;

type St = State<Arc<AppState>>;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
const MAX_OFFSET: usize = 100_000;
/// How long a linearizable search waits for the index to catch up.
const INDEX_WAIT: Duration = Duration::from_secs(10);

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(sync_body))
        .routes(routes!(put_config, get_config))
        .routes(routes!(sync_path))
        .routes(routes!(state))
        .routes(routes!(status))
        .routes(routes!(health))
}

/// A body that must be a JSON object ([`body::json_object`]).
fn json_object(b: Body) -> Result<Map<String, Value>, MetricError> {
    Ok(body::json_object(b)?)
}

fn opt_str<'a>(m: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, MetricError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("`{k}` must be a string"))),
    }
}

fn opt_usize(m: &Map<String, Value>, k: &str, max: usize) -> Result<Option<usize>, MetricError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n as usize <= max => Ok(Some(n as usize)),
            _ => Err(bad(format!("`{k}` must be an integer from 0 to {max}"))),
        },
    }
}

/// The tenant of a search or sync: the body's `tenant_id`, else `X-Tenant-ID`
/// ([`tenant::body`]).
fn body_tenant(m: &Map<String, Value>, headers: &HeaderMap) -> Result<String, MetricError> {
    tenant::body(m, headers).map_err(bad)
}

/// The tenant of a sync route's `{tenant}` path parameter ([`tenant::path`]).
fn path_tenant(raw: &str) -> Result<String, MetricError> {
    tenant::path(raw).map_err(bad)
}

pub fn parse_search(
    m: &Map<String, Value>,
    headers: &HeaderMap,
) -> Result<SearchQuery, MetricError> {
    let types = match m.get("types") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`types` must be an array of strings"))?,
        Some(_) => return Err(bad("`types` must be an array of strings")),
    };
    let labels = match m.get("labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("`labels` values must be strings"))?,
        Some(_) => return Err(bad("`labels` must be an object of label -> value")),
    };
    let limit = match opt_usize(m, "limit", MAX_LIMIT)? {
        None | Some(0) => DEFAULT_LIMIT,
        Some(n) => n,
    };
    Ok(SearchQuery {
        tenant: body_tenant(m, headers)?,
        text: opt_str(m, "query")?
            .unwrap_or("")
            .chars()
            .take(1024)
            .collect(),
        types,
        labels,
        limit,
        offset: opt_usize(m, "offset", MAX_OFFSET)?.unwrap_or(0),
    })
}

fn document(tenant: &str, d: &MetricDoc) -> Value {
    let source = match (d.sync_gen > 0, d.from_points) {
        (true, true) => "sync+points",
        (true, false) => "sync",
        _ => "points",
    };
    json!({
        "id": d.name, "name": d.name, "type": d.kind, "help": d.help, "unit": d.unit,
        "labels": d.labels, "label_keys": d.labels.keys().collect::<Vec<_>>(),
        "tenant_id": tenant, "source": source,
        "last_seen": rfc3339(d.last_seen_ns), "created_at": rfc3339(d.created_ns),
        "updated_at": rfc3339(d.updated_ns),
    })
}

/// Search metric metadata of a tenant
#[utoipa::path(post, path = "/api/v1/metrics/search", tag = "search",
    params(doc::TenantHeader, ConsistencyQuery, ConsistencyHeader),
    request_body(content = Option<doc::SearchRequest>, description = "Empty body: everything, first page"),
    responses(
        (status = 200, description = "Matching documents", body = doc::SearchResult),
        (status = 400, description = "Bad body or tenant", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "No leader, or the index did not catch up, for a linearizable search", body = Err)))]
async fn search(State(s): St, headers: HeaderMap, RawQuery(q): RawQuery, body: Body) -> Response {
    let started = Instant::now();
    let run = async {
        let m = json_object(body)?;
        let query = parse_search(&m, &headers)?;
        if wants_linearizable(&headers, q.as_deref()) {
            let at = s.node.read_barrier().await?;
            if !s.search.indexed.wait_for(at, INDEX_WAIT).await {
                return Err(MetricError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the search index did not catch up in time",
                ));
            }
        }
        let index = s.search.index.clone();
        let store = s.node.store().clone();
        let (docs, total) = tokio::task::spawn_blocking(move || {
            let (names, total) = index.search(&query).map_err(internal)?;
            let mut docs = Vec::with_capacity(names.len());
            for name in names {
                match store.catalog_doc(&query.tenant, &name) {
                    Ok(Some(d)) => docs.push(document(&query.tenant, &d)),
                    Ok(None) => {}
                    Err(e) => return Err(internal(e)),
                }
            }
            Ok((docs, total))
        })
        .await
        .map_err(internal)??;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        Ok::<_, MetricError>(Json(
            json!({ "results": docs, "total": total, "took": took }),
        ))
    };
    run.await.into_response()
}

fn report_json(r: &SyncReport) -> Value {
    json!({
        "metrics_processed": r.processed, "metrics_added": r.added,
        "metrics_updated": r.updated, "metrics_removed": r.removed,
        "duration": r.duration.as_nanos() as u64,
        "duration_ms": r.duration.as_millis() as u64,
        "full_sync": r.full, "errors": r.errors,
    })
}

fn sync_error(e: SyncError) -> MetricError {
    let status = match &e {
        SyncError::NoSource(_) => StatusCode::NOT_FOUND,
        SyncError::Busy(_) => StatusCode::CONFLICT,
        SyncError::Source(_) => StatusCode::BAD_GATEWAY,
        SyncError::Raft(_) => StatusCode::SERVICE_UNAVAILABLE,
        SyncError::Unexpected(_) => return internal(e),
    };
    MetricError::new(status, e.to_string())
}

fn leads(s: &AppState) -> bool {
    s.node.leader().is_some_and(|(id, _)| id == s.node.id())
}

/// Relays a request to the leader's API and its answer back.
async fn relay(s: &AppState, req: Request) -> Response {
    let Some((_, addr)) = s.node.leader() else {
        return MetricError::new(StatusCode::SERVICE_UNAVAILABLE, "no leader available")
            .into_response();
    };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let bytes = axum::body::to_bytes(body, s.cfg.max_body_bytes)
        .await
        .unwrap_or_default();
    let mut out = s
        .http
        .request(parts.method, format!("http://{}{path}", addr.api));
    for (k, v) in &parts.headers {
        if matches!(k.as_str(), "content-type" | "x-tenant-id" | "authorization") {
            out = out.header(k, v);
        }
    }
    match out
        .body(bytes)
        .timeout(Duration::from_secs(600))
        .send()
        .await
    {
        Ok(r) => {
            let status = r.status();
            let body = r.bytes().await.unwrap_or_default();
            (status, [("content-type", "application/json")], body).into_response()
        }
        Err(e) => MetricError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("leader unreachable: {e}"),
        )
        .into_response(),
    }
}

/// Sync a tenant's metric metadata from its source now (on the leader)
#[utoipa::path(post, path = "/api/v1/metrics/sync", tag = "search", params(doc::TenantHeader),
    request_body(content = Option<doc::SyncRequest>, description = "Empty body: the X-Tenant-ID tenant, not forced full"),
    responses(
        (status = 200, description = "Sync completed", body = doc::SyncDone),
        (status = 400, description = "Bad body or tenant", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 404, description = "No sync source configured for the tenant", body = Err),
        (status = 409, description = "A sync of the tenant is already running", body = Err),
        (status = 502, description = "The source failed", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn sync_body(State(s): St, req: Request) -> Response {
    if !leads(&s) {
        return relay(&s, req).await;
    }
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), s.cfg.max_body_bytes)
        .await
        .map_err(|e| MetricError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()));
    let run = async {
        let m = json_object(Ok(body?))?;
        let tenant = body_tenant(&m, &headers)?;
        let full = match m.get("force_full_sync") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("`force_full_sync` must be a boolean")),
        };
        let r = s
            .search
            .syncer
            .sync(&tenant, full)
            .await
            .map_err(sync_error)?;
        Ok(Json(
            json!({ "tenant_id": tenant, "result": report_json(&r) }),
        ))
    };
    run.await.into_response()
}

/// Sync a tenant's metric metadata from its source now (on the leader)
#[utoipa::path(post, path = "/api/v1/metrics/sync/{tenant}", tag = "search",
    params(("tenant" = String, Path, description = "The tenant"),
        ("forceFull" = Option<bool>, Query, description = "A full sync")),
    responses(
        (status = 200, description = "Sync completed", body = doc::SyncCompleted),
        (status = 400, description = "Bad tenant or forceFull", body = Err),
        (status = 404, description = "No sync source configured for the tenant", body = Err),
        (status = 409, description = "A sync of the tenant is already running", body = Err),
        (status = 502, description = "The source failed", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn sync_path(
    State(s): St,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let tenant = match path_tenant(&tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if !leads(&s) {
        return relay(&s, req).await;
    }
    let run = async {
        let full = match q.get("forceFull") {
            None => false,
            Some(v) => v
                .parse()
                .map_err(|_| bad("`forceFull` must be true or false"))?,
        };
        let r = s
            .search
            .syncer
            .sync(&tenant, full)
            .await
            .map_err(sync_error)?;
        Ok::<_, MetricError>(Json(json!({
            "message": "Sync completed successfully",
            "result": report_json(&r),
        })))
    };
    run.await.into_response()
}

fn time_opt(ns: Option<i64>) -> Value {
    ns.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

fn status_str(r: &SyncRecord) -> &str {
    if r.status.is_empty() {
        "never_run"
    } else {
        &r.status
    }
}

/// A tenant's sync bookkeeping across syncs
#[utoipa::path(get, path = "/api/v1/metrics/sync/{tenant}/state", tag = "search",
    params(("tenant" = String, Path, description = "The tenant")),
    responses((status = 200, description = "Sync state", body = doc::SyncState),
        (status = 400, description = "Bad tenant", body = Err)))]
async fn state(State(s): St, Path(tenant): Path<String>) -> Result<Json<Value>, MetricError> {
    let tenant = path_tenant(&tenant)?;
    let r = s.node.store().sync_record(&tenant)?;
    let count = s.node.store().catalog_count(&tenant)?;
    Ok(Json(json!({
        "tenant_id": tenant,
        "last_sync_time": time_opt(r.last_sync_ns),
        "last_full_sync_time": time_opt(r.last_full_sync_ns),
        "total_syncs": r.total_syncs, "successful_syncs": r.successful_syncs,
        "failed_syncs": r.failed_syncs, "metrics_in_index": count,
        "last_error": r.last_error, "last_error_time": time_opt(r.last_error_ns),
        "is_currently_syncing": r.status == "running",
    })))
}

/// The status of a tenant's last sync
#[utoipa::path(get, path = "/api/v1/metrics/sync/{tenant}/status", tag = "search",
    params(("tenant" = String, Path, description = "The tenant")),
    responses((status = 200, description = "Sync status", body = doc::SyncStatus),
        (status = 400, description = "Bad tenant", body = Err)))]
async fn status(State(s): St, Path(tenant): Path<String>) -> Result<Json<Value>, MetricError> {
    let tenant = path_tenant(&tenant)?;
    let r = s.node.store().sync_record(&tenant)?;
    let started = (r.gen > 0).then_some(r.start_ns);
    Ok(Json(json!({
        "tenant_id": tenant, "status": status_str(&r), "strategy": r.strategy,
        "start_time": time_opt(started), "end_time": time_opt(r.end_ns),
        "metrics_processed": r.processed, "metrics_added": r.added,
        "metrics_updated": r.updated, "metrics_removed": r.removed,
        "errors": r.errors, "duration": r.duration_ns, "last_error": r.last_error,
    })))
}

fn settings_json(x: &SyncSettings) -> Value {
    json!({
        "enabled": x.enabled, "strategy": x.strategy, "interval": x.interval_ns,
        "full_sync_interval": x.full_sync_interval_ns, "batch_size": x.batch_size,
        "max_retries": x.max_retries, "retry_delay": x.retry_delay_ns,
        "time_range_lookback": x.lookback_ns,
    })
}

/// The sync settings
#[utoipa::path(get, path = "/api/v1/metrics/sync/config", tag = "search",
    responses((status = 200, description = "Settings", body = doc::SyncConfig)))]
async fn get_config(State(s): St) -> Json<Value> {
    Json(settings_json(&s.search.syncer.settings()))
}

/// Fields not in the body keep their current value.
pub fn merge_settings(cur: SyncSettings, m: &Map<String, Value>) -> Result<SyncSettings, String> {
    let mut x = cur;
    for (k, v) in m {
        let small = |v: &Value| {
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("`{k}` must be a non-negative integer"))
        };
        let dur = |v: &Value| parse_duration(v).map_err(|e| format!("`{k}`: {e}"));
        match k.as_str() {
            "enabled" => x.enabled = v.as_bool().ok_or("`enabled` must be a boolean")?,
            "strategy" => x.strategy = v.as_str().ok_or("`strategy` must be a string")?.into(),
            "interval" => x.interval_ns = dur(v)?,
            "full_sync_interval" => x.full_sync_interval_ns = dur(v)?,
            "batch_size" => x.batch_size = small(v)?,
            "max_retries" => x.max_retries = small(v)?,
            "retry_delay" => x.retry_delay_ns = dur(v)?,
            "time_range_lookback" => x.lookback_ns = dur(v)?,
            other => return Err(format!("unknown field `{other}`")),
        }
    }
    validate(&x)?;
    Ok(x)
}

/// Change the sync settings (validated; replicated); admin
#[utoipa::path(put, path = "/api/v1/metrics/sync/config", tag = "search",
    request_body = doc::SyncConfigUpdate,
    responses(
        (status = 200, description = "Updated", body = doc::SyncConfigUpdated),
        (status = 400, description = "Bad body or settings, with the reason", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn put_config(State(s): St, body: Body) -> Result<Json<Value>, MetricError> {
    let m = json_object(body)?;
    let settings = merge_settings(s.search.syncer.settings(), &m).map_err(bad)?;
    s.node
        .write_one(Command::CatalogSettings {
            settings: settings.clone(),
        })
        .await?;
    Ok(Json(
        json!({ "message": "Sync configuration updated", "config": settings_json(&settings) }),
    ))
}

/// Health of the metadata index and of the tenants' syncs
#[utoipa::path(get, path = "/api/v1/metrics/health", tag = "search",
    responses(
        (status = 200, description = "Healthy", body = doc::SearchHealth),
        (status = 503, description = "A tenant's last sync failed", body = doc::SearchHealth)))]
async fn health(State(s): St) -> Result<Response, MetricError> {
    // Scans over every tenant: on a blocking thread.
    let (counts, records, changed) = s
        .read_store(|st| {
            Ok((
                st.catalog_counts()?,
                st.sync_records()?,
                st.catalog_changed_at()?,
            ))
        })
        .await?;
    let failed: Vec<String> = records
        .iter()
        .filter(|(_, r)| r.status == "failed")
        .map(|(t, r)| format!("{t}: {}", r.last_error.clone().unwrap_or_default()))
        .collect();
    let last_sync = records.values().filter_map(|r| r.last_sync_ns).max();
    let indexed = s.search.indexed.current();
    let healthy = failed.is_empty();
    let body = json!({
        "is_healthy": healthy, "last_sync_time": time_opt(last_sync),
        "total_metrics": counts.values().sum::<u64>(), "tenants": counts.len(),
        "index_size_bytes": s.search.index.size_bytes(),
        "index_current": indexed >= changed, "indexed_index": indexed,
        "sync_errors": failed,
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, Json(body)).into_response())
}
