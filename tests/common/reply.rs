//! One HTTP answer as the tests look at it: status, headers and the body bytes, with
//! the readings every area needs (JSON, text, `X-Applied-Index`, `X-Trace-ID`, the
//! `ETag` version) and meta-core's error shape as an assertion.

use std::borrow::Cow;

use reqwest::header::{AsHeaderName, HeaderMap, ETAG};
use reqwest::StatusCode;
use serde_json::Value;

use super::shape;

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(resp: reqwest::Response) -> Reply {
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.expect("body read").to_vec(),
        }
    }

    /// The body as JSON; panics (showing it) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{} body is not JSON ({e}): {:?}", self.status, self.lossy())
        })
    }

    /// The body as JSON, else its text as a JSON string.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| Value::String(self.lossy().into()))
    }

    /// The body as UTF-8 text; panics when it is not UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Whether the body holds `needle` (an empty needle is never held).
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.body.windows(needle.len()).any(|w| w == needle)
    }

    pub fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// `X-Applied-Index`, which every answer carries.
    pub fn applied_index(&self) -> u64 {
        self.header("x-applied-index")
            .expect("X-Applied-Index on every response")
            .parse()
            .expect("X-Applied-Index is a number")
    }

    /// `X-Trace-ID`, which every answer carries.
    pub fn trace_id(&self) -> String {
        self.header("x-trace-id")
            .expect("X-Trace-ID on every response")
            .to_string()
    }

    /// The `ETag` as a version number (`"12"` -> 12).
    pub fn etag(&self) -> u64 {
        let tag = self.header(ETAG).expect("ETag header");
        assert!(
            tag.len() >= 3 && tag.starts_with('"') && tag.ends_with('"'),
            "ETag must be a quoted version, got {tag}"
        );
        tag.trim_matches('"').parse().expect("ETag is a number")
    }

    /// The body as JSON after asserting 200.
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body {:?}", self.lossy());
        self.json()
    }

    /// Asserts meta-core's error shape: `status`, `{"error": <its reason phrase>,
    /// "message": ...}` and nothing else, the message containing `needle`.
    pub fn assert_error(&self, status: StatusCode, needle: &str) {
        if let Err(why) = shape::core(self, status, needle) {
            panic!("{why}");
        }
    }
}

/// Sends `req`; its status and body (JSON, else the text as a JSON string).
pub async fn answer(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = Reply::read(req.send().await.expect("HTTP answer")).await;
    (r.status, r.value())
}
