//! Live metric streams: `WS /ws/metrics/{run_id}` on any node (every node applies
//! every point). The client subscribes with
//! `{"type":"subscribe","payload":{"run_id","metric_names":[...]}}` (acknowledged with
//! `subscribed`); until then every metric of the path's run is streamed. Each applied
//! batch with matching points becomes one `{"type":"metric","payload":{"metrics":[...]}}`.
//!
//! Flow control: the node's stream hub ([`crate::streams`]) queues for each stream the
//! applied batches holding points of its run; a consumer too slow to keep up misses
//! batches once its queue is full, and it is then told
//! `{"type":"lagged","payload":{"dropped":n}}` (n = applied batches it missed) instead
//! of losing data silently. Pings every 30 s; a peer silent for 75 s, or a send stuck
//! for 10 s, is dropped. Connections are bounded by `limits.max_websockets` and closed
//! on shutdown.
//!
//! Bounds on what a client sends: a message (or frame) over `limits.max_ws_message_bytes`
//! closes the stream with code 1009 (tungstenite refuses a frame from its header, and a
//! fragmented message once its fragments pass the limit, so no more than the limit is
//! buffered); a `subscribe` naming more than `limits.max_subscribe_metrics` metrics, or
//! a name that is no valid metric name, is answered `error` and not applied.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use metacenter_raft::Applied;
use metacenter_storage::{Command, PointIn};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::OwnedSemaphorePermit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::metric_error::{bad, MetricError};
use super::common::point::{parse_run, PointOut};
use super::common::{metric_name, tenant};
use super::openapi::metric::TenantHeader;
use super::openapi::MetricErrorBody as Err;
use crate::state::AppState;

const PING_EVERY: Duration = Duration::from_secs(30);
const DEAD_AFTER: Duration = Duration::from_secs(75);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

/// What a stream delivers.
pub struct Filter {
    pub tenant: String,
    pub run: [u8; 16],
    pub run_id: String,
    /// `None`: every metric of the run.
    pub names: Option<HashSet<String>>,
}

impl Filter {
    fn matches(&self, p: &PointIn) -> bool {
        p.run_id == self.run && self.names.as_ref().is_none_or(|n| n.contains(&p.metric))
    }
}

/// The tenant of a stream: `?tenant=` (browsers cannot set headers), else
/// `X-Tenant-ID`, each under the one tenant rule ([`tenant::stream`]). The auth
/// middleware checks the same tenant.
pub fn stream_tenant(headers: &HeaderMap, query: Option<&str>) -> Result<String, MetricError> {
    tenant::stream(headers, query).map_err(bad)
}

/// A live WebSocket stream of a run's points
///
/// Client: `{"type":"subscribe","payload":{"run_id","metric_names":[...]}}` (answered
/// `subscribed`). Server: `{"type":"metric","payload":{"metrics":[...]}}` per applied
/// batch, `{"type":"lagged","payload":{"dropped":n}}` when the client fell behind.
#[utoipa::path(get, path = "/ws/metrics/{run_id}", tag = "points",
    params(("run_id" = String, Path, format = Uuid, description = "The run (a UUID)"),
        ("tenant" = Option<String>, Query, description = "The tenant (browsers cannot set X-Tenant-ID)"),
        ("token" = Option<String>, Query, description = "The bearer token (browsers cannot set Authorization)"),
        TenantHeader),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Bad run_id or tenant (`?tenant=` or X-Tenant-ID), or not a WebSocket upgrade", body = Err),
        (status = 426, description = "The connection cannot be upgraded", body = Err),
        (status = 503, description = "Too many WebSocket connections", body = Err)))]
async fn upgrade(
    State(s): State<Arc<AppState>>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let tenant_name = match stream_tenant(&headers, q.as_deref()) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let run = match parse_run(&run_id) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    // Not an upgrade (a plain GET, a wrong header): the Metric Service's envelope,
    // not axum's plain-text rejection.
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return MetricError::new(e.status(), e.body_text()).into_response(),
    };
    let Ok(permit) = s.websockets.clone().try_acquire_owned() else {
        return MetricError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket connections",
        )
        .into_response();
    };
    let filter = Filter {
        tenant: tenant_name,
        run,
        run_id,
        names: None,
    };
    // Bounds what a client can make the node buffer: tungstenite checks a frame's
    // length in its header, and a fragmented message as each fragment arrives.
    let max = s.cfg.limits.ws_message;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session(s, socket, filter, permit))
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

async fn send(socket: &mut WebSocket, m: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(m)).await,
        Ok(Ok(()))
    )
}

/// The points of an applied batch that the filter selects.
fn matching<'a>(a: &'a Applied, f: &'a Filter) -> Vec<PointOut<'a>> {
    let mut out = Vec::new();
    for cmds in &a.commands {
        for c in cmds.iter() {
            let Command::PointsWrite { tenant, points } = c else {
                continue;
            };
            // Only the batches of this stream's run reach it, but a batch may hold other
            // runs and tenants: the tenant once per command, then the run id per point.
            if *tenant != f.tenant {
                continue;
            }
            let selected = points.iter().filter(|p| f.matches(p));
            out.extend(selected.map(|p| PointOut::written(&f.run_id, p)));
        }
    }
    out
}

/// `{"type":"metric","payload":{"metrics":[...]}}` (keys in the order they have always
/// had), written straight from the points.
fn metric_message(points: &[PointOut]) -> Message {
    #[derive(Serialize)]
    struct Payload<'a> {
        metrics: &'a [PointOut<'a>],
    }
    #[derive(Serialize)]
    struct Push<'a> {
        payload: Payload<'a>,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    let push = Push {
        payload: Payload { metrics: points },
        kind: "metric",
    };
    Message::Text(serde_json::to_string(&push).unwrap_or_default().into())
}

/// Handles a client message under the default `limits.max_subscribe_metrics`;
/// returns the answer to send.
pub fn on_client(text_msg: &str, f: &mut Filter) -> Value {
    on_client_with(
        text_msg,
        f,
        crate::config::EdgeLimits::default().subscribe_metrics,
    )
}

fn error_message(message: impl Into<String>) -> Value {
    json!({ "type": "error", "payload": { "message": message.into() } })
}

/// Handles a client message; a subscribe may name at most `max_names` metrics. Returns
/// the answer to send; a refused subscribe leaves the filter as it was.
pub fn on_client_with(text_msg: &str, f: &mut Filter, max_names: usize) -> Value {
    let v: Value = serde_json::from_str(text_msg).unwrap_or(Value::Null);
    if v.get("type").and_then(Value::as_str) != Some("subscribe") {
        return error_message("expected {\"type\":\"subscribe\",\"payload\":{...}}");
    }
    let payload = v.get("payload").unwrap_or(&Value::Null);
    if let Some(r) = payload.get("run_id").and_then(Value::as_str) {
        if r != f.run_id {
            return error_message("run_id must match the stream's path");
        }
    }
    let names = match payload.get("metric_names").and_then(Value::as_array) {
        None => None,
        Some(a) if a.is_empty() => None,
        Some(a) => match subscribed_names(a, max_names) {
            Ok(names) => Some(names),
            Err(e) => return error_message(e),
        },
    };
    f.names = names;
    let names: Vec<&String> = f.names.iter().flatten().collect();
    json!({ "type": "subscribed", "payload": { "run_id": f.run_id, "metric_names": names } })
}

/// The metric names of a subscribe: at most `max`, each a valid metric name (entries
/// that are not strings are ignored, as they always were).
fn subscribed_names(a: &[Value], max: usize) -> Result<HashSet<String>, String> {
    if a.len() > max {
        let n = a.len();
        return Err(format!(
            "metric_names: {n} names, at most {max} (limits.max_subscribe_metrics)"
        ));
    }
    let names = a.iter().filter_map(Value::as_str);
    names
        .map(|n| match metric_name::check(n) {
            Ok(()) => Ok(n.to_string()),
            Err(e) => Err(format!("metric_names: `{}` {e}", n.escape_debug())),
        })
        .collect()
}

/// Whether a read failed because the client's message or frame was over the limit.
/// axum does not expose tungstenite's error type, only its text
/// ("Space limit exceeded: Message too long: N > MAX").
fn too_big(e: &axum::Error) -> bool {
    e.to_string().contains("Message too long")
}

/// What to do with a client's message; `false` ends the session.
async fn on_message(
    socket: &mut WebSocket,
    msg: Option<Result<Message, axum::Error>>,
    f: &mut Filter,
    lim: &crate::config::EdgeLimits,
) -> bool {
    match msg {
        Some(Ok(Message::Text(t))) => {
            let answer = on_client_with(t.as_str(), f, lim.subscribe_metrics);
            send(socket, text(answer)).await
        }
        Some(Err(e)) if too_big(&e) => {
            let reason = format!("message over {} bytes", lim.ws_message);
            let frame = CloseFrame {
                code: close_code::SIZE,
                reason: reason.into(),
            };
            let _ = send(socket, Message::Close(Some(frame))).await;
            false
        }
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => false,
        Some(Ok(_)) => true,
    }
}

async fn session(
    s: Arc<AppState>,
    mut socket: WebSocket,
    mut f: Filter,
    _permit: OwnedSemaphorePermit,
) {
    metrics::gauge!("websocket_connections").increment(1.0);
    let mut stream = s.streams.join(&f.tenant, f.run);
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        let ok = tokio::select! {
            ev = stream.rx.recv() => match ev {
                Some(a) => {
                    let dropped = stream.take_dropped();
                    let lag_ok = dropped == 0 || send(&mut socket, text(json!({ "type": "lagged", "payload": { "dropped": dropped } }))).await;
                    let pts = matching(&a, &f);
                    lag_ok && (pts.is_empty() || send(&mut socket, metric_message(&pts)).await)
                }
                None => false,
            },
            msg = socket.recv() => {
                last_heard = Instant::now();
                on_message(&mut socket, msg, &mut f, &s.cfg.limits).await
            },
            _ = ping.tick() => last_heard.elapsed() < DEAD_AFTER && send(&mut socket, Message::Ping(Default::default())).await,
            _ = s.shutdown.cancelled() => { let _ = send(&mut socket, Message::Close(None)).await; false }
        };
        if !ok {
            break;
        }
    }
    metrics::gauge!("websocket_connections").decrement(1.0);
}
