//! The error shapes of the API's areas, as checks that say what is wrong instead of
//! panicking, so that a table of refused requests can report every row that fails:
//!
//! * meta-core (`/meta`, `/services`, `/data`, `/file`, `/cluster`, node endpoints):
//!   `{"error": <reason phrase>, "message": <text>}`;
//! * the Metric Service (`/api/...`, `/ws/...`): `{"error": <text>}`;
//! * Prometheus discovery: `{"status": "error", "errorType": ..., "error": <text>}`;
//! * Metadata Center (`/v1/...`, `/log/level`): `{"status": "ERROR", "error": {"code",
//!   "message", "reason"}, "data": null, "trace_id"}`.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::reply::Reply;

/// `Err(format!(...))` unless `cond` holds.
macro_rules! check {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// The status is `want`; the body is JSON. Returns the body.
fn status_and_json(r: &Reply, want: StatusCode) -> Result<Value, String> {
    check!(r.status == want, "status {}, want {want}", r.status);
    serde_json::from_slice(&r.body).map_err(|e| format!("body is not JSON ({e})"))
}

/// meta-core's error: `status`, `{"error": <its reason phrase>, "message": ...}` and
/// nothing else, the message containing `needle`.
pub fn core(r: &Reply, status: StatusCode, needle: &str) -> Result<(), String> {
    let body = status_and_json(r, status)?;
    core_body(status, &body, needle).map_err(|why| format!("{why}: {body}"))
}

fn core_body(status: StatusCode, body: &Value, needle: &str) -> Result<(), String> {
    let reason = status.canonical_reason().unwrap_or_default();
    check!(body["error"] == reason, "error is not {reason:?}");
    let message = body["message"].as_str().ok_or("message is not a string")?;
    check!(
        message.contains(needle),
        "message {message:?} should contain {needle:?}"
    );
    check!(
        body.as_object().map(|o| o.len()) == Some(2),
        "more than error and message"
    );
    Ok(())
}

/// The Metric Service's error: `status`, `{"error": ...}` alone, the message holding
/// every needle.
pub fn plain(r: &Reply, status: StatusCode, needles: &[&str]) -> Result<(), String> {
    let body = status_and_json(r, status)?;
    let msg = body["error"]
        .as_str()
        .ok_or_else(|| format!("no error message in {body}"))?;
    check!(
        body.as_object().map(|o| o.len()) == Some(1),
        "only `error`: {body}"
    );
    for n in needles {
        check!(msg.contains(n), "`{msg}` does not mention `{n}`");
    }
    Ok(())
}

/// Prometheus's error: `{"status": "error", "errorType": kind, "error": <text>}`.
pub fn prometheus(body: &Value, kind: &str) -> Result<(), String> {
    check!(body["status"] == "error", "status is not error: {body}");
    check!(body["errorType"] == kind, "errorType is not {kind}: {body}");
    check!(body["error"].is_string(), "error is not a string: {body}");
    Ok(())
}

/// Whether `path` is one of the Prometheus discovery routes.
pub fn is_prometheus(path: &str) -> bool {
    let route = path.split('?').next().unwrap_or(path);
    ["/api/v1/series", "/api/v1/labels", "/api/v1/metadata"].contains(&route)
        || route.starts_with("/api/v1/label/")
}

/// A refusal (`status`, 4xx) of `path` is in the envelope of `path`'s area. For the
/// Metadata Center the code is the status's (`40101401`, `40301403`).
pub fn area(path: &str, status: StatusCode, body: &Value) -> Result<(), String> {
    let code = u64::from(status.as_u16()) * 100_000 + 1_000 + u64::from(status.as_u16());
    let text = status.canonical_reason().unwrap_or_default();
    if path.starts_with("/v1/") || path == "/log/level" {
        check!(body["status"] == "ERROR", "{path}: {body}");
        check!(
            body["error"]["code"] == code,
            "{path}: code is not {code}: {body}"
        );
        check!(
            body["trace_id"].as_str().is_some_and(|t| !t.is_empty()),
            "{path}: no trace_id: {body}"
        );
    } else if is_prometheus(path) {
        // Prometheus's shape, so Prometheus clients read the error.
        prometheus(body, &text.to_ascii_lowercase()).map_err(|e| format!("{path}: {e}"))?;
    } else if path.starts_with("/api/") || path.starts_with("/ws/") {
        check!(body["error"].is_string(), "{path}: {body}");
        check!(body.get("message").is_none(), "{path}: {body}");
    } else {
        check!(body["error"] == text, "{path}: error is not {text}: {body}");
        check!(body["message"].is_string(), "{path}: {body}");
    }
    Ok(())
}

/// The Metadata Center envelope: exactly `status`, `error`, `data` and `trace_id`, the
/// last equal to the `X-Trace-ID` header. Returns the body.
pub fn envelope(r: &Reply) -> Result<Value, String> {
    let body: Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("body {:?} is not the envelope ({e})", r.lossy()))?;
    let keys: BTreeSet<&str> = body
        .as_object()
        .ok_or_else(|| format!("envelope is an object: {body}"))?
        .keys()
        .map(String::as_str)
        .collect();
    if keys != BTreeSet::from(["status", "error", "data", "trace_id"]) {
        return Err(format!("envelope keys {keys:?}: {body}"));
    }
    if body["trace_id"] != json!(r.trace_id()) {
        return Err(format!(
            "trace_id is not X-Trace-ID {}: {body}",
            r.trace_id()
        ));
    }
    Ok(body)
}

/// A Metadata Center error: the envelope with status `ERROR`, no data, an `error` of
/// exactly `code` (the HTTP status is `code / 100000`), `message` and a `reason`.
/// Returns the reason.
pub fn mc_error(r: &Reply, code: u64, message: &str) -> Result<String, String> {
    let body = envelope(r)?;
    let fail = |what: &str| Err(format!("{what}: {body}"));
    if r.status.as_u16() as u64 != code / 100000 {
        return fail(&format!("status {} for code {code}", r.status));
    }
    if body["status"] != "ERROR" || body["data"] != Value::Null {
        return fail("not an error");
    }
    let err = body["error"].as_object().ok_or("error is no object")?;
    let keys: BTreeSet<&str> = err.keys().map(String::as_str).collect();
    if keys != BTreeSet::from(["code", "message", "reason"]) {
        return fail("error keys");
    }
    if err["code"] != json!(code) || err["message"] != json!(message) {
        return fail(&format!("not {code} {message:?}"));
    }
    match err["reason"].as_str() {
        Some(reason) => Ok(reason.to_string()),
        None => fail("reason is no string"),
    }
}
