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

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
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

use super::points::{parse_run, tenant, PointOut, PtError};
use crate::server::AppState;

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
/// `X-Tenant-ID`. The auth middleware checks the same tenant.
pub fn stream_tenant(headers: &HeaderMap, query: Option<&str>) -> Result<String, PtError> {
    let from_header = tenant(headers)?;
    let from_query = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("tenant="));
    Ok(from_query.map_or(from_header, super::load::percent_decode))
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
        super::openapi::metric::TenantHeader),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Bad run_id or tenant, or not a WebSocket upgrade", body = super::openapi::ApiError),
        (status = 426, description = "The connection cannot be upgraded", body = super::openapi::ApiError),
        (status = 503, description = "Too many WebSocket connections", body = super::openapi::ApiError)))]
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
        Err(e) => return PtError(e.status(), e.body_text()).into_response(),
    };
    let Ok(permit) = s.websockets.clone().try_acquire_owned() else {
        return PtError(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket connections".into(),
        )
        .into_response();
    };
    let filter = Filter {
        tenant: tenant_name,
        run,
        run_id,
        names: None,
    };
    ws.on_upgrade(move |socket| session(s, socket, filter, permit))
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

/// Handles a client message; returns the answer to send.
pub fn on_client(text_msg: &str, f: &mut Filter) -> Value {
    let v: Value = serde_json::from_str(text_msg).unwrap_or(Value::Null);
    if v.get("type").and_then(Value::as_str) != Some("subscribe") {
        return json!({ "type": "error", "payload": { "message": "expected {\"type\":\"subscribe\",\"payload\":{...}}" } });
    }
    let payload = v.get("payload").cloned().unwrap_or(Value::Null);
    if let Some(r) = payload.get("run_id").and_then(Value::as_str) {
        if r != f.run_id {
            return json!({ "type": "error", "payload": { "message": "run_id must match the stream's path" } });
        }
    }
    f.names = payload
        .get("metric_names")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    let names: Vec<&String> = f.names.iter().flatten().collect();
    json!({ "type": "subscribed", "payload": { "run_id": f.run_id, "metric_names": names } })
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
                match msg {
                    Some(Ok(Message::Text(t))) => { let answer = on_client(t.as_str(), &mut f); send(&mut socket, text(answer)).await }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => false,
                    Some(Ok(_)) => true,
                }
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
