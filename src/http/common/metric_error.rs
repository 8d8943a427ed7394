//! [`PtError`]: the Metric Service's error envelope `{"error":"..."}`, which the points,
//! search and stream areas answer in (and everything else under `/api/` and `/ws/`
//! that is not Prometheus-compatible), with the constructors for bad input, storage
//! failures and internal errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error in the Metric Service's shape.
pub struct PtError(pub StatusCode, pub String);

impl IntoResponse for PtError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// Bad input: 400 with the reason.
pub fn bad(msg: impl Into<String>) -> PtError {
    PtError(StatusCode::BAD_REQUEST, msg.into())
}

/// A refusal of the shared layer (a body not read, no room for a large answer).
impl From<(StatusCode, String)> for PtError {
    fn from((status, msg): (StatusCode, String)) -> Self {
        PtError(status, msg)
    }
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

/// An internal failure: logged in full, answered generically.
pub fn internal(cause: impl std::fmt::Display) -> PtError {
    tracing::error!(error = %cause, "internal error");
    PtError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
}
