//! `GET /metrics` in Prometheus text format (an area of its own, tagged `cluster`).
//!
//! Process-wide series (HTTP counters and latency histogram, recorded by the request
//! front) go through the `metrics` facade into the shared layer's global recorder
//! ([`recorder`]), rendered here. Per-node series (raft state, load gauges) are
//! rendered from the node's own state at scrape time, so an expired engine's gauges
//! disappear with it and several in-process nodes never mix their raft figures.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::recorder;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(render))
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
    let d = s.node.disk_bytes();
    let index = metacenter_raft::dir_bytes(&s.cfg.index_dir());
    let areas = [
        ("db", d.db),
        ("raft_log", d.raft_log),
        ("snapshots", d.snapshots),
        ("search_index", index),
    ];
    let areas: Vec<(String, f64)> = (areas.iter())
        .map(|(a, b)| (format!("{{area=\"{a}\"}}"), *b as f64))
        .collect();
    gauge(
        out,
        "disk_bytes",
        "Bytes on disk per area of the data directory.",
        &areas,
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
    backup_series(s, out);
}

/// This node's scheduled backups (`backup.*`).
fn backup_series(s: &AppState, out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let b = &s.backups;
    let gauges = [
        (
            "backup_last_success_timestamp_seconds",
            "Unix time of the last scheduled backup this node wrote (0: none).",
            b.last_success_unix.load(Relaxed),
        ),
        (
            "backup_last_size_bytes",
            "Size of the last scheduled backup this node wrote.",
            b.last_bytes.load(Relaxed),
        ),
    ];
    for (name, help, v) in gauges {
        gauge(out, name, help, &[(String::new(), v as f64)]);
    }
    let failures = b.failures.load(Relaxed);
    let _ = writeln!(
        out,
        "# HELP backup_failures_total Scheduled backups this node failed to write.\n\
         # TYPE backup_failures_total counter\nbackup_failures_total {failures}"
    );
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
        if let Some(h) = recorder::handle() {
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
