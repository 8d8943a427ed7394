//! meta-core's error envelope, `{"error":"<HTTP status text>","message":"..."}`, which
//! the cluster, metadata, discovery and files areas answer in, and the mapping of raft
//! and storage errors and of the shared layer's refusals onto it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answered in meta-core's shape.
#[derive(Debug)]
pub struct CoreError {
    pub status: StatusCode,
    pub message: String,
}

impl CoreError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> CoreError {
        CoreError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> CoreError {
        CoreError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> CoreError {
        CoreError::new(StatusCode::NOT_FOUND, message)
    }

    /// The node's storage failed (disk full, I/O error, damaged data): 503, since the
    /// node cannot serve until an operator acts; other nodes of the cluster can.
    pub fn storage(cause: impl std::fmt::Display) -> CoreError {
        tracing::error!(error = %cause, "storage failure");
        CoreError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage failure: {cause}"),
        )
    }

    /// An internal failure: logged in full, answered generically.
    pub fn internal(cause: impl std::fmt::Display) -> CoreError {
        tracing::error!(error = %cause, "internal error");
        CoreError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for CoreError {
    fn into_response(self) -> Response {
        let text = self.status.canonical_reason().unwrap_or("Error");
        let body = serde_json::json!({ "error": text, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// A refusal of the shared layer (a body not read, no room for a large answer).
impl From<(StatusCode, String)> for CoreError {
    fn from((status, message): (StatusCode, String)) -> Self {
        CoreError::new(status, message)
    }
}

impl From<metacenter_raft::Error> for CoreError {
    fn from(e: metacenter_raft::Error) -> Self {
        use metacenter_raft::Error as E;
        match e {
            E::Unavailable(m) => CoreError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            E::NotLeader { .. } => {
                CoreError::new(StatusCode::SERVICE_UNAVAILABLE, "no leader available")
            }
            E::Invalid(m) => CoreError::bad_request(m),
            E::Fatal(m) => CoreError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            E::Storage(m) => CoreError::storage(m),
        }
    }
}

impl From<metacenter_storage::Error> for CoreError {
    fn from(e: metacenter_storage::Error) -> Self {
        CoreError::storage(e)
    }
}
