//! The run plan and timing loop shared by every workload: [`Workload`] (one operation),
//! [`RunConfig`] and [`Limit`] (how long, how many clients), [`drive`] (closed-loop
//! clients) and [`RunStats`] (what they measured).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;

/// When a run stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Measure for this long (after the warm-up).
    Time(Duration),
    /// Measure this many operation attempts in total, over all clients.
    Ops(u64),
}

/// How a run is driven.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Concurrent closed-loop clients.
    pub clients: usize,
    pub limit: Limit,
    /// Operations during the warm-up are performed but not recorded.
    pub warmup: Duration,
    /// A client sleeps this long after a failed operation.
    pub error_pause: Duration,
}

/// Why an operation was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpError {
    /// The server answered with a non-success status (HTTP status or gRPC code name).
    Status(String),
    /// No answer in time.
    Timeout,
    /// Connection refused, reset, protocol error...
    Transport(String),
}

impl OpError {
    /// Classifies a reqwest failure.
    pub fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            OpError::Timeout
        } else if e.is_connect() {
            OpError::Transport("connect".into())
        } else {
            OpError::Transport("request".into())
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Status(s) => write!(f, "status {s}"),
            OpError::Timeout => f.write_str("timeout"),
            OpError::Transport(s) => write!(f, "transport {s}"),
        }
    }
}

/// One kind of operation that clients repeat.
pub trait Workload: Send + Sync + 'static {
    /// Performs the `seq`-th operation of `client`; `Ok` only when it was acknowledged.
    fn op(&self, client: usize, seq: u64) -> impl Future<Output = Result<(), OpError>> + Send;
}

/// What a client does next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Warmup,
    Measure,
    Stop,
}

/// Shared clock and operation budget of one run.
struct Plan {
    measure_from: Instant,
    stop_at: Option<Instant>,
    budget: Option<u64>,
    claimed: AtomicU64,
}

impl Plan {
    fn new(cfg: &RunConfig) -> Self {
        let measure_from = Instant::now() + cfg.warmup;
        let (stop_at, budget) = match cfg.limit {
            Limit::Time(d) => (Some(measure_from + d), None),
            Limit::Ops(n) => (None, Some(n)),
        };
        Plan {
            measure_from,
            stop_at,
            budget,
            claimed: AtomicU64::new(0),
        }
    }

    fn next(&self) -> Step {
        let now = Instant::now();
        if now < self.measure_from {
            return Step::Warmup;
        }
        if self.stop_at.is_some_and(|t| now >= t) {
            return Step::Stop;
        }
        match self.budget {
            Some(n) if self.claimed.fetch_add(1, Ordering::Relaxed) >= n => Step::Stop,
            _ => Step::Measure,
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct RunStats {
    /// Latency of acknowledged operations, microseconds.
    pub hist: Histogram<u64>,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
    /// Measured window: end of warm-up to the end of the last operation.
    pub elapsed: Duration,
}

impl RunStats {
    pub(super) fn new() -> Self {
        RunStats {
            hist: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"),
            errors: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Acknowledged operations.
    pub fn acked(&self) -> u64 {
        self.hist.len()
    }

    /// Failed operations.
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    pub(super) fn merge(&mut self, other: RunStats) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }
}

/// Runs `cfg.clients` closed-loop clients of `workload` and merges what they measured.
pub async fn drive<W: Workload>(workload: Arc<W>, cfg: &RunConfig) -> Result<RunStats> {
    if cfg.clients == 0 {
        bail!("at least one client is needed");
    }
    let plan = Arc::new(Plan::new(cfg));
    let tasks: Vec<_> = (0..cfg.clients)
        .map(|id| {
            let (w, p, pause) = (workload.clone(), plan.clone(), cfg.error_pause);
            tokio::spawn(client_loop(w, id, p, pause))
        })
        .collect();
    let mut total = RunStats::new();
    for t in tasks {
        total.merge(t.await.context("client task panicked")?);
    }
    total.elapsed = plan.measure_from.elapsed();
    Ok(total)
}

async fn client_loop<W: Workload>(
    w: Arc<W>,
    id: usize,
    plan: Arc<Plan>,
    pause: Duration,
) -> RunStats {
    let mut stats = RunStats::new();
    let mut seq = 0u64;
    loop {
        let step = plan.next();
        if step == Step::Stop {
            return stats;
        }
        let start = Instant::now();
        let outcome = w.op(id, seq).await;
        seq += 1;
        match outcome {
            Ok(()) if step == Step::Measure => {
                stats
                    .hist
                    .saturating_record(start.elapsed().as_micros() as u64);
            }
            Ok(()) => {}
            Err(e) => {
                if step == Step::Measure {
                    *stats.errors.entry(e.to_string()).or_default() += 1;
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flaky;

    impl Workload for Flaky {
        async fn op(&self, _client: usize, seq: u64) -> Result<(), OpError> {
            if seq % 4 == 3 {
                Err(OpError::Status("503".into()))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn drive_counts_acks_and_errors_within_the_budget() {
        let cfg = RunConfig {
            clients: 2,
            limit: Limit::Ops(100),
            warmup: Duration::ZERO,
            error_pause: Duration::ZERO,
        };
        let stats = drive(Arc::new(Flaky), &cfg).await.unwrap();
        assert_eq!(stats.acked() + stats.failed(), 100);
        assert!(stats.failed() > 0);
        assert_eq!(stats.errors.keys().collect::<Vec<_>>(), ["status 503"]);
    }

    #[tokio::test]
    async fn drive_stops_after_the_duration() {
        let cfg = RunConfig {
            clients: 3,
            limit: Limit::Time(Duration::from_millis(100)),
            warmup: Duration::from_millis(20),
            error_pause: Duration::from_millis(1),
        };
        let t = Instant::now();
        let stats = drive(Arc::new(Flaky), &cfg).await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(stats.acked() > 0);
        assert!(stats.elapsed >= Duration::from_millis(100));
    }
}
