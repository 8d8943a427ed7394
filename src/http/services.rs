//! Service discovery (meta-core, API.md section 3): register, heartbeat, deregister,
//! list and get, with `stale` status derived at read time from `lastHeartbeat` and
//! `services.stale_threshold_ms`, and blocking queries on the list and on one service.
//! The receiving node stamps `lastHeartbeat` into the command; apply reads no clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metacenter_storage::{Command, Response as R, ServiceEntry};
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::body::{self, Body};
use super::common::consistency::wants_linearizable;
use super::common::json_error::JsonError;
use super::common::key::check_key;
use super::common::large::PAGE_BYTES;
use super::common::response::json_bytes_response;
use super::common::watch;
use super::openapi::metadata as doc;
use super::openapi::JsonErrorBody as Err;
use crate::clock::{now_ms, rfc3339_ms};
use crate::config::EdgeLimits;
use crate::state::AppState;
use crate::watches::Topic;

type St = State<Arc<AppState>>;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one, register, deregister))
        .routes(routes!(heartbeat))
}

/// Writes the ServiceInfo clients see: as registered, plus `name`, `lastHeartbeat`,
/// `deregisterAfterMs` if set, and `status` = `stale` when the last heartbeat is older
/// than the threshold (else the registration's own `status`, else `healthy`).
///
/// Written straight from the stored text: `info_json` is serde_json's own compact
/// output with sorted keys, so its values are copied as they are (`RawValue`) and
/// merged with the added keys, the same bytes as building and serialising a `Value`
/// (a unit test pins this), without a `Value` tree per service.
struct ViewWriter {
    now: u64,
    threshold: u64,
    stale: Box<RawValue>,
    healthy: Box<RawValue>,
}

impl ViewWriter {
    fn new(now: u64, threshold: u64) -> serde_json::Result<ViewWriter> {
        Ok(ViewWriter {
            now,
            threshold,
            stale: RawValue::from_string(r#""stale""#.into())?,
            healthy: RawValue::from_string(r#""healthy""#.into())?,
        })
    }

    /// Appends the view of service `name` to `buf`.
    fn write(&self, buf: &mut Vec<u8>, name: &str, e: &ServiceEntry) -> serde_json::Result<()> {
        let mut info: BTreeMap<String, &RawValue> =
            serde_json::from_str(&e.info_json).unwrap_or_default();
        let name = to_raw_value(name)?;
        let beat = to_raw_value(&rfc3339_ms(e.last_heartbeat_ms))?;
        let after = e
            .deregister_after_ms
            .map(|a| to_raw_value(&a))
            .transpose()?;
        info.insert("name".into(), &name);
        info.insert("lastHeartbeat".into(), &beat);
        if self.now.saturating_sub(e.last_heartbeat_ms) > self.threshold {
            info.insert("status".into(), &self.stale);
        } else {
            info.entry("status".into()).or_insert(&self.healthy);
        }
        if let Some(after) = &after {
            info.insert("deregisterAfterMs".into(), after);
        }
        serde_json::to_writer(buf, &info)
    }
}

/// One service's view as the answer, stale as of now.
fn view_response(s: &AppState, name: &str, e: &ServiceEntry) -> Response {
    let body = ViewWriter::new(now_ms(), s.cfg.stale_threshold_ms).and_then(|w| {
        let mut buf = Vec::with_capacity(64 + e.info_json.len());
        w.write(&mut buf, name, e).map(|()| buf)
    });
    json_bytes_response(StatusCode::OK, body)
}

/// One page of `GET /services`: at most `limit` services and about [`PAGE_BYTES`] of
/// them.
struct Page {
    limit: usize,
    now: u64,
    threshold: u64,
}

impl Page {
    /// `{"count":N,"services":[...]}` with the view of each service of the page, and
    /// `"next"` (the last name) when services remain after it.
    fn write<'a>(
        &self,
        mut services: impl Iterator<Item = (&'a str, &'a ServiceEntry)>,
    ) -> serde_json::Result<Vec<u8>> {
        let w = ViewWriter::new(self.now, self.threshold)?;
        let mut views = Vec::with_capacity(64 + 160 * self.limit.min(1024));
        let (mut count, mut last) = (0usize, "");
        while count < self.limit && views.len() < PAGE_BYTES {
            let Some((name, e)) = services.next() else {
                break;
            };
            if count > 0 {
                views.push(b',');
            }
            w.write(&mut views, name, e)?;
            (count, last) = (count + 1, name);
        }
        let mut buf = Vec::with_capacity(views.len() + 64 + last.len());
        buf.extend_from_slice(format!(r#"{{"count":{count},"services":["#).as_bytes());
        buf.extend_from_slice(&views);
        buf.push(b']');
        if services.next().is_some() {
            buf.extend_from_slice(b",\"next\":");
            serde_json::to_writer(&mut buf, last)?;
        }
        buf.push(b'}');
        Ok(buf)
    }
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size: default 1000, clamped to 1..=`limits.meta_list_max`; a page also ends
    /// after about 4 MiB of services.
    limit: Option<usize>,
    /// List the services named after this one (the `next` of the previous page).
    after: Option<String>,
}

fn list_params(q: Option<&str>, max: usize) -> Result<(usize, Option<String>), JsonError> {
    let p: ListParams = serde_urlencoded::from_str(q.unwrap_or(""))
        .map_err(|e| JsonError::bad_request(format!("bad `limit` or `after`: {e}")))?;
    Ok((p.limit.unwrap_or(1000).clamp(1, max), p.after))
}

fn watch_params(q: &Option<String>) -> Result<Option<watch::Watch>, JsonError> {
    watch::parse(q.as_deref()).map_err(JsonError::bad_request)
}

/// Every registered service
#[utoipa::path(get, path = "/services", tag = "services",
    params(ListParams, doc::WatchQuery, doc::ConsistencyQuery, doc::ConsistencyHeader),
    responses(
        (status = 200, description = "The services, a page at a time, by name", body = doc::ServiceList),
        (status = 400, description = "Bad watch parameters", body = Err),
        (status = 429, description = "Too many blocking queries", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn list(
    State(s): St,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, JsonError> {
    let (limit, after) = list_params(q.as_deref(), s.cfg.meta_list_max)?;
    if wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    if let Some(w) = watch_params(&q)? {
        let topics = vec![Topic::AnyService];
        watch::block(&s, w, topics, || s.node.store().services_index()).await?;
    }
    let room = s.large.admit().await?;
    // A snapshot, taken in O(1): no scan, and apply is not held off while it is read.
    let list = s.node.store().services();
    // Rendering 10,000 services takes milliseconds: off the async workers, where it
    // would hold up every other connection and raft task sharing the worker.
    let page = Page {
        limit,
        now: now_ms(),
        threshold: s.cfg.stale_threshold_ms,
    };
    let body = tokio::task::spawn_blocking(move || page.write(list.iter_after(after.as_deref())))
        .await
        .map_err(|e| JsonError::internal(format!("rendering the service list: {e}")))?;
    Ok(room.hold(json_bytes_response(StatusCode::OK, body)))
}

/// One service
#[utoipa::path(get, path = "/services/{name}", tag = "services",
    params(("name" = String, Path, description = "Service name, 1 to 512 bytes"),
        doc::WatchQuery, doc::ConsistencyQuery, doc::ConsistencyHeader),
    responses(
        (status = 200, description = "The service", body = doc::ServiceView),
        (status = 400, description = "Bad name or watch parameters", body = Err),
        (status = 404, description = "service not found", body = Err),
        (status = 429, description = "Too many blocking queries", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn get_one(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "service name", &name)?;
    if wants_linearizable(&headers, q.as_deref()) {
        s.node.read_barrier().await?;
    }
    if let Some(w) = watch_params(&q)? {
        let store = s.node.store();
        // An absent service reads the list's index (below), so it waits on the list.
        let mut topics = vec![Topic::Service(name.clone())];
        if store.service(&name)?.is_none() {
            topics.push(Topic::AnyService);
        }
        watch::block(&s, w, topics, || match store.service(&name)? {
            Some(e) => Ok(e.mod_index),
            None => store.services_index(),
        })
        .await?;
    }
    match s.node.store().service(&name)? {
        Some(e) => Ok(view_response(&s, &name, &e)),
        None => Err(JsonError::not_found("service not found")),
    }
}

/// Validates a registration body: a JSON object whose `name`, if present, matches.
pub fn registration(
    lim: &EdgeLimits,
    name: &str,
    body: &[u8],
) -> Result<(String, Option<u64>), JsonError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| JsonError::bad_request("invalid JSON body"))?;
    let Value::Object(mut info) = v else {
        return Err(JsonError::bad_request(
            "invalid JSON body: expected a ServiceInfo object",
        ));
    };
    if let Some(n) = info.get("name") {
        if n.as_str() != Some(name) {
            return Err(JsonError::bad_request(
                "`name` in the body must match the path",
            ));
        }
    }
    let after = match info.remove("deregisterAfterMs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            JsonError::bad_request("`deregisterAfterMs` must be a non-negative integer")
        })?),
    };
    info.remove("lastHeartbeat");
    let text = serde_json::to_string(&info).map_err(JsonError::internal)?;
    if text.len() > lim.value {
        let msg = format!("ServiceInfo larger than {} bytes", lim.value);
        return Err(JsonError::bad_request(msg));
    }
    Ok((text, after))
}

/// Register (or re-register) a service; `lastHeartbeat` is stamped by the node
#[utoipa::path(put, path = "/services/{name}", tag = "services",
    params(("name" = String, Path, description = "Service name, 1 to 512 bytes")),
    request_body = doc::ServiceInfo,
    responses(
        (status = 200, description = "Registered", body = doc::ServiceView),
        (status = 400, description = "Bad name or body", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes`", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn register(State(s): St, Path(name): Path<String>, b: Body) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "service name", &name)?;
    let body = body::read(b, s.cfg.max_body_bytes)?;
    let (info_json, deregister_after_ms) = registration(&s.cfg.limits, &name, &body)?;
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
        R::Ok => Ok(view_response(&s, &name, &entry)),
        R::Invalid { reason } => Err(JsonError::bad_request(reason)),
        other => Err(JsonError::internal(format!(
            "unexpected response {other:?}"
        ))),
    }
}

/// Refresh a service's `lastHeartbeat`
#[utoipa::path(post, path = "/services/{name}/heartbeat", tag = "services",
    params(("name" = String, Path, description = "Service name, 1 to 512 bytes")),
    responses(
        (status = 200, description = "Refreshed", body = doc::Heartbeat),
        (status = 400, description = "Bad name", body = Err),
        (status = 404, description = "service not found", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn heartbeat(State(s): St, Path(name): Path<String>) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "service name", &name)?;
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
        R::NotFound => Err(JsonError::not_found("service not found")),
        other => Err(JsonError::internal(format!(
            "unexpected response {other:?}"
        ))),
    }
}

/// Deregister a service (graceful shutdown)
#[utoipa::path(delete, path = "/services/{name}", tag = "services",
    params(("name" = String, Path, description = "Service name, 1 to 512 bytes")),
    responses(
        (status = 200, description = "Deregistered", body = doc::Deregistered),
        (status = 400, description = "Bad name", body = Err),
        (status = 404, description = "service not found", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn deregister(State(s): St, Path(name): Path<String>) -> Result<Json<Value>, JsonError> {
    check_key(&s.cfg.limits, "service name", &name)?;
    match s
        .node
        .write_one(Command::ServiceDeregister { name: name.clone() })
        .await?
    {
        R::Ok => Ok(Json(json!({ "success": true, "name": name }))),
        R::NotFound => Err(JsonError::not_found("service not found")),
        other => Err(JsonError::internal(format!(
            "unexpected response {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    /// The view as it was built before [`ViewWriter`]: a `Value` per service.
    fn view_at(now: u64, threshold: u64, name: &str, e: &ServiceEntry) -> Value {
        let mut info: Map<String, Value> = serde_json::from_str(&e.info_json).unwrap_or_default();
        info.insert("name".into(), json!(name));
        info.insert(
            "lastHeartbeat".into(),
            json!(rfc3339_ms(e.last_heartbeat_ms)),
        );
        if now.saturating_sub(e.last_heartbeat_ms) > threshold {
            info.insert("status".into(), json!("stale"));
        } else if !info.contains_key("status") {
            info.insert("status".into(), json!("healthy"));
        }
        if let Some(after) = e.deregister_after_ms {
            info.insert("deregisterAfterMs".into(), json!(after));
        }
        Value::Object(info)
    }

    fn entry(body: &str, last: u64, after: Option<u64>) -> ServiceEntry {
        let lim = EdgeLimits::default();
        let (info_json, _) = registration(&lim, "svc", body.as_bytes()).expect("valid body");
        ServiceEntry {
            info_json,
            last_heartbeat_ms: last,
            deregister_after_ms: after,
            mod_index: 3,
        }
    }

    #[test]
    fn the_written_list_is_the_serialised_views() {
        let bodies = [
            "{}",
            r#"{"version":"1.2","api":"http://10.0.0.5:9000","status":"draining"}"#,
            r#"{"zeta":[1, 2.5, -3e-7, {"b": null, "a": true}], "a\"q": "é\u00e9\n", "n": 18446744073709551615}"#,
            r#"{"name":"svc","status":"ok","x":{"y":{"z":[]}}}"#,
        ];
        let mut services = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            for (last, after) in [(1_000, None), (90_000, Some(30_000))] {
                services.push((format!("svc-{i}-{last}"), entry(body, last, after)));
            }
        }
        let (now, threshold) = (70_000, 60_000);
        let items = || services.iter().map(|(n, e)| (n.as_str(), e));
        for n in [1, 3, services.len()] {
            let views: Vec<Value> = items()
                .take(n)
                .map(|(n, e)| view_at(now, threshold, n, e))
                .collect();
            let views = serde_json::to_string(&views).unwrap();
            let next = match services.get(n) {
                Some(_) => format!(r#","next":"{}""#, services[n - 1].0),
                None => String::new(),
            };
            let want = format!(r#"{{"count":{n},"services":{views}{next}}}"#);
            let page = Page {
                limit: n,
                now,
                threshold,
            };
            let got = page.write(items()).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), want);
        }
    }
}
