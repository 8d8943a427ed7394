//! The failover table: one row per run, and per system with several runs (rounds on fresh
//! clusters) a row of medians; the unavailability ratio metacenter / peer (lower is
//! better) goes on metacenter's row of medians, or on its only row.

use super::FailoverFigures;
use crate::loadgen::Report;

/// Medians (times) and sums (counts) of several failover runs of one system.
#[derive(Clone, Debug, PartialEq)]
struct Summary {
    runs: usize,
    unavailable_ms: f64,
    max_gap_ms: f64,
    checked: u64,
    lost: u64,
    wrong: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Summary {
    fn of(figures: &[FailoverFigures]) -> Self {
        Summary {
            runs: figures.len(),
            unavailable_ms: median(figures.iter().map(|f| f.unavailable_ms).collect()),
            max_gap_ms: median(figures.iter().map(|f| f.max_gap_ms).collect()),
            checked: figures.iter().map(|f| f.checked).sum(),
            lost: figures.iter().map(|f| f.lost).sum(),
            wrong: figures.iter().map(|f| f.wrong).sum(),
        }
    }
}

/// Runs grouped by (workload, system, clients): per workload (`failover` kills the
/// leader, `failover-pause` pauses it) metacenter first, then the peers by name.
fn groups<'a>(reports: &[&'a Report]) -> Vec<Vec<&'a Report>> {
    let mut rows: Vec<&Report> = reports
        .iter()
        .copied()
        .filter(|r| r.failover.is_some())
        .collect();
    rows.sort_by_key(|r| {
        let system = (r.system != "metacenter", r.system.clone());
        (r.workload.clone(), system, r.clients)
    });
    let mut out: Vec<Vec<&Report>> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(g) if same_group(g[0], r) => g.push(r),
            _ => out.push(vec![r]),
        }
    }
    out
}

fn same_group(a: &Report, b: &Report) -> bool {
    (&a.workload, &a.system, a.clients) == (&b.workload, &b.system, b.clients)
}

fn summary(group: &[&Report]) -> Summary {
    let figures: Vec<FailoverFigures> = group.iter().filter_map(|r| r.failover.clone()).collect();
    Summary::of(&figures)
}

fn row(workload: &str, r: &Report, s: &Summary, ratio: &str) -> String {
    format!(
        "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} |\n",
        workload,
        r.system,
        r.clients,
        s.unavailable_ms,
        s.max_gap_ms,
        s.checked,
        s.lost,
        s.wrong,
        ratio
    )
}

/// The Markdown table of failover reports.
pub fn render_failover_table(reports: &[&Report]) -> String {
    let groups = groups(reports);
    let mut out = String::from(
        "| workload | system | clients | unavailable ms | longest gap ms | writes acked | \
         lost | wrong | unavailable metacenter/peer |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for g in &groups {
        let s = summary(g);
        let peer = groups
            .iter()
            .find(|o| {
                let o = o[0];
                o.system != "metacenter" && o.clients == g[0].clients && o.workload == g[0].workload
            })
            .map(|o| summary(o));
        let ratio = match peer {
            Some(p) if g[0].system == "metacenter" && p.unavailable_ms > 0.0 => {
                format!("{:.2}x", s.unavailable_ms / p.unavailable_ms)
            }
            _ => String::new(),
        };
        if g.len() == 1 {
            out.push_str(&row(&g[0].workload, g[0], &s, &ratio));
            continue;
        }
        for r in g {
            out.push_str(&row(&r.workload, r, &summary(&[r]), ""));
        }
        let name = format!("{}, median of {}", g[0].workload, s.runs);
        out.push_str(&row(&name, g[0], &s, &ratio));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    fn report(workload: &str, system: &str, unavailable_ms: f64) -> Report {
        serde_json::from_value(serde_json::json!({
            "workload": workload, "system": system, "clients": 64, "conns": 64, "to": "all",
            "ops": 1, "seconds": 1.0, "ops_per_sec": 1.0, "p50_ms": 1.0, "p99_ms": 1.0,
            "p999_ms": 1.0, "max_ms": 1.0, "errors": 0, "error_kinds": {},
            "killed": "a", "unavailable_ms": unavailable_ms, "max_gap_ms": 1.0,
            "checked": 1, "lost": 0, "wrong": 0
        }))
        .unwrap()
    }

    #[test]
    fn kill_and_pause_runs_are_compared_with_the_peer_of_their_own_kind() {
        let runs = [
            report("failover", "metacenter", 1000.0),
            report("failover-pause", "etcd", 4000.0),
            report("failover-pause", "metacenter", 2000.0),
            report("failover", "etcd", 500.0),
        ];
        let table = render_failover_table(&runs.iter().collect::<Vec<_>>());
        let rows: Vec<&str> = table.lines().skip(2).collect();
        assert_eq!(rows.len(), 4, "{table}");
        assert!(rows[0].starts_with("| failover | metacenter |") && rows[0].ends_with("| 2.00x |"));
        assert!(rows[1].starts_with("| failover | etcd |"), "{table}");
        assert!(rows[2].starts_with("| failover-pause | metacenter |"));
        assert!(rows[2].ends_with("| 0.50x |"), "{table}");
    }
}
