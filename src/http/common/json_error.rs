//! [`JsonError`], the error the cluster, metadata, discovery and files areas (and the
//! shared pieces they use) answer with: an [`ApiError`] written as
//! `{"error":"<HTTP status text>","message":"..."}` by [`render::json_error`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::render;

/// An error answered as `{"error":"<HTTP status text>","message":"..."}`.
#[derive(Debug)]
pub struct JsonError(pub ApiError);

impl JsonError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> JsonError {
        ApiError::new(status, message).into()
    }

    pub fn bad_request(message: impl Into<String>) -> JsonError {
        ApiError::bad_request(message).into()
    }

    pub fn not_found(message: impl Into<String>) -> JsonError {
        ApiError::not_found(message).into()
    }

    /// An internal failure: logged in full, answered generically.
    pub fn internal(cause: impl std::fmt::Display) -> JsonError {
        ApiError::internal(cause).into()
    }
}

/// Whatever becomes an [`ApiError`] (raft and storage errors, the shared layer's
/// refusals).
impl<E: Into<ApiError>> From<E> for JsonError {
    fn from(e: E) -> Self {
        JsonError(e.into())
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        render::json_error(&self.0)
    }
}
