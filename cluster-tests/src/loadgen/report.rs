//! Reports: one result line per run ([`Report`], human or JSON) and the Markdown
//! comparison table of several runs ([`render_table`]).

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{failover, RunStats};

/// What was run, for the report.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub workload: String,
    pub system: String,
    pub clients: usize,
    /// Connections (HTTP/1.1: one per client; gRPC: shared HTTP/2 connections).
    pub conns: usize,
    /// `leader` when every client talks to the leader, `all` when spread over the targets.
    pub to: String,
}

/// The result of one run: one line of output.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub workload: String,
    pub system: String,
    pub clients: usize,
    pub conns: usize,
    pub to: String,
    /// Acknowledged operations in the measured window.
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Failed operations in the measured window.
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Failover runs only: unavailability and read-back (flattened into the object).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<failover::FailoverFigures>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Report {
    pub fn new(info: RunInfo, stats: &RunStats) -> Self {
        let seconds = stats.elapsed.as_secs_f64().max(1e-9);
        let h = &stats.hist;
        Report {
            workload: info.workload,
            system: info.system,
            clients: info.clients,
            conns: info.conns,
            to: info.to,
            ops: stats.acked(),
            seconds,
            ops_per_sec: stats.acked() as f64 / seconds,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            errors: stats.failed(),
            error_kinds: stats.errors.clone(),
            failover: None,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} clients={} to={} ops/s={:.0} p50={:.3}ms p99={:.3}ms errors={}",
            self.workload,
            self.system,
            self.clients,
            self.to,
            self.ops_per_sec,
            self.p50_ms,
            self.p99_ms,
            self.errors
        )?;
        for (kind, n) in &self.error_kinds {
            write!(f, " [{kind}: {n}]")?;
        }
        if let Some(x) = &self.failover {
            write!(
                f,
                " killed={} unavailable={:.0}ms longest_gap={:.0}ms read_back={} lost={} wrong={}",
                x.killed, x.unavailable_ms, x.max_gap_ms, x.checked, x.lost, x.wrong
            )?;
        }
        Ok(())
    }
}

impl Report {
    /// Counts items instead of requests (`items` per acknowledged operation, e.g. points
    /// per batch): multiplies `ops`, `ops_per_sec` and `errors`; latencies stay per request.
    pub fn per_item(mut self, items: u64) -> Self {
        self.ops *= items;
        self.ops_per_sec *= items as f64;
        self.errors *= items;
        self
    }
}

/// Parses reports written one JSON object per line (blank lines ignored).
pub fn parse_reports(text: &str) -> Result<Vec<Report>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("report line {}", i + 1)))
        .collect()
}

/// The peer report matching `r` (another system, same workload, clients and targeting).
fn peer<'a>(reports: &[&'a Report], r: &Report) -> Option<&'a Report> {
    reports.iter().copied().find(|o| {
        o.system != "metacenter"
            && (o.workload.as_str(), o.clients, o.to.as_str())
                == (r.workload.as_str(), r.clients, r.to.as_str())
    })
}

/// A Markdown table of `reports`, grouped by (workload, targeting, clients), with the
/// throughput ratio metacenter / peer on metacenter rows; failover reports go into a
/// second table ([`failover::render_failover_table`]).
pub fn render_table(reports: &[Report]) -> String {
    let (failovers, others): (Vec<&Report>, Vec<&Report>) =
        reports.iter().partition(|r| r.failover.is_some());
    let mut out = String::new();
    if !others.is_empty() {
        out.push_str(&render_throughput_table(&others));
    }
    if !failovers.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&failover::render_failover_table(&failovers));
    }
    out
}

/// The throughput table: ops/s, latency, errors and the ratio metacenter / peer.
fn render_throughput_table(reports: &[&Report]) -> String {
    let mut rows: Vec<&Report> = reports.to_vec();
    rows.sort_by_key(|r| {
        let system_rank = (r.system != "metacenter", r.system.clone());
        let to_rank = (r.to != "leader", r.to.clone());
        (r.workload.clone(), to_rank, r.clients, system_rank)
    });
    let mut out = String::from(
        "| workload | system | to | clients | conns | ops/s | p50 ms | p99 ms | errors | metacenter/peer |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let ratio = match peer(reports, r) {
            Some(e) if r.system == "metacenter" && e.ops_per_sec > 0.0 => {
                format!("{:.2}x", r.ops_per_sec / e.ops_per_sec)
            }
            _ => String::new(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |\n",
            r.workload,
            r.system,
            r.to,
            r.clients,
            r.conns,
            r.ops_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            ratio
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(system: &str, clients: usize, ops_per_sec: f64) -> Report {
        Report {
            workload: "kv-put".into(),
            system: system.into(),
            clients,
            conns: clients,
            to: "leader".into(),
            ops: 1,
            seconds: 1.0,
            ops_per_sec,
            p50_ms: 1.0,
            p99_ms: 2.0,
            p999_ms: 3.0,
            max_ms: 4.0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            failover: None,
        }
    }

    #[test]
    fn table_has_ratio_on_metacenter_rows() {
        let rs = [
            report("etcd", 64, 5000.0),
            report("metacenter", 64, 10000.0),
            report("metacenter", 1, 900.0),
        ];
        let lines: Vec<String> = parse_reports(
            &rs.iter()
                .map(|r| serde_json::to_string(r).unwrap() + "\n")
                .collect::<String>(),
        )
        .map(|v| render_table(&v).lines().map(String::from).collect())
        .unwrap();
        assert_eq!(lines.len(), 5);
        assert!(lines[2].contains("| metacenter | leader | 1 |") && lines[2].ends_with("|  |"));
        assert!(lines[3].contains("| metacenter |") && lines[3].ends_with("| 2.00x |"));
        assert!(lines[4].contains("| etcd |"));
    }
}
