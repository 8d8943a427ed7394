//! Inference load statistics (Metadata Center, API.md section 4): per-request
//! add / first-token / done updates of engine counters, the cluster read a gateway
//! routes by, a batch endpoint, and `POST /log/level`. Answers use Metadata Center's
//! envelope; the receiving node stamps the time into each command.

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Extension;
use metacenter_storage::{Command, EngineLoad, LoadOutcome, Response as R};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::body::{self, Body};
use super::common::consistency::wants_linearizable;
use super::common::envelope::{Data, Envelope, EnvelopeError, Written};
use super::common::headers::TraceId;
use super::common::query;
use super::common::render::envelope_error;
use super::openapi::load as doc;
use super::openapi::load::McErrorEnvelope as Err;
use super::openapi::metadata::{ConsistencyHeader, ConsistencyQuery};
use crate::clock::now_ns;
use crate::state::AppState;

type St = State<Arc<AppState>>;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(stats, add, done))
        .routes(routes!(prompt_done))
        .routes(routes!(batch))
        .routes(routes!(log_level))
}

fn envelope(trace: TraceId, result: Result<impl Into<Data>, EnvelopeError>) -> Envelope {
    Envelope {
        trace_id: trace.0,
        result: result.map(Into::into),
    }
}

/// A JSON body. A body that could not be read keeps its status's code: 413 has one,
/// the others (a slow or broken body) are invalid input, answered 400.
fn read_json<T: serde::de::DeserializeOwned>(s: &AppState, b: Body) -> Result<T, EnvelopeError> {
    let bytes = body::read(b, s.cfg.max_body_bytes)?;
    parse_json(&bytes)
}

/// Parses a JSON request body; a failure is Metadata Center's invalid-input error.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, EnvelopeError> {
    serde_json::from_slice(bytes).map_err(EnvelopeError::from_json)
}

/// One load operation as clients send it (`op` only in batches). `request_id` is
/// always required; `cluster` and `ip` (IPv4) for adds.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoadReq {
    /// Batches only: `add`, `prompt_done` or `done`.
    #[schema(pattern = "^(add|prompt_done|done)$")]
    op: Option<String>,
    #[schema(min_length = 1, max_length = 512)]
    cluster: Option<String>,
    #[schema(min_length = 1, max_length = 512)]
    request_id: Option<String>,
    /// Tokens.
    #[schema(minimum = 0)]
    prompt_length: Option<i64>,
    #[schema(format = Ipv4)]
    ip: Option<String>,
    /// Unix ns; informative.
    #[schema(minimum = 0)]
    timestamp: Option<i64>,
}

fn required<'a>(name: &str, v: &'a Option<String>) -> Result<&'a str, EnvelopeError> {
    let v = v
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| EnvelopeError::invalid(format!("{name} is required")))?;
    if v.len() > metacenter_storage::Limits::MAX_KEY || v.contains('\0') {
        return Err(EnvelopeError::invalid(format!(
            "{name} must be at most {} bytes without NUL",
            metacenter_storage::Limits::MAX_KEY
        )));
    }
    Ok(v)
}

fn check_timestamp(r: &LoadReq) -> Result<(), EnvelopeError> {
    match r.timestamp {
        Some(t) if t < 0 => Err(EnvelopeError::invalid("timestamp must be >= 0 (unix ns)")),
        _ => Ok(()),
    }
}

pub fn add_command(r: &LoadReq, now: u64) -> Result<Command, EnvelopeError> {
    let cluster = required("cluster", &r.cluster)?;
    let request_id = required("request_id", &r.request_id)?;
    let ip = required("ip", &r.ip)?;
    if ip.parse::<Ipv4Addr>().is_err() {
        return Err(EnvelopeError::invalid("ip must be a valid IPv4 address"));
    }
    let prompt = r.prompt_length.unwrap_or(0);
    if prompt < 0 {
        return Err(EnvelopeError::invalid("prompt_length must be >= 0"));
    }
    check_timestamp(r)?;
    Ok(Command::LoadAdd {
        cluster: cluster.into(),
        request_id: request_id.into(),
        ip: ip.into(),
        prompt_length: prompt as u64,
        now_ns: now,
    })
}

pub fn finish_command(r: &LoadReq, now: u64, prompt_only: bool) -> Result<Command, EnvelopeError> {
    let request_id = required("request_id", &r.request_id)?.to_string();
    check_timestamp(r)?;
    Ok(if prompt_only {
        Command::LoadPromptDone {
            request_id,
            now_ns: now,
        }
    } else {
        Command::LoadDone {
            request_id,
            now_ns: now,
        }
    })
}

fn outcome(r: R) -> Result<&'static str, EnvelopeError> {
    match r {
        R::Load(LoadOutcome::Applied) => Ok("applied"),
        R::Load(LoadOutcome::Duplicate) => Ok("duplicate"),
        R::Load(LoadOutcome::Cancelled) => Ok("cancelled"),
        R::Load(LoadOutcome::Tombstoned) => Ok("tombstoned"),
        R::Invalid { reason } => Err(EnvelopeError::invalid(reason)),
        other => Err(EnvelopeError::internal(format!(
            "unexpected response {other:?}"
        ))),
    }
}

async fn one(
    s: &AppState,
    body: Body,
    make: impl Fn(&LoadReq, u64) -> Result<Command, EnvelopeError>,
) -> Result<Value, EnvelopeError> {
    let req: LoadReq = read_json(s, body)?;
    let cmd = make(&req, now_ns())?;
    outcome(s.node.write_one(cmd).await?)?;
    Ok(Value::Null)
}

/// A request queued on an engine: `queued_req_num += 1`, `prompt_length += n`
///
/// A duplicate `request_id` is ignored (still 200).
#[utoipa::path(post, path = "/v1/load/stats", tag = "load", request_body = doc::LoadAdd,
    responses((status = 200, description = "Recorded", body = doc::McAck),
        (status = 400, description = "Invalid input parameters (code 40001400)", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes` (code 41301413)", body = Err),
        (status = 503, description = "No leader available (code 50301503)", body = Err)))]
async fn add(State(s): St, Extension(t): Extension<TraceId>, body: Body) -> Envelope {
    envelope(t, one(&s, body, add_command).await)
}

/// A request's first token: its prompt length is subtracted once
#[utoipa::path(delete, path = "/v1/load/prompt", tag = "load", request_body = doc::LoadFinish,
    responses((status = 200, description = "Recorded", body = doc::McAck),
        (status = 400, description = "Invalid input parameters (code 40001400)", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes` (code 41301413)", body = Err),
        (status = 503, description = "No leader available (code 50301503)", body = Err)))]
async fn prompt_done(State(s): St, Extension(t): Extension<TraceId>, body: Body) -> Envelope {
    envelope(
        t,
        one(&s, body, |r, now| finish_command(r, now, true)).await,
    )
}

/// A request done: removed, `queued_req_num -= 1`
#[utoipa::path(delete, path = "/v1/load/stats", tag = "load", request_body = doc::LoadFinish,
    responses((status = 200, description = "Recorded", body = doc::McAck),
        (status = 400, description = "Invalid input parameters (code 40001400)", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes` (code 41301413)", body = Err),
        (status = 503, description = "No leader available (code 50301503)", body = Err)))]
async fn done(State(s): St, Extension(t): Extension<TraceId>, body: Body) -> Envelope {
    envelope(
        t,
        one(&s, body, |r, now| finish_command(r, now, false)).await,
    )
}

/// The engines of a cluster with their counters
#[utoipa::path(get, path = "/v1/load/stats", tag = "load",
    params(("cluster" = String, Query, min_length = 1, description = "Cluster (model) name"),
        ConsistencyQuery, ConsistencyHeader),
    responses(
        (status = 200, description = "The engines; `data` null for an unknown cluster", body = doc::LoadStatsEnvelope),
        (status = 400, description = "cluster is required (code 40001400)", body = Err),
        (status = 503, description = "No leader for a linearizable read (code 50301503)", body = Err)))]
async fn stats(
    State(s): St,
    Extension(t): Extension<TraceId>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Envelope {
    envelope(t, read_stats(&s, &headers, q.as_deref()).await)
}

async fn read_stats(
    s: &AppState,
    headers: &HeaderMap,
    q: Option<&str>,
) -> Result<Data, EnvelopeError> {
    let cluster = query::first(q, "cluster")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| EnvelopeError::invalid("cluster is required"))?;
    if wants_linearizable(headers, q) {
        s.node.read_barrier().await?;
    }
    // An in-memory read: done here unless an apply holds the store, then on a thread
    // that may wait for it.
    let engines = match s.node.store().try_load_cluster(&cluster) {
        Some(engines) => engines,
        None => s.read_store(move |st| st.load_cluster(&cluster)).await?,
    };
    if engines.is_empty() {
        return Ok(Data::Tree(Value::Null));
    }
    let mut w = Written::with_capacity(2 + engines.len() * 112);
    engine_rows(w.buf(), &engines);
    Ok(Data::Written(w))
}

/// Writes the JSON array `GET /v1/load/stats` answers with, by hand: a cluster may have
/// thousands of engines, and serde's per-field path was a third of a 1,000-engine read.
/// Each row is `{"ip","prompt_length","queued_req_num","updated_time"}`, in that order.
fn engine_rows(out: &mut Vec<u8>, engines: &[(String, EngineLoad)]) {
    let mut num = itoa::Buffer::new();
    out.push(b'[');
    for (i, (ip, e)) in engines.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"ip\":");
        // The ip is validated IPv4 on the way in, but a string is escaped all the same.
        serde_json::to_writer(&mut *out, ip).expect("a string serialises into a Vec");
        out.extend_from_slice(b",\"prompt_length\":");
        out.extend_from_slice(num.format(e.prompt_length).as_bytes());
        out.extend_from_slice(b",\"queued_req_num\":");
        out.extend_from_slice(num.format(e.queued_req_num).as_bytes());
        out.extend_from_slice(b",\"updated_time\":");
        out.extend_from_slice(num.format(e.updated_ns).as_bytes());
        out.push(b'}');
    }
    out.push(b']');
}

#[derive(Deserialize, ToSchema)]
pub struct BatchReq {
    /// Each with its `op`.
    #[schema(min_items = 1, max_items = 10000)]
    operations: Vec<LoadReq>,
}

/// Largest number of operations in one batch request.
pub const MAX_BATCH_OPS: usize = 10_000;

/// Many load operations in one request (one raft entry)
#[utoipa::path(post, path = "/v1/load/batch", tag = "load", request_body = BatchReq,
    responses((status = 200, description = "One result per operation, in order", body = doc::LoadBatchEnvelope),
        (status = 400, description = "Invalid input parameters (code 40001400)", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes` (code 41301413)", body = Err),
        (status = 503, description = "No leader available (code 50301503)", body = Err)))]
async fn batch(State(s): St, Extension(t): Extension<TraceId>, body: Body) -> Envelope {
    envelope(t, run_batch(&s, body).await)
}

async fn run_batch(s: &AppState, body: Body) -> Result<Value, EnvelopeError> {
    let req: BatchReq = read_json(s, body)?;
    let parsed = batch_commands(&req, now_ns())?;
    let commands: Vec<Command> = parsed
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut responses = if commands.is_empty() {
        Vec::new()
    } else {
        s.node.write(commands).await?
    }
    .into_iter();
    let results: Vec<Value> = parsed
        .into_iter()
        .map(|p| {
            match p.and_then(|_| {
                outcome(responses.next().unwrap_or(R::Invalid {
                    reason: "missing response".into(),
                }))
            }) {
                Ok(result) => json!({ "status": "OK", "error": null, "result": result }),
                Err(e) => {
                    json!({ "status": "ERROR", "error": envelope_error(&e.0), "result": null })
                }
            }
        })
        .collect();
    Ok(Value::Array(results))
}

/// Checks a batch's size and parses each operation into its command, or the reason
/// that operation is refused (the others still run).
pub fn batch_commands(
    req: &BatchReq,
    now: u64,
) -> Result<Vec<Result<Command, EnvelopeError>>, EnvelopeError> {
    if req.operations.is_empty() || req.operations.len() > MAX_BATCH_OPS {
        return Err(EnvelopeError::invalid(format!(
            "operations must hold 1 to {MAX_BATCH_OPS} items"
        )));
    }
    Ok(req
        .operations
        .iter()
        .enumerate()
        .map(|(i, op)| {
            batch_command(op, now)
                .map_err(|e| EnvelopeError::invalid(format!("operations[{i}]: {}", e.0.message)))
        })
        .collect())
}

fn batch_command(op: &LoadReq, now: u64) -> Result<Command, EnvelopeError> {
    match op.op.as_deref() {
        Some("add") => add_command(op, now),
        Some("prompt_done") => finish_command(op, now, true),
        Some("done") => finish_command(op, now, false),
        Some(other) => Err(EnvelopeError::invalid(format!(
            "unknown op `{other}`; use add, prompt_done or done"
        ))),
        None => Err(EnvelopeError::invalid("op is required")),
    }
}

#[derive(Deserialize, ToSchema)]
struct LevelReq {
    /// TRACE, DEBUG, INFO, WARN, ERROR or FATAL, in any case (PANIC = FATAL = ERROR).
    #[serde(rename = "LevelParam")]
    #[schema(
        pattern = "^([Tt][Rr][Aa][Cc][Ee]|[Dd][Ee][Bb][Uu][Gg]|[Ii][Nn][Ff][Oo]|[Ww][Aa][Rr][Nn]|[Ee][Rr][Rr][Oo][Rr]|[Ff][Aa][Tt][Aa][Ll]|[Pp][Aa][Nn][Ii][Cc])$"
    )]
    level: String,
}

/// Change the log level at run time; admin
#[utoipa::path(post, path = "/log/level", tag = "cluster", request_body = LevelReq,
    responses(
        (status = 200, description = "Changed", body = doc::LogLevelEnvelope),
        (status = 400, description = "Unknown level (code 40001400)", body = Err),
        (status = 413, description = "Body over `limits.max_body_bytes` (code 41301413)", body = Err)))]
async fn log_level(State(s): St, Extension(t): Extension<TraceId>, body: Body) -> Envelope {
    let result = read_json::<LevelReq>(&s, body).and_then(|r| {
        crate::logging::set_level(&r.level).map_err(EnvelopeError::invalid)?;
        Ok(json!("log level updated successfully"))
    });
    envelope(t, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_rows_are_the_json_serde_would_write() {
        let e = |q, p, t| EngineLoad {
            queued_req_num: q,
            prompt_length: p,
            updated_ns: t,
        };
        let engines = vec![
            ("10.0.0.1".to_string(), e(3, 120, 1_700_000_000_000_000_000)),
            ("q\"\\\u{1}é".to_string(), e(0, u64::MAX, 0)),
        ];
        let expected: Vec<Value> = engines
            .iter()
            .map(|(ip, e)| {
                json!({"ip": ip, "prompt_length": e.prompt_length,
                    "queued_req_num": e.queued_req_num, "updated_time": e.updated_ns})
            })
            .collect();
        let mut written = Vec::new();
        engine_rows(&mut written, &engines);
        let parsed: Value = serde_json::from_slice(&written).expect("valid JSON");
        assert_eq!(parsed, Value::Array(expected.clone()));
        // Same bytes as serde, so field order and number format match the old answers.
        let serde_text = serde_json::to_string(&expected).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), serde_text);
        let mut empty = Vec::new();
        engine_rows(&mut empty, &[]);
        assert_eq!(empty, b"[]");
    }

    #[test]
    fn validates_add() {
        let r = |ip: &str, p: i64| LoadReq {
            op: None,
            cluster: Some("c".into()),
            request_id: Some("r".into()),
            prompt_length: Some(p),
            ip: Some(ip.into()),
            timestamp: None,
        };
        assert!(add_command(&r("10.0.0.1", 5), 1).is_ok());
        assert_eq!(
            add_command(&r("::1", 5), 1).unwrap_err().0.message,
            "ip must be a valid IPv4 address"
        );
        assert!(add_command(&r("10.0.0.1", -1), 1).is_err());
        let mut missing = r("10.0.0.1", 1);
        missing.cluster = None;
        assert_eq!(
            add_command(&missing, 1).unwrap_err().0.message,
            "cluster is required"
        );
    }
}
