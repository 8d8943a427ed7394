//! Answers every area writes: JSON written into one buffer ([`json_response`],
//! [`json_bytes_response`]), and an error in the envelope of the area a path belongs
//! to ([`area_error`]) for answers given before any handler runs.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::headers::TraceId;
use super::render;
use super::routes::Shape;

/// `value` as a JSON response with `status`, written into one buffer of about
/// `capacity` bytes (axum's `Json` starts at 128 bytes and grows by copying, which was a
/// large part of answering a page of 10,000 points).
pub fn json_response<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
    capacity: usize,
) -> Response {
    let mut buf = Vec::with_capacity(capacity);
    let written = serde_json::to_writer(&mut buf, value).map(|()| buf);
    json_bytes_response(status, written)
}

/// JSON text already written as a response with `status`; a failed write answers 500.
pub fn json_bytes_response(status: StatusCode, body: serde_json::Result<Vec<u8>>) -> Response {
    match body {
        Ok(buf) => {
            let json = HeaderValue::from_static("application/json");
            (status, [(header::CONTENT_TYPE, json)], buf).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "serialising an answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An error in the envelope of the area `req`'s path belongs to ([`Shape::of`]):
/// the envelope (with the request's trace id), Prometheus', the Metric Service's or
/// meta-core's.
pub fn area_error(req: &Request, e: ApiError) -> Response {
    match Shape::of(req.uri().path()) {
        Shape::Prometheus => render::prometheus(&e),
        Shape::Envelope => {
            let trace = req.extensions().get::<TraceId>().map(|t| t.0.as_str());
            render::envelope(&e, trace.unwrap_or_default())
        }
        Shape::MetricService => render::metric_service(&e),
        Shape::JsonError => render::json_error(&e),
    }
}
