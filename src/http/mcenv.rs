//! Metadata Center's envelope, used by the load area and `/log/level`:
//! `{"status":"OK"|"ERROR","error":null|{"code","message","reason"},"data":...,"trace_id":"..."}`
//! with HTTP status = `code / 100000`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::value::RawValue;
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

/// The `data` of a successful answer: a JSON tree, or JSON already written (large
/// answers are serialised straight from their rows, without building a tree).
pub enum Data {
    Tree(Value),
    Written(Box<RawValue>),
}

impl From<Value> for Data {
    fn from(v: Value) -> Data {
        Data::Tree(v)
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Tree(v) => v.serialize(s),
            Data::Written(raw) => raw.serialize(s),
        }
    }
}

/// A successful answer's body (fields in the order the envelope has always had).
#[derive(Serialize)]
struct OkBody<'a> {
    data: &'a Data,
    error: (),
    status: &'static str,
    trace_id: &'a str,
}

/// An answer in the envelope; the trace id is filled in from the request.
pub struct Envelope {
    pub trace_id: String,
    pub result: Result<Data, McError>,
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        match self.result {
            Ok(data) => {
                let body = OkBody {
                    data: &data,
                    error: (),
                    status: "OK",
                    trace_id: &self.trace_id,
                };
                let capacity = match &data {
                    Data::Written(raw) => raw.get().len() + 256,
                    Data::Tree(_) => 256,
                };
                super::json_response(StatusCode::OK, &body, capacity)
            }
            Err(e) => {
                let body = json!({ "status": "ERROR", "error": e.to_json(), "data": null, "trace_id": self.trace_id });
                (e.status(), Json(body)).into_response()
            }
        }
    }
}
