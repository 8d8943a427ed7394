//! Service discovery (meta-core, API.md section 3): register, heartbeat, deregister,
//! list and get, with `stale` status derived at read time from `lastHeartbeat` and
//! `services.stale_threshold_ms`, and blocking queries on the list and on one service.
//! The receiving node stamps `lastHeartbeat` into the command; apply reads no clock.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metacenter_storage::{Command, Response as R, ServiceEntry};
use serde_json::{json, Map, Value};

use super::coreerr::CoreError;
use super::meta::check_key;
use super::watch;
use crate::server::AppState;

type St = State<Arc<AppState>>;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/services", get(list))
        .route(
            "/services/{name}",
            get(get_one).put(register).delete(deregister),
        )
        .route("/services/{name}/heartbeat", post(heartbeat))
}

/// Unix milliseconds now (the edge stamps time into commands).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339_ms(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The ServiceInfo clients see: as registered, plus `name`, `lastHeartbeat`, and
/// `status` = `stale` when the last heartbeat is older than the threshold.
fn view(s: &AppState, name: &str, e: &ServiceEntry) -> Value {
    let mut info: Map<String, Value> = serde_json::from_str(&e.info_json).unwrap_or_default();
    info.insert("name".into(), json!(name));
    info.insert(
        "lastHeartbeat".into(),
        json!(rfc3339_ms(e.last_heartbeat_ms)),
    );
    if now_ms().saturating_sub(e.last_heartbeat_ms) > s.cfg.stale_threshold_ms {
        info.insert("status".into(), json!("stale"));
    } else if !info.contains_key("status") {
        info.insert("status".into(), json!("healthy"));
    }
    if let Some(after) = e.deregister_after_ms {
        info.insert("deregisterAfterMs".into(), json!(after));
    }
    Value::Object(info)
}

fn watch_params(q: &Option<String>) -> Result<Option<watch::Watch>, CoreError> {
    watch::parse(q.as_deref()).map_err(CoreError::bad_request)
}

async fn list(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, CoreError> {
    if super::wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    if let Some(w) = watch_params(&q)? {
        watch::block(&s, w, || s.node.store().services_index()).await?;
    }
    let services: Vec<Value> = super::read_store(&s, |st| st.services())
        .await?
        .iter()
        .map(|(n, e)| view(&s, n, e))
        .collect();
    Ok(Json(
        json!({ "count": services.len(), "services": services }),
    ))
}

async fn get_one(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, CoreError> {
    check_key("service name", &name)?;
    if super::wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    if let Some(w) = watch_params(&q)? {
        let store = s.node.store();
        watch::block(&s, w, || match store.service(&name)? {
            Some(e) => Ok(e.mod_index),
            None => store.services_index(),
        })
        .await?;
    }
    match s.node.store().service(&name)? {
        Some(e) => Ok(Json(view(&s, &name, &e))),
        None => Err(CoreError::not_found("service not found")),
    }
}

/// Validates a registration body: a JSON object whose `name`, if present, matches.
fn registration(name: &str, body: &[u8]) -> Result<(String, Option<u64>), CoreError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| CoreError::bad_request("invalid JSON body"))?;
    let Value::Object(mut info) = v else {
        return Err(CoreError::bad_request(
            "invalid JSON body: expected a ServiceInfo object",
        ));
    };
    if let Some(n) = info.get("name") {
        if n.as_str() != Some(name) {
            return Err(CoreError::bad_request(
                "`name` in the body must match the path",
            ));
        }
    }
    let after = match info.remove("deregisterAfterMs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            CoreError::bad_request("`deregisterAfterMs` must be a non-negative integer")
        })?),
    };
    info.remove("lastHeartbeat");
    let text = serde_json::to_string(&info).map_err(CoreError::internal)?;
    if text.len() > metacenter_storage::Limits::MAX_VALUE {
        return Err(CoreError::bad_request("ServiceInfo too large"));
    }
    Ok((text, after))
}

async fn register(
    State(s): St,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, CoreError> {
    check_key("service name", &name)?;
    let body =
        super::body::read(body, s.cfg.max_body_bytes).map_err(|(st, m)| CoreError::new(st, m))?;
    let (info_json, deregister_after_ms) = registration(&name, &body)?;
    let entry = ServiceEntry {
        info_json,
        last_heartbeat_ms: now_ms(),
        deregister_after_ms,
        mod_index: 0,
    };
    let cmd = Command::ServiceRegister {
        name: name.clone(),
        info_json: entry.info_json.clone(),
        now_ms: entry.last_heartbeat_ms,
        deregister_after_ms,
    };
    match s.node.write_one(cmd).await? {
        // Answered from the command itself: a follower may not have applied it yet.
        R::Ok => Ok(Json(view(&s, &name, &entry))),
        R::Invalid { reason } => Err(CoreError::bad_request(reason)),
        other => Err(CoreError::internal(format!(
            "unexpected response {other:?}"
        ))),
    }
}

async fn heartbeat(State(s): St, Path(name): Path<String>) -> Result<Response, CoreError> {
    check_key("service name", &name)?;
    let now = now_ms();
    match s
        .node
        .write_one(Command::ServiceHeartbeat {
            name: name.clone(),
            now_ms: now,
        })
        .await?
    {
        R::Ok => Ok(Json(
            json!({ "success": true, "name": name, "lastHeartbeat": rfc3339_ms(now) }),
        )
        .into_response()),
        R::NotFound => Err(CoreError::not_found("service not found")),
        other => Err(CoreError::internal(format!(
            "unexpected response {other:?}"
        ))),
    }
}

async fn deregister(State(s): St, Path(name): Path<String>) -> Result<Json<Value>, CoreError> {
    check_key("service name", &name)?;
    match s
        .node
        .write_one(Command::ServiceDeregister { name: name.clone() })
        .await?
    {
        R::Ok => Ok(Json(json!({ "success": true, "name": name }))),
        R::NotFound => Err(CoreError::not_found("service not found")),
        other => Err(CoreError::internal(format!(
            "unexpected response {other:?}"
        ))),
    }
}
