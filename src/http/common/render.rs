//! One renderer per error envelope, each writing an [`ApiError`] in the shape the
//! clients of an area have always read, so that each wire shape lives in one place:
//!
//! - meta-core's `{"error":"<status text>","message":"..."}` by [`json_error`]
//!   (cluster, metadata, discovery, files, and every path no other envelope claims);
//! - the envelope `{"status":"ERROR","error":{"code","message","reason"},"data":null,
//!   "trace_id"}` by [`envelope`] (the load area and `/log/level`), its `error`
//!   object by [`envelope_error`];
//! - the Metric Service's `{"error":"..."}` by [`metric_service`] (points, search,
//!   streams);
//! - Prometheus' `{"status":"error","errorType":"...","error":"..."}` by
//!   [`prometheus`] (the Prometheus-compatible discovery).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, Code};

/// `{"error":"<HTTP status text>","message":"..."}`.
pub fn json_error(e: &ApiError) -> Response {
    let text = e.status.canonical_reason().unwrap_or("Error");
    let body = json!({ "error": text, "message": e.message });
    (e.status, Json(body)).into_response()
}

/// The numeric code and the title (the `message` field) of each kind in the
/// envelope; the HTTP status is `code / 100000`. A body over the limit has a code of
/// its own and the title of any invalid input.
fn envelope_code(code: Code) -> (u64, &'static str) {
    match code {
        Code::InvalidInput => (40001400, "Invalid input parameters"),
        Code::InvalidJson => (40001400, "Invalid input parameters: invalid JSON format"),
        Code::Unauthorized => (40101401, "Unauthorized"),
        Code::Forbidden => (40301403, "Forbidden"),
        Code::NotFound => (40401404, "Resource not found"),
        Code::MethodNotAllowed => (40501405, "Method not allowed"),
        Code::TooLarge => (41301413, "Invalid input parameters"),
        Code::Unavailable => (50301503, "Service unavailable"),
        Code::Internal => (50001000, "Internal server error"),
    }
}

/// The `error` object of the envelope, `{"code","message","reason"}`, also each
/// failed operation's in a load batch. `reason` is the error's message, except that an
/// internal error gives none (its cause is in the log).
pub fn envelope_error(e: &ApiError) -> Value {
    let (code, title) = envelope_code(e.code);
    let reason = if e.code == Code::Internal {
        ""
    } else {
        &e.message
    };
    json!({ "code": code, "message": title, "reason": reason })
}

/// A failed answer in the envelope. Its HTTP status is its code's (`code /
/// 100000`), as the envelope defines it: a status with no code of its own answers as
/// the nearest one, 400 for the client's errors and 500 for the node's.
pub fn envelope(e: &ApiError, trace_id: &str) -> Response {
    let (code, _) = envelope_code(e.code);
    let status =
        StatusCode::from_u16((code / 100000) as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({ "status": "ERROR", "error": envelope_error(e), "data": null, "trace_id": trace_id });
    (status, Json(body)).into_response()
}

/// `{"error":"..."}`. Raft's refusals are given in raft's own words ("no leader
/// available: ...", "raft stopped: ..."), as the Metric Service has always given them,
/// where the other envelopes give only the cause; a storage failure reads the same in
/// every envelope.
pub fn metric_service(e: &ApiError) -> Response {
    use metacenter_raft::Error as E;
    let raft_words = match e.source_as::<E>() {
        Some(r @ (E::Unavailable(_) | E::NotLeader { .. } | E::Fatal(_))) => Some(r.to_string()),
        _ => None,
    };
    let message = raft_words.as_deref().unwrap_or(&e.message);
    (e.status, Json(json!({ "error": message }))).into_response()
}

/// `{"status":"error","errorType":...,"error":...}`, `errorType` as Prometheus names
/// it where it has a name for the status.
pub fn prometheus(e: &ApiError) -> Response {
    let kind = match e.status {
        StatusCode::BAD_REQUEST => "bad_data".to_string(),
        StatusCode::NOT_FOUND => "not_found".to_string(),
        StatusCode::SERVICE_UNAVAILABLE => "unavailable".to_string(),
        s if s.is_server_error() => "internal".to_string(),
        s => s
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "_"),
    };
    let body = json!({"status": "error", "errorType": kind, "error": e.message});
    (e.status, Json(body)).into_response()
}
