//! meta-core's error envelope, `{"error":"<HTTP status text>","message":"..."}`, used by
//! the cluster and metadata areas, and the mapping of raft errors onto it.

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
