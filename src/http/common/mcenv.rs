//! Metadata Center's envelope, which the load area and `/log/level` answer in:
//! `{"status":"OK"|"ERROR","error":null|{"code","message","reason"},"data":...,"trace_id":"..."}`
//! with HTTP status = `code / 100000`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Error codes; the HTTP status is `code / 100000`.
pub mod code {
    pub const INVALID_INPUT: u64 = 40001400;
    pub const UNAUTHORIZED: u64 = 40101401;
    pub const FORBIDDEN: u64 = 40301403;
    pub const NOT_FOUND: u64 = 40401404;
    pub const METHOD_NOT_ALLOWED: u64 = 40501405;
    pub const TOO_LARGE: u64 = 41301413;
    pub const INTERNAL: u64 = 50001000;
    pub const UNAVAILABLE: u64 = 50301503;
}

/// A failed answer in the envelope.
#[derive(Debug, Clone)]
pub struct McError {
    pub code: u64,
    pub message: String,
    pub reason: String,
}

impl McError {
    pub fn new(code: u64, message: impl Into<String>, reason: impl Into<String>) -> McError {
        McError {
            code,
            message: message.into(),
            reason: reason.into(),
        }
    }

    /// Failed validation: message "Invalid input parameters", `reason` says why.
    pub fn invalid(reason: impl Into<String>) -> McError {
        McError::new(code::INVALID_INPUT, "Invalid input parameters", reason)
    }

    /// A body that failed to decode: syntax errors and type errors are told apart.
    pub fn from_json(e: serde_json::Error) -> McError {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof => McError::new(
                code::INVALID_INPUT,
                "Invalid input parameters: invalid JSON format",
                e.to_string(),
            ),
            _ => McError::invalid(e.to_string()),
        }
    }

    /// The node's storage failed: 503 (see [`super::coreerr::CoreError::storage`]).
    pub fn storage(cause: impl std::fmt::Display) -> McError {
        tracing::error!(error = %cause, "storage failure");
        let msg = format!("storage failure: {cause}");
        McError::new(code::UNAVAILABLE, "Service unavailable", msg)
    }

    pub fn internal(cause: impl std::fmt::Display) -> McError {
        tracing::error!(error = %cause, "internal error");
        McError::new(code::INTERNAL, "Internal server error", "")
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16((self.code / 100000) as u16)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The `error` object of the envelope.
    pub fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message, "reason": self.reason })
    }
}

impl From<metacenter_raft::Error> for McError {
    fn from(e: metacenter_raft::Error) -> Self {
        use metacenter_raft::Error as E;
        match e {
            E::Unavailable(m) => McError::new(code::UNAVAILABLE, "Service unavailable", m),
            E::NotLeader { .. } => McError::new(
                code::UNAVAILABLE,
                "Service unavailable",
                "no leader available",
            ),
            E::Fatal(m) => McError::new(code::UNAVAILABLE, "Service unavailable", m),
            E::Invalid(m) => McError::invalid(m),
            E::Storage(m) => McError::storage(m),
        }
    }
}

impl From<metacenter_storage::Error> for McError {
    fn from(e: metacenter_storage::Error) -> Self {
        McError::storage(e)
    }
}

/// The `data` of a successful answer: a JSON tree, or JSON text already written
/// (large answers are written straight from their rows into the answer's buffer).
pub enum Data {
    Tree(Value),
    Written(Written),
}

impl From<Value> for Data {
    fn from(v: Value) -> Data {
        Data::Tree(v)
    }
}

/// What every successful answer starts with; `data` comes first.
const OK_PREFIX: &[u8] = b"{\"data\":";

/// A successful answer being written: the envelope's start is already in the buffer, so
/// large data is written once, in place (a copy of a 100 kB answer into a fresh buffer
/// was a tenth of a 1,000-engine read).
pub struct Written(Vec<u8>);

impl Written {
    /// A buffer for about `capacity` bytes of data.
    pub fn with_capacity(capacity: usize) -> Written {
        let mut buf = Vec::with_capacity(OK_PREFIX.len() + capacity + 96);
        buf.extend_from_slice(OK_PREFIX);
        Written(buf)
    }

    /// Where the data's JSON text goes; the caller writes exactly one valid JSON value.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// An answer in the envelope; the trace id is filled in from the request.
pub struct Envelope {
    pub trace_id: String,
    pub result: Result<Data, McError>,
}

/// A successful answer's body, fields in the order the envelope has always had:
/// `{"data":...,"error":null,"status":"OK","trace_id":"..."}`.
fn ok_body(data: Data, trace_id: &str) -> serde_json::Result<Vec<u8>> {
    let mut out = match data {
        Data::Tree(v) => {
            let mut w = Written::with_capacity(64);
            serde_json::to_writer(w.buf(), &v)?;
            w.0
        }
        Data::Written(w) => w.0,
    };
    out.extend_from_slice(b",\"error\":null,\"status\":\"OK\",\"trace_id\":");
    serde_json::to_writer(&mut out, trace_id)?;
    out.push(b'}');
    Ok(out)
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        match self.result {
            Ok(data) => {
                super::response::json_bytes_response(StatusCode::OK, ok_body(data, &self.trace_id))
            }
            Err(e) => {
                let body = json!({ "status": "ERROR", "error": e.to_json(), "data": null, "trace_id": self.trace_id });
                (e.status(), Json(body)).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_bodies_are_the_envelope_in_its_field_order() {
        let trace = "t\"1\\";
        let want = |data: Value| {
            let v = json!({"data": data, "error": null, "status": "OK", "trace_id": trace});
            serde_json::to_string(&v).unwrap()
        };
        let tree = ok_body(Data::Tree(json!({"a": [1, "x"]})), trace).unwrap();
        assert_eq!(
            String::from_utf8(tree).unwrap(),
            want(json!({"a": [1, "x"]}))
        );
        let mut w = Written::with_capacity(0);
        w.buf().extend_from_slice(b"[{\"ip\":\"1.2.3.4\"}]");
        let written = ok_body(Data::Written(w), trace).unwrap();
        let parsed: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(parsed["data"], json!([{"ip": "1.2.3.4"}]));
        assert_eq!(
            String::from_utf8(written).unwrap(),
            want(json!([{"ip": "1.2.3.4"}]))
        );
    }
}
