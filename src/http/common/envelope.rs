//! The envelope the load area and `/log/level` answer in, successful or not:
//! `{"status":"OK"|"ERROR","error":null|{"code","message","reason"},"data":...,"trace_id":"..."}`.
//! A successful answer is written here, its data straight into the answer's buffer; a
//! failed one is an [`EnvelopeError`], an [`ApiError`] that [`render::envelope`]
//! writes with the request's trace id.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::{ApiError, Code};
use super::render;

/// An error answered in the envelope.
#[derive(Debug)]
pub struct EnvelopeError(pub ApiError);

impl EnvelopeError {
    /// Failed validation: 400, "Invalid input parameters", the message says why.
    pub fn invalid(reason: impl Into<String>) -> EnvelopeError {
        ApiError::bad_request(reason).into()
    }

    /// A body that failed to decode: syntax errors and type errors are told apart.
    pub fn from_json(e: serde_json::Error) -> EnvelopeError {
        use serde_json::error::Category;
        let err = ApiError::bad_request(e.to_string());
        let err = match e.classify() {
            Category::Syntax | Category::Eof => err.with_code(Code::InvalidJson),
            _ => err,
        };
        err.with_source(e).into()
    }

    /// An internal failure: logged in full, answered generically.
    pub fn internal(cause: impl std::fmt::Display) -> EnvelopeError {
        ApiError::internal(cause).into()
    }
}

/// Whatever becomes an [`ApiError`] (raft and storage errors, the shared layer's
/// refusals).
impl<E: Into<ApiError>> From<E> for EnvelopeError {
    fn from(e: E) -> Self {
        EnvelopeError(e.into())
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
    pub result: Result<Data, EnvelopeError>,
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
            Err(e) => render::envelope(&e.0, &self.trace_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
