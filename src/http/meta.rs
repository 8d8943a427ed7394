//! Metadata endpoints (meta-core, API.md section 2): objects `hash -> {property: value}`
//! with merge, property access, `|`-set add, `ETag` / `If-Match` versions and
//! `?consistency=linearizable`. Input is validated here, before anything is proposed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metacenter_storage::{Command, Limits, Response as R};
use serde::Deserialize;
use serde_json::{json, Value};

use super::coreerr::CoreError;
use crate::server::AppState;

type St = State<Arc<AppState>>;
type Body = Result<Bytes, BytesRejection>;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/meta", get(list))
        .route(
            "/meta/{hash}",
            get(get_object)
                .put(put_object)
                .patch(patch_object)
                .delete(delete_object),
        )
        .route(
            "/meta/{hash}/{*key}",
            get(get_prop)
                .put(put_prop)
                .delete(delete_prop)
                .post(add_member),
        )
}

/// Checks a hash id, property name or set member against the storage limits.
pub fn check_key(what: &str, s: &str) -> Result<(), CoreError> {
    if s.is_empty() {
        return Err(CoreError::bad_request(format!("{what} must not be empty")));
    }
    if s.len() > Limits::MAX_KEY {
        return Err(CoreError::bad_request(format!(
            "{what} longer than {} bytes",
            Limits::MAX_KEY
        )));
    }
    if s.contains('\0') {
        return Err(CoreError::bad_request(format!(
            "{what} must not contain NUL"
        )));
    }
    Ok(())
}

fn check_value(s: &str) -> Result<(), CoreError> {
    if s.len() > Limits::MAX_VALUE {
        return Err(CoreError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("value longer than {} bytes", Limits::MAX_VALUE),
        ));
    }
    Ok(())
}

fn body(state: &AppState, b: Body) -> Result<Bytes, CoreError> {
    super::body::read(b, state.cfg.max_body_bytes).map_err(|(s, m)| CoreError::new(s, m))
}

/// A JSON scalar as a stored string: strings as they are, numbers and booleans as text.
fn scalar(field: &str, v: Value) -> Result<String, CoreError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(CoreError::bad_request(format!(
            "invalid JSON body: `{field}` must be a string, number or boolean"
        ))),
    }
}

/// Parses a merge body: a JSON object of scalars.
fn fields(bytes: &[u8]) -> Result<BTreeMap<String, String>, CoreError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|_| CoreError::bad_request("invalid JSON body"))?;
    let Value::Object(map) = v else {
        return Err(CoreError::bad_request(
            "invalid JSON body: expected an object",
        ));
    };
    if map.len() > Limits::MAX_PROPS {
        return Err(CoreError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("more than {} fields", Limits::MAX_PROPS),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        check_key("property name", &k)?;
        let v = scalar(&k, v)?;
        check_value(&v)?;
        out.insert(k, v);
    }
    Ok(out)
}

/// A property value: `{"value": ...}` or the raw text of the body.
fn single_value(bytes: &[u8]) -> Result<String, CoreError> {
    if let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(bytes) {
        if let Some(v) = m.remove("value") {
            let v = scalar("value", v)?;
            check_value(&v)?;
            return Ok(v);
        }
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CoreError::bad_request("value must be UTF-8 text"))?;
    check_value(text)?;
    Ok(text.to_string())
}

/// The `If-Match` version, if any. Accepts `"12"`, `12` and `W/"12"`; `*` means none.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, CoreError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    if s == "*" {
        return Ok(None);
    }
    let s = s.trim_start_matches("W/").trim_matches('"');
    s.parse().map(Some).map_err(|_| {
        CoreError::bad_request(format!("If-Match must be a version number, got `{s}`"))
    })
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

async fn barrier(
    s: &AppState,
    headers: &HeaderMap,
    query: &Option<String>,
) -> Result<(), CoreError> {
    if super::wants_linearizable(headers, query.as_deref()) {
        s.node.read_barrier().await?;
    }
    Ok(())
}

/// Proposes one command; turns domain outcomes that are errors into responses.
async fn propose(s: &AppState, cmd: Command, missing: &str) -> Result<R, CoreError> {
    match s.node.write_one(cmd).await? {
        R::VersionMismatch { current } => {
            let mut e = CoreError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("version mismatch: current version is {current}"),
            );
            e.message.push_str(if current == 0 {
                " (object does not exist)"
            } else {
                ""
            });
            Err(e)
        }
        R::Invalid { reason } => Err(CoreError::bad_request(reason)),
        R::NotFound => Err(CoreError::not_found(missing)),
        other => Ok(other),
    }
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<usize>,
    after: Option<String>,
}

async fn list(
    State(s): St,
    headers: HeaderMap,
    q: Result<Query<ListParams>, QueryRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, CoreError> {
    let Query(p) =
        q.map_err(|e| CoreError::bad_request(format!("invalid query: {}", e.body_text())))?;
    barrier(&s, &headers, &raw).await?;
    let limit = p.limit.unwrap_or(1000).clamp(1, s.cfg.meta_list_max);
    let page = super::read_store(&s, move |st| st.meta_list(p.after.as_deref(), limit)).await?;
    let mut body = json!({ "hashIds": page.hash_ids, "count": page.hash_ids.len() });
    if let Some(n) = page.next {
        body["next"] = json!(n);
    }
    Ok(Json(body).into_response())
}

async fn get_object(
    State(s): St,
    Path(hash): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, CoreError> {
    check_key("hash id", &hash)?;
    barrier(&s, &headers, &q).await?;
    if let Some(w) = super::watch::parse(q.as_deref()).map_err(CoreError::bad_request)? {
        super::watch::block(&s, w, || s.node.store().meta_watch_index(&hash)).await?;
    }
    let Some(obj) = s.node.store().meta_get(&hash)? else {
        return Err(CoreError::not_found("metadata not found"));
    };
    let mut resp = Json(json!({ "hashId": hash, "metadata": obj.fields })).into_response();
    resp.headers_mut().insert(header::ETAG, etag(obj.version));
    Ok(resp)
}

async fn merge(
    s: &AppState,
    hash: String,
    headers: &HeaderMap,
    b: Body,
    report_updated: bool,
) -> Result<Response, CoreError> {
    check_key("hash id", &hash)?;
    let expect_version = if_match(headers)?;
    let fields = fields(&body(s, b)?)?;
    let cmd = Command::MetaMerge {
        hash: hash.clone(),
        fields,
        expect_version,
    };
    let R::MetaWritten { version, updated } = propose(s, cmd, "metadata not found").await? else {
        return Err(CoreError::internal("unexpected response to merge"));
    };
    let mut out = json!({ "success": true, "hashId": hash, "version": version });
    if report_updated {
        out["updated"] = json!(updated);
    }
    let mut resp = Json(out).into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    Ok(resp)
}

async fn put_object(
    State(s): St,
    Path(hash): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, CoreError> {
    merge(&s, hash, &headers, b, false).await
}

async fn patch_object(
    State(s): St,
    Path(hash): Path<String>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, CoreError> {
    merge(&s, hash, &headers, b, true).await
}

async fn delete_object(
    State(s): St,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response, CoreError> {
    check_key("hash id", &hash)?;
    let cmd = Command::MetaDelete {
        hash: hash.clone(),
        expect_version: if_match(&headers)?,
    };
    let deleted = match s.node.write_one(cmd).await? {
        R::MetaDeleted { deleted } => deleted,
        R::NotFound => 0,
        R::VersionMismatch { current } => {
            return Err(CoreError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("version mismatch: current version is {current}"),
            ))
        }
        other => {
            return Err(CoreError::internal(format!(
                "unexpected response {other:?}"
            )))
        }
    };
    Ok(Json(json!({ "success": true, "hashId": hash, "deleted": deleted })).into_response())
}

async fn get_prop(
    State(s): St,
    Path((hash, key)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, CoreError> {
    check_key("hash id", &hash)?;
    check_key("property name", &key)?;
    barrier(&s, &headers, &q).await?;
    let Some((version, value)) = s.node.store().meta_get_prop(&hash, &key)? else {
        return Err(CoreError::not_found("property not found"));
    };
    let mut resp = ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], value).into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    Ok(resp)
}

async fn put_prop(
    State(s): St,
    Path((hash, key)): Path<(String, String)>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, CoreError> {
    check_key("hash id", &hash)?;
    check_key("property name", &key)?;
    let expect_version = if_match(&headers)?;
    let value = single_value(&body(&s, b)?)?;
    let cmd = Command::MetaMerge {
        hash: hash.clone(),
        fields: BTreeMap::from([(key.clone(), value)]),
        expect_version,
    };
    let R::MetaWritten { version, .. } = propose(&s, cmd, "metadata not found").await? else {
        return Err(CoreError::internal("unexpected response to property write"));
    };
    let mut resp = Json(json!({ "success": true, "hashId": hash, "key": key, "version": version }))
        .into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    Ok(resp)
}

async fn delete_prop(
    State(s): St,
    Path((hash, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, CoreError> {
    check_key("hash id", &hash)?;
    check_key("property name", &key)?;
    let cmd = Command::MetaDeleteProp {
        hash: hash.clone(),
        prop: key.clone(),
        expect_version: if_match(&headers)?,
    };
    propose(&s, cmd, "property not found").await?;
    Ok(Json(json!({ "success": true, "hashId": hash, "key": key, "deleted": 1 })).into_response())
}

/// `POST /meta/{hash}/_add/{key}`: adds the body to a `|`-delimited set.
async fn add_member(
    State(s): St,
    Path((hash, key)): Path<(String, String)>,
    headers: HeaderMap,
    b: Body,
) -> Result<Response, CoreError> {
    let Some(prop) = key.strip_prefix("_add/") else {
        return Err(CoreError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST is only defined for /meta/{hash}/_add/{key}",
        ));
    };
    check_key("hash id", &hash)?;
    check_key("property name", prop)?;
    let member = single_value(&body(&s, b)?)?;
    let member = member.trim().to_string();
    check_key("set member", &member)?;
    if member.contains('|') {
        return Err(CoreError::bad_request("set member must not contain '|'"));
    }
    let cmd = Command::MetaSetAdd {
        hash: hash.clone(),
        prop: prop.to_string(),
        member,
        expect_version: if_match(&headers)?,
    };
    let R::MetaAdded { added, version } = propose(&s, cmd, "metadata not found").await? else {
        return Err(CoreError::internal("unexpected response to set add"));
    };
    let mut resp = Json(json!({ "success": true, "hashId": hash, "added": added })).into_response();
    resp.headers_mut().insert(header::ETAG, etag(version));
    Ok(resp)
}
