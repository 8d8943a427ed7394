//! Metadata endpoints (meta-core, API.md section 2): objects `hash -> {property: value}`
//! with merge, property access, `|`-set add, `ETag` / `If-Match` versions and
//! `?consistency=linearizable`. Input is validated here, before anything is proposed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metacenter_storage::{Command, Response as R};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::body::{self, Body};
use super::common::consistency::wants_linearizable;
use super::common::json_error::JsonError;
use super::common::key::check_key;
use super::common::watch;
use super::openapi::metadata as doc;
use super::openapi::JsonErrorBody as Err;
use crate::config::EdgeLimits;
use crate::oversized::object_bytes;
use crate::state::AppState;
use crate::watches::Topic;

type St = State<Arc<AppState>>;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_object, put_object, patch_object, delete_object))
        .routes(routes!(get_prop, put_prop, delete_prop, add_member))
}

fn check_value(lim: &EdgeLimits, s: &str) -> Result<(), JsonError> {
    if s.len() > lim.value {
        return Err(JsonError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("value longer than {} bytes", lim.value),
        ));
    }
    Ok(())
}

/// Refuses (413) a write that would take object `hash` over `limits.max_object_bytes`;
/// `grown` gives its size after the write from its current properties. Checked against
/// the state this node has applied, so writes racing to one object may each pass.
async fn check_object_size<F>(s: &AppState, hash: &str, grown: F) -> Result<(), JsonError>
where
    F: FnOnce(&BTreeMap<String, String>) -> usize + Send + 'static,
{
    let h = hash.to_string();
    let size = s
        .read_store(move |st| {
            let fields = st.meta_get(&h)?.map(|o| o.fields).unwrap_or_default();
            Ok(grown(&fields))
        })
        .await?;
    let max = s.cfg.limits.object;
    if size > max {
        let msg = format!("object would hold {size} bytes, over the {max}-byte limit");
        return Err(JsonError::new(StatusCode::PAYLOAD_TOO_LARGE, msg));
    }
    Ok(())
}

/// The size of an object after `fields` are merged into `current`.
fn merged_bytes(current: &BTreeMap<String, String>, fields: &BTreeMap<String, String>) -> usize {
    let kept: usize = current
        .iter()
        .filter(|(k, _)| !fields.contains_key(*k))
        .map(|(k, v)| k.len() + v.len())
        .sum();
    kept + object_bytes(fields)
}

fn read_body(state: &AppState, b: Body) -> Result<Bytes, JsonError> {
    Ok(body::read(b, state.cfg.max_body_bytes)?)
}

/// A JSON scalar as a stored string: strings as they are, numbers and booleans as text.
fn scalar(field: &str, v: Value) -> Result<String, JsonError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(JsonError::bad_request(format!(
            "invalid JSON body: `{field}` must be a string, number or boolean"
        ))),
    }
}

/// Parses a merge body: a JSON object of scalars.
pub fn fields(lim: &EdgeLimits, bytes: &[u8]) -> Result<BTreeMap<String, String>, JsonError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| JsonError::bad_request("invalid JSON body"))?;
    let Value::Object(map) = v else {
        return Err(JsonError::bad_request(
            "invalid JSON body: expected an object",
        ));
    };
    if map.len() > lim.properties {
        return Err(JsonError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("more than {} fields", lim.properties),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        check_key(lim, "property name", &k)?;
        let v = scalar(&k, v)?;
        check_value(lim, &v)?;
        out.insert(k, v);
    }
    Ok(out)
}

/// A property value: `{"value": ...}` or the raw text of the body.
pub fn single_value(lim: &EdgeLimits, bytes: &[u8]) -> Result<String, JsonError> {
    if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(bytes) {
        if let Some(v) = m.remove("value") {
            let v = scalar("value", v)?;
            check_value(lim, &v)?;
            return Ok(v);
        }
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| JsonError::bad_request("value must be UTF-8 text"))?;
    check_value(lim, text)?;
    Ok(text.to_string())
}

/// The `If-Match` version, if any. Accepts `"12"`, `12` and `W/"12"`; `*` means none.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, JsonError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    if s == "*" {
        return Ok(None);
    }
    let s = s.trim_start_matches("W/").trim_matches('"');
    s.parse().map(Some).map_err(|_| {
        JsonError::bad_request(format!("If-Match must be a version number, got `{s}`"))
    })
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

async fn barrier(
    s: &AppState,
    headers: &HeaderMap,
    query: &Option<String>,
) -> Result<(), JsonError> {
    if wants_linearizable(headers, query.as_deref()) {
        s.node.read_barrier().await?;
    }
    Ok(())
}

/// Proposes one command; turns domain outcomes that are errors into responses.
async fn propose(s: &AppState, cmd: Command, missing: &str) -> Result<R, JsonError> {
    match s.node.write_one(cmd).await? {
        R::VersionMismatch { current } => {
            let mut e = JsonError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("version mismatch: current version is {current}"),
            );
            e.0.message.push_str(if current == 0 {
                " (object does not exist)"
            } else {
                ""
            });
            Err(e)
        }
        R::Invalid { reason } => Err(JsonError::bad_request(reason)),
        R::NotFound => Err(JsonError::not_found(missing)),
        other => Ok(other),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Page size: default 1000, clamped to 1..=`limits.meta_list_max`.
    limit: Option<usize>,
    /// List hash ids after this one (the `next` of the previous page).
    after: Option<String>,
}

/// Hash ids of all objects, in order, paged
#[utoipa::path(get, path = "/meta", tag = "meta",
    params(ListParams, doc::ConsistencyQuery, doc::ConsistencyHeader),
    responses(
        (status = 200, description = "A page of hash ids", body = doc::HashList),
        (status = 400, description = "Bad query", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn list(
    State(s): St,
    headers: HeaderMap,
    q: Result<Query<ListParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, JsonError> {
    let Query(p) =
        q.map_err(|e| JsonError::bad_request(format!("invalid query: {}", e.body_text())))?;
    barrier(&s, &headers, &raw).await?;
    let room = s.large.admit().await?;
    let limit = p.limit.unwrap_or(1000).clamp(1, s.cfg.meta_list_max);
    let page = s
        .read_store(move |st| st.meta_list(p.after.as_deref(), limit))
        .await?;
    let mut body = json!({ "hashIds": page.hash_ids, "count": page.hash_ids.len() });
    if let Some(n) = page.next {
        body["next"] = json!(n);
    }
    Ok(room.hold(Json(body).into_response()))
}

/// One object's properties; `ETag` carries its version
#[utoipa::path(get, path = "/meta/{hash}", tag = "meta",
    params(("hash" = String, Path, description = "Object id (hash id), 1 to 512 bytes"),
        doc::WatchQuery, doc::ConsistencyQuery, doc::ConsistencyHeader),
    responses(
        (status = 200, description = "The object", body = doc::MetaObject,
            headers(("ETag" = String, description = "The object's version"))),
        (status = 400, description = "Bad hash id or watch parameters", body = Err),
        (status = 404, description = "metadata not found", body = Err),
        (status = 429, description = "Too many blocking queries", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn get_object(
    State(s): St,
    Path(hash): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "hash id", &hash)?;
    barrier(&s, &headers, &q).await?;
    if let Some(w) = watch::parse(q.as_deref()).map_err(JsonError::bad_request)? {
        // An absent object reads the index of the last deletion, so it waits on those.
        let mut topics = vec![Topic::Meta(hash.clone())];
        if !s.node.store().meta_exists(&hash)? {
            topics.push(Topic::AnyMetaDeletion);
        }
        let current = || s.node.store().meta_watch_index(&hash);
        watch::block(&s, w, topics, current).await?;
    }
    let room = s.large.admit().await?;
    let Some(obj) = s.node.store().meta_get(&hash)? else {
        return Err(JsonError::not_found("metadata not found"));
    };
    let mut resp = Json(json!({ "hashId": hash, "metadata": obj.fields })).into_response();
    resp.headers_mut().insert(header::ETAG, etag(obj.version));
    Ok(room.hold(resp))
}

async fn merge(
    s: &AppState,
    hash: String,
    headers: &HeaderMap,
    b: Body,
    report_updated: bool,
) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "hash id", &hash)?;
    let expect_version = if_match(headers)?;
    let fields = fields(&s.cfg.limits, &read_body(s, b)?)?;
    let new = fields.clone();
    check_object_size(s, &hash, move |cur| merged_bytes(cur, &new)).await?;
    let cmd = Command::MetaMerge {
        hash: hash.clone(),
        fields,
        expect_version,
    };
    let R::MetaWritten { version, updated } = propose(s, cmd, "metadata not found").await? else {
        return Err(JsonError::internal("unexpected response to merge"));
    };
    let mut out = json!({ "success": true, "hashId": hash, "version": version });
    if report_updated {
        out["updated"] = json!(updated);
    }
    let mut resp = Json(out).into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    Ok(resp)
}

/// Merge properties into an object (created if missing)
#[utoipa::path(put, path = "/meta/{hash}", tag = "meta",
    params(("hash" = String, Path, description = "Object id (hash id), 1 to 512 bytes"),
        doc::IfMatch), request_body = doc::MetaFields,
    responses(
        (status = 200, description = "Merged", body = doc::MetaWritten,
            headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Bad hash id, body or If-Match", body = Err),
        (status = 412, description = "If-Match version mismatch", body = Err),
        (status = 413, description = "Body, value, field count or object size over the limits", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn put_object(
    State(s): St,
    Path(hash): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, JsonError> {
    merge(&s, hash, &headers, b, false).await
}

/// Merge properties into an object; reports how many changed
#[utoipa::path(patch, path = "/meta/{hash}", tag = "meta",
    params(("hash" = String, Path, description = "Object id (hash id), 1 to 512 bytes"),
        doc::IfMatch), request_body = doc::MetaFields,
    responses(
        (status = 200, description = "Merged", body = doc::MetaWritten,
            headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "Bad hash id, body or If-Match", body = Err),
        (status = 412, description = "If-Match version mismatch", body = Err),
        (status = 413, description = "Body, value, field count or object size over the limits", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn patch_object(
    State(s): St,
    Path(hash): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, JsonError> {
    merge(&s, hash, &headers, b, true).await
}

/// Delete an object (deleted = 0 when there was none)
#[utoipa::path(delete, path = "/meta/{hash}", tag = "meta",
    params(("hash" = String, Path, description = "Object id (hash id), 1 to 512 bytes"),
        doc::IfMatch),
    responses(
        (status = 200, description = "Deleted", body = doc::MetaDeleted),
        (status = 400, description = "Bad hash id or If-Match", body = Err),
        (status = 412, description = "If-Match version mismatch", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn delete_object(
    State(s): St,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "hash id", &hash)?;
    let cmd = Command::MetaDelete {
        hash: hash.clone(),
        expect_version: if_match(&headers)?,
    };
    let deleted = match s.node.write_one(cmd).await? {
        R::MetaDeleted { deleted } => deleted,
        R::NotFound => 0,
        R::VersionMismatch { current } => {
            return Err(JsonError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("version mismatch: current version is {current}"),
            ))
        }
        other => {
            return Err(JsonError::internal(format!(
                "unexpected response {other:?}"
            )))
        }
    };
    Ok(Json(json!({ "success": true, "hashId": hash, "deleted": deleted })).into_response())
}

/// One property's value, as text
#[utoipa::path(get, path = "/meta/{hash}/{*key}", tag = "meta",
    params(("hash" = String, Path, description = "Object id (hash id), 1 to 512 bytes"),
        ("key" = String, Path, description = "Property name; may contain `/`"),
        doc::ConsistencyQuery, doc::ConsistencyHeader),
    responses(
        (status = 200, description = "The value", body = String, content_type = "text/plain; charset=utf-8",
            headers(("ETag" = String, description = "The object's version"))),
        (status = 400, description = "Bad hash id or key", body = Err),
        (status = 404, description = "property not found", body = Err),
        (status = 503, description = "No leader for a linearizable read", body = Err)))]
async fn get_prop(
    State(s): St,
    Path((hash, key)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "hash id", &hash)?;
    check_key(&s.cfg.limits, "property name", &key)?;
    barrier(&s, &headers, &q).await?;
    let Some((version, value)) = s.node.store().meta_get_prop(&hash, &key)? else {
        return Err(JsonError::not_found("property not found"));
    };
    let mut resp = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], value).into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    Ok(resp)
}

/// Set one property: `{"value": ...}` or the raw text of the body
#[utoipa::path(put, path = "/meta/{hash}/{*key}", tag = "meta",
    params(("hash" = String, Path, description = "Object id (hash id), 1 to 512 bytes"),
        ("key" = String, Path, description = "Property name; may contain `/`"),
        doc::IfMatch),
    request_body(content((doc::PropValue = "application/json"), (String = "text/plain"))),
    responses(
        (status = 200, description = "Set", body = doc::PropWritten,
            headers(("ETag" = String, description = "The new version"))),
        (status = 404, description = "If-Match given and no such object", body = Err),
        (status = 400, description = "Bad hash id, body or If-Match", body = Err),
        (status = 412, description = "If-Match version mismatch", body = Err),
        (status = 413, description = "Body, value, field count or object size over the limits", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn put_prop(
    State(s): St,
    Path((hash, key)): Path<(String, String)>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "hash id", &hash)?;
    check_key(&s.cfg.limits, "property name", &key)?;
    let expect_version = if_match(&headers)?;
    let value = single_value(&s.cfg.limits, &read_body(&s, b)?)?;
    let fields = BTreeMap::from([(key.clone(), value)]);
    let new = fields.clone();
    check_object_size(&s, &hash, move |cur| merged_bytes(cur, &new)).await?;
    let cmd = Command::MetaMerge {
        hash: hash.clone(),
        fields,
        expect_version,
    };
    let R::MetaWritten { version, .. } = propose(&s, cmd, "metadata not found").await? else {
        return Err(JsonError::internal("unexpected response to property write"));
    };
    let mut resp = Json(json!({ "success": true, "hashId": hash, "key": key, "version": version }))
        .into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    Ok(resp)
}

/// Delete one property
#[utoipa::path(delete, path = "/meta/{hash}/{*key}", tag = "meta",
    params(("hash" = String, Path, description = "Object id (hash id), 1 to 512 bytes"),
        ("key" = String, Path, description = "Property name; may contain `/`"),
        doc::IfMatch),
    responses(
        (status = 200, description = "Deleted", body = doc::PropDeleted),
        (status = 400, description = "Bad hash id, key or If-Match", body = Err),
        (status = 404, description = "property not found", body = Err),
        (status = 412, description = "If-Match version mismatch", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn delete_prop(
    State(s): St,
    Path((hash, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, JsonError> {
    check_key(&s.cfg.limits, "hash id", &hash)?;
    check_key(&s.cfg.limits, "property name", &key)?;
    let cmd = Command::MetaDeleteProp {
        hash: hash.clone(),
        prop: key.clone(),
        expect_version: if_match(&headers)?,
    };
    propose(&s, cmd, "property not found").await?;
    Ok(Json(json!({ "success": true, "hashId": hash, "key": key, "deleted": 1 })).into_response())
}

/// `POST /meta/{hash}/_add/{prop}`: add the body to the `|`-delimited set in `prop`
///
/// Only keys of the form `_add/{prop}` take POST; others answer 405.
#[utoipa::path(post, path = "/meta/{hash}/{*key}", tag = "meta",
    params(("hash" = String, Path, description = "Object id (hash id), 1 to 512 bytes"),
        ("key" = String, Path, description = "`_add/` then the set property's name"), doc::IfMatch),
    request_body(content((doc::PropValue = "application/json"), (String = "text/plain"))),
    responses(
        (status = 200, description = "Added (or already present)", body = doc::MemberAdded,
            headers(("ETag" = String, description = "The new version"))),
        (status = 404, description = "If-Match given and no such object", body = Err),
        (status = 405, description = "The key does not start with `_add/`", body = Err),
        (status = 400, description = "Bad hash id, body or If-Match", body = Err),
        (status = 412, description = "If-Match version mismatch", body = Err),
        (status = 413, description = "Body, value, field count or object size over the limits", body = Err),
        (status = 503, description = "No leader available", body = Err)))]
async fn add_member(
    State(s): St,
    Path((hash, key)): Path<(String, String)>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, JsonError> {
    let Some(prop) = key.strip_prefix("_add/") else {
        return Err(JsonError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST is only defined for /meta/{hash}/_add/{key}",
        ));
    };
    check_key(&s.cfg.limits, "hash id", &hash)?;
    check_key(&s.cfg.limits, "property name", prop)?;
    let member = single_value(&s.cfg.limits, &read_body(&s, b)?)?;
    let member = member.trim().to_string();
    check_key(&s.cfg.limits, "set member", &member)?;
    if member.contains('|') {
        return Err(JsonError::bad_request("set member must not contain '|'"));
    }
    let (p, m) = (prop.to_string(), member.clone());
    check_object_size(&s, &hash, move |cur| {
        let size = object_bytes(cur);
        match cur.get(&p) {
            Some(set) if set.split('|').any(|x| x == m) => size,
            Some(_) => size + 1 + m.len(),
            None => size + p.len() + m.len(),
        }
    })
    .await?;
    let cmd = Command::MetaSetAdd {
        hash: hash.clone(),
        prop: prop.to_string(),
        member,
        expect_version: if_match(&headers)?,
    };
    let R::MetaAdded { added, version } = propose(&s, cmd, "metadata not found").await? else {
        return Err(JsonError::internal("unexpected response to set add"));
    };
    let mut resp = Json(json!({ "success": true, "hashId": hash, "added": added })).into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    Ok(resp)
}
