//! Request bodies read as bytes, with the body-limit and read failures turned into
//! the caller's error type (each area has its own envelope).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;

/// Status and message for a body that could not be read (413 over the limit).
pub fn rejection(r: BytesRejection, limit: usize) -> (StatusCode, String) {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        (status, format!("request body larger than {limit} bytes"))
    } else if timed_out(&r) {
        let msg = "request body not received within limits.body_read_timeout_ms";
        (StatusCode::REQUEST_TIMEOUT, msg.into())
    } else {
        (status, format!("could not read request body: {r}"))
    }
}

/// The body, or the status and message of why it could not be read.
pub fn read(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, (StatusCode, String)> {
    body.map_err(|r| rejection(r, limit))
}

/// Whether the body read failed because the client was too slow
/// ([`tower_http::timeout::RequestBodyDeadlineLayer`]).
fn timed_out(r: &BytesRejection) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(err) = e {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        e = err.source();
    }
    false
}
