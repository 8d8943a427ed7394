//! Request bodies: read as bytes with the body-limit and read failures told apart, and
//! JSON object bodies. Failures are a status and a message; each area answers them in
//! its own envelope.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// A body as a handler receives it: its bytes, or why axum could not read them.
pub type Body = Result<Bytes, BytesRejection>;

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
pub fn read(body: Body, limit: usize) -> Result<Bytes, (StatusCode, String)> {
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

/// A body that must be a JSON object; an empty (or all-whitespace) body is the empty
/// object. A body axum could not read keeps axum's status and text.
pub fn json_object(body: Body) -> Result<Map<String, Value>, (StatusCode, String)> {
    let bytes = body.map_err(|e| (e.status(), e.body_text()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("the body must be a JSON object".into())),
        Err(e) => Err(bad(format!("invalid JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects() {
        let obj = |s: &'static str| json_object(Ok(Bytes::from_static(s.as_bytes())));
        assert_eq!(obj(" \n").unwrap(), Map::new());
        assert_eq!(obj(r#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(obj("[1]").unwrap_err().1, "the body must be a JSON object");
        let (status, msg) = obj("{").unwrap_err();
        assert!(status == StatusCode::BAD_REQUEST && msg.starts_with("invalid JSON: "));
    }
}
