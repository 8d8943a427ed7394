//! A nemesis: faults injected into a three-node process cluster while workloads with
//! checkers run against it ([`workloads`]). Faults, one at a time, each on the leader
//! or on a random node: `kill -9` then a restart, SIGSTOP then SIGCONT (a pause, which
//! peers see as a partition that drops packets), and the node's wall clock an hour
//! ahead or behind (every node runs under libfaketime with a clock file of its own; the
//! monotonic clock is left alone). After each fault is healed the campaign waits until
//! every node is ready again. A campaign is seeded; the seed replays the choice of
//! faults (timing on a busy machine still varies).
//!
//! [`Report`] counts faults by kind and operations by workload, lists violations (must
//! be none) and gives, per fault kind, the longest time without a definite register
//! answer during a fault of that kind.

pub mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::linearizability;
use crate::process::ProcessCluster;
use workloads::Shared;

/// Debian's libfaketime (package `faketime`).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Kill,
    Pause,
    ClockAhead,
    ClockBehind,
}

const KINDS: [FaultKind; 4] = [
    FaultKind::Kill,
    FaultKind::Pause,
    FaultKind::ClockAhead,
    FaultKind::ClockBehind,
];

/// What a campaign runs.
#[derive(Debug, Clone, Copy)]
pub struct Campaign {
    pub seed: u64,
    /// Injecting faults for this long.
    pub duration: Duration,
    /// Longest a fault is held before it is healed.
    pub max_hold: Duration,
}

/// What a campaign saw.
#[derive(Debug, Default)]
pub struct Report {
    pub faults: BTreeMap<FaultKind, usize>,
    pub ops: BTreeMap<&'static str, usize>,
    pub violations: Vec<String>,
    pub longest_unavailable: BTreeMap<FaultKind, Duration>,
}

impl Report {
    /// A Markdown table of the campaign.
    pub fn table(&self, c: &Campaign) -> String {
        let mut t = format!(
            "nemesis, seed {}, {:?} of faults\n\n| fault | injected | longest without a register answer |\n|---|---:|---:|\n",
            c.seed, c.duration
        );
        for (k, n) in &self.faults {
            let gap = self.longest_unavailable.get(k).copied().unwrap_or_default();
            t.push_str(&format!("| {k:?} | {n} | {} ms |\n", gap.as_millis()));
        }
        t.push_str("\n| workload | acknowledged operations |\n|---|---:|\n");
        for (w, n) in &self.ops {
            t.push_str(&format!("| {w} | {n} |\n"));
        }
        t.push_str(&format!("\nviolations: {}\n", self.violations.len()));
        for v in &self.violations {
            t.push_str(&format!("- {v}\n"));
        }
        t
    }
}

/// A fault in place, until [`heal`] undoes it.
struct Injected {
    kind: FaultKind,
    node: u64,
    at: Instant,
}

fn clock_file(dir: &Path, node: u64) -> PathBuf {
    dir.join(format!("clock{node}"))
}

async fn start(dir: &Path) -> Result<ProcessCluster> {
    if !Path::new(LIBFAKETIME).exists() {
        bail!("the nemesis needs Debian's faketime (apt-get install faketime)");
    }
    let files: Vec<String> = (1..=3)
        .map(|n| {
            let f = clock_file(dir, n);
            std::fs::write(&f, "+0").map(|_| f.display().to_string())
        })
        .collect::<std::io::Result<_>>()?;
    let mut env = Vec::new();
    for n in 1..=3u64 {
        env.push((n, "LD_PRELOAD", LIBFAKETIME));
        env.push((n, "FAKETIME_TIMESTAMP_FILE", files[n as usize - 1].as_str()));
        env.push((n, "FAKETIME_NO_CACHE", "1"));
        env.push((n, "FAKETIME_DONT_FAKE_MONOTONIC", "1"));
    }
    let settings = [
        ("services.stale_threshold_ms", "1000"),
        ("services.reap_interval_ms", "200"),
        ("load.gc_interval_ms", "500"),
    ];
    ProcessCluster::start_with_env(3, &settings, &env).await
}

async fn inject(c: &mut ProcessCluster, dir: &Path, rng: &mut StdRng) -> Result<Injected> {
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let node = if rng.random_range(0..10) < 6 {
        c.leader(Duration::from_secs(60)).await?
    } else {
        rng.random_range(1..=3)
    };
    match kind {
        FaultKind::Kill => c.kill9(node)?,
        FaultKind::Pause => c.stop(node)?,
        FaultKind::ClockAhead => std::fs::write(clock_file(dir, node), "+1h")?,
        FaultKind::ClockBehind => std::fs::write(clock_file(dir, node), "-1h")?,
    }
    Ok(Injected {
        kind,
        node,
        at: Instant::now(),
    })
}

async fn heal(c: &mut ProcessCluster, dir: &Path, f: &Injected) -> Result<()> {
    match f.kind {
        FaultKind::Kill => c.restart(f.node)?,
        FaultKind::Pause => c.cont(f.node)?,
        FaultKind::ClockAhead | FaultKind::ClockBehind => {
            std::fs::write(clock_file(dir, f.node), "+0")?
        }
    }
    for id in c.ids() {
        c.wait_ready(id, Duration::from_secs(60)).await?;
    }
    Ok(())
}

/// The longest interval within `[from, to]` without an acknowledgement in `acks`.
fn longest_gap(acks: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut gap = Duration::ZERO;
    for &a in acks.iter().filter(|a| **a > from && **a < to) {
        gap = gap.max(a - last);
        last = a;
    }
    gap.max(to.saturating_duration_since(last))
}

/// Runs a campaign on a fresh cluster and returns what it saw.
pub async fn run(campaign: Campaign) -> Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut c = start(dir.path()).await?;
    let r = run_on(&mut c, dir.path(), campaign).await;
    if r.is_err() || r.as_ref().is_ok_and(|r| !r.violations.is_empty()) {
        c.print_logs();
    }
    r
}

async fn run_on(c: &mut ProcessCluster, dir: &Path, campaign: Campaign) -> Result<Report> {
    let mut rng = StdRng::seed_from_u64(campaign.seed);
    let shared = Arc::new(Shared::default());
    let apis = c.apis();
    let mut tasks = Vec::new();
    for i in 0..4 {
        let seed = campaign.seed ^ (i as u64 + 1);
        tasks.push(tokio::spawn(workloads::registers(
            i,
            seed,
            apis.clone(),
            shared.clone(),
        )));
    }
    for i in 0..2 {
        let seed = campaign.seed ^ (i as u64 + 100);
        tasks.push(tokio::spawn(workloads::load(
            i,
            seed,
            apis.clone(),
            shared.clone(),
        )));
    }
    let mut services = Vec::new();
    for i in 0..3 {
        let (name, seed) = (format!("nem-svc-{i}"), campaign.seed ^ (i as u64 + 200));
        services.push(tokio::spawn(workloads::service(
            name,
            seed,
            apis.clone(),
            shared.clone(),
        )));
    }
    let mut report = Report::default();
    let mut intervals = Vec::new();
    let end = Instant::now() + campaign.duration;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1000))).await;
        let f = inject(c, dir, &mut rng)
            .await
            .context("injecting a fault")?;
        let hold = rng.random_range(Duration::from_millis(300)..campaign.max_hold);
        tokio::time::sleep(hold).await;
        heal(c, dir, &f)
            .await
            .with_context(|| format!("healing {:?} of node {}", f.kind, f.node))?;
        *report.faults.entry(f.kind).or_default() += 1;
        intervals.push((f.kind, f.at, Instant::now()));
    }
    finish(c, shared, tasks, services, report, intervals).await
}

async fn finish(
    c: &mut ProcessCluster,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    services: Vec<tokio::task::JoinHandle<()>>,
    mut report: Report,
    intervals: Vec<(FaultKind, Instant, Instant)>,
) -> Result<Report> {
    shared.stop.store(true, Ordering::SeqCst);
    for t in tasks.into_iter().chain(services) {
        t.await?;
    }
    let acks = shared.acks.lock().unwrap().clone();
    for (kind, from, to) in intervals {
        let gap = longest_gap(&acks, from, to);
        let e = report.longest_unavailable.entry(kind).or_default();
        *e = (*e).max(gap);
    }
    check_registers(&shared);
    check_load(c, &shared).await;
    check_services_expire(c, &shared).await;
    if !c.exited().is_empty() {
        shared.violation(format!("nodes exited: {:?}", c.exited()));
    }
    report.ops = shared.ops.lock().unwrap().clone();
    report.violations = shared.violations.lock().unwrap().clone();
    Ok(report)
}

fn check_registers(s: &Shared) {
    let events = s.history.events();
    if let Ok(path) = std::env::var("NEMESIS_HISTORY") {
        let text: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
        let _ = std::fs::write(path, text.join("\n"));
    }
    match linearizability::check(&events, Duration::from_secs(60)) {
        Ok(reports) => {
            let searched = reports.iter().filter(|r| r.linearizable()).count();
            s.count_n("register keys searched", searched);
            s.count_n("register keys quick-checked", reports.len() - searched);
            for r in reports.iter().filter(|r| !r.passed()) {
                s.violation(format!(
                    "register {} not linearizable: {:?}",
                    r.key, r.verdict
                ));
            }
        }
        Err(e) => s.violation(format!("linearizability check failed: {e}")),
    }
}

/// Every node, read linearizably, shows as many queued requests per engine as were
/// added and not finished.
async fn check_load(c: &ProcessCluster, s: &Shared) {
    let want = s.open.lock().unwrap().clone();
    for api in c.apis() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = workloads::queued(&api).await;
            if got.as_ref() == Some(&want) {
                break;
            }
            if Instant::now() > deadline {
                s.violation(format!("load on {api}: {got:?}, expected {want:?}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// With heartbeats stopped, every campaign service goes within its bound.
async fn check_services_expire(c: &ProcessCluster, s: &Shared) {
    let bound = Duration::from_millis(1000 + workloads::SERVICE_AFTER_MS + 10_000);
    let deadline = Instant::now() + bound;
    let http = reqwest::Client::new();
    for api in c.apis() {
        for i in 0..3 {
            let url = format!("http://{api}/services/nem-svc-{i}");
            while http
                .get(&url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
                != Some(404)
            {
                if Instant::now() > deadline {
                    s.violation(format!("silent service nem-svc-{i} stayed on {api}"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_counts_the_edges_of_the_interval() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let acks = [ms(100), ms(150), ms(900), ms(2000)];
        assert_eq!(
            longest_gap(&acks, ms(0), ms(1000)),
            Duration::from_millis(750)
        );
        assert_eq!(longest_gap(&[], ms(0), ms(300)), Duration::from_millis(300));
    }
}
