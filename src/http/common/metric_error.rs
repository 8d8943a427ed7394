//! [`MetricError`], the error the points, search and stream areas answer with (and
//! everything else under `/api/` and `/ws/` that is not Prometheus-compatible): an
//! [`ApiError`] written as `{"error":"..."}` by [`render::metric_service`], with the
//! constructors for bad input and internal errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::render;

/// An error answered as `{"error":"..."}`.
#[derive(Debug)]
pub struct MetricError(pub ApiError);

impl MetricError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> MetricError {
        ApiError::new(status, message).into()
    }
}

/// Bad input: 400 with the reason.
pub fn bad(message: impl Into<String>) -> MetricError {
    ApiError::bad_request(message).into()
}

/// An internal failure: logged in full, answered generically.
pub fn internal(cause: impl std::fmt::Display) -> MetricError {
    ApiError::internal(cause).into()
}

/// Whatever becomes an [`ApiError`] (raft and storage errors, the shared layer's
/// refusals).
impl<E: Into<ApiError>> From<E> for MetricError {
    fn from(e: E) -> Self {
        MetricError(e.into())
    }
}

impl IntoResponse for MetricError {
    fn into_response(self) -> Response {
        render::metric_service(&self.0)
    }
}
