//! Prometheus' error envelope, `{"status":"error","errorType":...,"error":...}`, which
//! the Prometheus-compatible discovery routes answer in.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error in Prometheus' envelope; `errorType` as Prometheus names it where it has
/// a name for the status.
pub fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let kind = match status {
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
    let body = json!({"status": "error", "errorType": kind, "error": msg.into()});
    (status, Json(body)).into_response()
}
