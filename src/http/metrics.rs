//! `GET /metrics` in Prometheus text format, and the middleware that counts HTTP
//! requests by matched route template.
//!
//! Process-wide series (HTTP counters and latency histogram) go through the `metrics`
//! facade into one global Prometheus recorder (no exporter listener; upkeep runs on
//! scrape). Per-node series (raft state, load gauges) are rendered from the node's own
//! state at scrape time, so an expired engine's gauges disappear with it and several
//! in-process nodes never mix their raft figures.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use axum::extract::{MatchedPath, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::server::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Second buckets of `replication_latency_seconds` (250 µs to 5 s).
const REPLICATION_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Second buckets of `http_request_duration_seconds` (50 µs to 5 s).
const DURATION_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Installs the global recorder once and describes every facade series, so that
/// each carries `# HELP` (promtool requires it) and gauges exist from the start.
///
/// Names use base units (`_seconds`): DESIGN.md names `http_request_duration_us`
/// and `replication_latency_ms`, but `promtool check metrics` (2.42) exits 3 on
/// abbreviated units, and passing promtool is also required.
fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let h = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("replication_latency_seconds".into()),
                    REPLICATION_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .ok()?;
            metrics::describe_counter!(
                "http_requests_total",
                "HTTP requests by method, matched route template and status."
            );
            metrics::describe_histogram!(
                "http_request_duration_seconds",
                metrics::Unit::Seconds,
                "HTTP request latency by route."
            );
            metrics::describe_histogram!(
                "replication_latency_seconds",
                metrics::Unit::Seconds,
                "Leader: propose of a log entry to committed and applied."
            );
            metrics::describe_gauge!("websocket_connections", "Open WebSocket metric streams.");
            metrics::gauge!("websocket_connections").set(0.0);
            Some(h)
        })
        .as_ref()
}

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(render))
}

/// Installs the global recorder (before any series handle is taken: a handle taken
/// without a recorder records nowhere, for good).
pub fn install() {
    let _ = handle();
}

/// The series of one route template (`unmatched` for requests no route took):
/// `http_request_duration_seconds{route}` and `http_requests_total{method,route,status}`.
/// Handles are looked up once and kept, so recording a request is a few atomic adds
/// instead of building and hashing label sets.
pub struct RouteSeries {
    route: String,
    duration: metrics::Histogram,
    requests: RwLock<Vec<(&'static str, StatusCode, metrics::Counter)>>,
}

impl RouteSeries {
    fn new(route: &str) -> Self {
        RouteSeries {
            route: route.to_string(),
            duration: metrics::histogram!("http_request_duration_seconds", "route" => route.to_string()),
            requests: RwLock::new(Vec::new()),
        }
    }

    /// Counts and times one answered request.
    pub fn record(&self, method: &'static str, status: StatusCode, took: Duration) {
        self.duration.record(took.as_secs_f64());
        let known = |list: &[(&str, StatusCode, metrics::Counter)]| {
            list.iter()
                .find(|(m, s, _)| *m == method && *s == status)
                .map(|(_, _, c)| c.clone())
        };
        let read = known(&self.requests.read().unwrap_or_else(|e| e.into_inner()));
        let counter = read.unwrap_or_else(|| {
            let mut list = self.requests.write().unwrap_or_else(|e| e.into_inner());
            known(&list).unwrap_or_else(|| {
                let c = metrics::counter!("http_requests_total",
                    "method" => method, "route" => self.route.clone(),
                    "status" => status.as_u16().to_string());
                list.push((method, status, c.clone()));
                c
            })
        });
        counter.increment(1);
    }
}

/// The series of `route` (a matched template; `None`: `unmatched`).
pub fn route_series(route: Option<&MatchedPath>) -> Arc<RouteSeries> {
    static ROUTES: OnceLock<RwLock<HashMap<String, Arc<RouteSeries>>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    let route = route.map_or("unmatched", MatchedPath::as_str);
    if let Some(s) = routes.read().unwrap_or_else(|e| e.into_inner()).get(route) {
        return s.clone();
    }
    let mut map = routes.write().unwrap_or_else(|e| e.into_inner());
    map.entry(route.to_string())
        .or_insert_with(|| Arc::new(RouteSeries::new(route)))
        .clone()
}

/// The `method` label: the standard methods by name, any extension method as `OTHER`
/// (clients choose methods freely, and each would be a new series).
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// Raft figures of this node.
fn raft_series(s: &AppState, out: &mut String) {
    let m = s.node.metrics();
    let one = |v: f64| vec![(String::new(), v)];
    gauge(
        out,
        "raft_term",
        "Current raft term.",
        &one(m.current_term as f64),
    );
    gauge(
        out,
        "raft_leader_id",
        "Id of the known leader (0 if none).",
        &one(m.current_leader.unwrap_or(0) as f64),
    );
    gauge(
        out,
        "raft_is_leader",
        "1 if this node leads.",
        &one((m.current_leader == Some(s.node.id())) as u8 as f64),
    );
    gauge(
        out,
        "raft_commit_index",
        "Commit index known to this node.",
        &one(s.node.committed_index() as f64),
    );
    gauge(
        out,
        "raft_applied_index",
        "Last applied log index.",
        &one(s.node.applied_index() as f64),
    );
    gauge(
        out,
        "raft_last_log_index",
        "Last log index.",
        &one(m.last_log_index.unwrap_or(0) as f64),
    );
    let last = m.last_log_index.unwrap_or(0);
    let lag: Vec<(String, f64)> = m
        .replication
        .iter()
        .flatten()
        .map(|(id, matched)| {
            (
                format!("{{follower=\"{id}\"}}"),
                last.saturating_sub(matched.map_or(0, |l| l.index)) as f64,
            )
        })
        .collect();
    gauge(
        out,
        "raft_follower_lag_entries",
        "Entries a follower is behind (leader only).",
        &lag,
    );
    gauge(
        out,
        "storage_size_bytes",
        "Bytes the database occupies on disk.",
        &one(s.node.storage_bytes() as f64),
    );
    if let Ok(c) = s.node.store().counts() {
        let areas = [
            ("metadata", c.metadata),
            ("services", c.services),
            ("engines", c.engines),
            ("metric_metadata", c.metric_metadata),
        ];
        let samples: Vec<_> = areas
            .iter()
            .map(|(area, n)| (format!("{{area=\"{area}\"}}"), *n as f64))
            .collect();
        gauge(
            out,
            "stored_objects",
            "Objects this node holds, per area.",
            &samples,
        );
    }
    storage_series(s, out);
    let _ = writeln!(out, "# HELP raft_leader_changes_total Times this node saw the leader change.\n# TYPE raft_leader_changes_total counter");
    let _ = writeln!(out, "raft_leader_changes_total {}", s.node.leader_changes());
}

/// Stored points, the log written and the snapshots built.
fn storage_series(s: &AppState, out: &mut String) {
    if let Ok(p) = s.node.store().points_stored() {
        let points = [
            (
                "metric_points_stored",
                "Metric points this node holds.",
                p.points,
            ),
            ("metric_point_series", "Series of metric points.", p.series),
            (
                "metric_point_chunk_bytes",
                "Bytes of the stored point chunks (keys and values).",
                p.chunk_bytes,
            ),
        ];
        for (name, help, v) in points {
            gauge(out, name, help, &[(String::new(), v as f64)]);
        }
    }
    let snaps = s.node.snapshot_stats();
    let gauges = [
        (
            "snapshot_last_bytes",
            "Size of the last snapshot this node built.",
            snaps.last_bytes as f64,
        ),
        (
            "snapshot_last_build_seconds",
            "How long the last snapshot took to build.",
            snaps.last_build.as_secs_f64(),
        ),
    ];
    for (name, help, v) in gauges {
        gauge(out, name, help, &[(String::new(), v)]);
    }
    let counters = [
        (
            "snapshots_built_total",
            "Snapshots this node built since it started.",
            snaps.count,
        ),
        (
            "snapshot_written_bytes_total",
            "Bytes of the snapshots this node built since it started.",
            snaps.total_bytes,
        ),
        (
            "raft_log_appended_bytes_total",
            "Bytes of entries appended to this node's raft log since it started.",
            s.node.log_appended_bytes(),
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
}

/// Process RSS and CPU from /proc (Linux; CPU ticks at the usual 100 Hz).
fn process_series(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    if let Some(kb) = rss_kb {
        gauge(
            out,
            "process_resident_memory_bytes",
            "Resident memory of the process.",
            &[(String::new(), kb * 1024.0)],
        );
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let _ = writeln!(out, "# HELP process_cpu_seconds_total CPU time of the process.\n# TYPE process_cpu_seconds_total counter");
    let _ = writeln!(out, "process_cpu_seconds_total {cpu}");
}

/// Load gauges per engine, as Metadata Center names them (model_name = cluster).
fn load_series(s: &AppState, out: &mut String) {
    let engines = s.node.store().load_engines().unwrap_or_default();
    let label = |c: &str, ip: &str| {
        format!(
            "{{model_name=\"{}\",engine_ip=\"{}\"}}",
            escape(c),
            escape(ip)
        )
    };
    let queued: Vec<_> = engines
        .iter()
        .map(|(c, ip, e)| (label(c, ip), e.queued_req_num as f64))
        .collect();
    let prompt: Vec<_> = engines
        .iter()
        .map(|(c, ip, e)| (label(c, ip), e.prompt_length as f64))
        .collect();
    gauge(
        out,
        "queued_num",
        "Requests queued on an inference engine.",
        &queued,
    );
    gauge(
        out,
        "prompt_length",
        "Prompt tokens of requests not yet past their first token.",
        &prompt,
    );
}

/// Prometheus metrics of the process and this node
#[utoipa::path(get, path = "/metrics", tag = "cluster", responses(
    (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4")))]
async fn render(State(s): State<Arc<AppState>>) -> Response {
    // The node's series read sled and the files on disk: off the executor.
    let out = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        if let Some(h) = handle() {
            h.run_upkeep();
            out.push_str(&h.render());
        }
        raft_series(&s, &mut out);
        load_series(&s, &mut out);
        process_series(&mut out);
        out
    })
    .await;
    match out {
        Ok(out) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metrics could not be rendered: {e}"),
        )
            .into_response(),
    }
}
