//! Live metric streams (`loadgen ws`): many WebSocket subscribers on one node while
//! points are ingested through every node; delivery latency per point.
//!
//! Subscriber `i` watches its own run (`WS /ws/metrics/{run_i}` on the first target,
//! subscribed to metric `loss`), as one dashboard per training run would. A writer sends
//! a batch of `batch` points every `batch / rate` seconds, through the targets in turn;
//! batch `k` holds one point for each of `batch` consecutive runs (wrapping), so every
//! subscriber gets points at `rate / subscribers` per second. A point's value is the
//! microsecond (since the start of the run) its batch was sent; a subscriber receiving it
//! records now minus that value: send -> validate -> replicate -> apply on the
//! subscriber's node -> push. Points sent in the warm-up are not counted; `lagged`
//! notices count as errors, with the batches they say were dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{http_client, RunStats};

/// Parameters of the stream workload.
#[derive(Clone, Debug)]
pub struct WsSpec {
    /// Subscribers connect to the first; points are written through all in turn.
    pub targets: Vec<String>,
    pub subscribers: usize,
    /// Points per second ingested.
    pub rate: usize,
    /// Points per write request.
    pub batch: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
}

/// What a stream run measured, besides the delivery latencies.
#[derive(Debug, Default)]
pub struct WsFigures {
    /// Points acknowledged by the cluster in the measured window.
    pub written: u64,
    /// Points pushed to subscribers in the measured window.
    pub delivered: u64,
}

const METRIC: &str = "loss";

/// Connects every subscriber, ingests for warm-up + duration, and returns the delivery
/// latencies (as [`RunStats`], one sample per delivered point) and the counts.
pub async fn run_ws(spec: &WsSpec) -> Result<(RunStats, WsFigures)> {
    if spec.subscribers == 0 || spec.batch == 0 || spec.rate == 0 {
        bail!("subscribers, batch and rate must be at least 1");
    }
    if spec.batch > spec.subscribers {
        bail!("a batch holds one point per run: at most --subscribers points");
    }
    let runs: Arc<Vec<String>> = Arc::new(
        (0..spec.subscribers)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect(),
    );
    let t0 = Instant::now();
    // Set once every subscriber is connected: points sent before are not measured.
    let from = Arc::new(AtomicU64::new(u64::MAX));
    let subs = connect_all(&spec.targets[0], &runs, t0, &from, spec.timeout).await?;
    eprintln!(
        "[ws] {} subscribers connected to {}",
        subs.len(),
        spec.targets[0]
    );
    let measure_from = (t0.elapsed() + spec.warmup).as_micros() as u64;
    from.store(measure_from, Ordering::Relaxed);
    let stop_at = Instant::now() + spec.warmup + spec.duration;
    let written = write(spec, &runs, t0, measure_from, stop_at).await?;
    // Points sent at the very end still travel: give them the timeout to arrive.
    let deadline = Instant::now() + spec.timeout;
    let mut stats = RunStats::new();
    let mut delivered = 0;
    for s in subs {
        let left = deadline.saturating_duration_since(Instant::now());
        let sub = tokio::time::timeout(
            left,
            wait_for(&s.counter, written.per_run(runs.len(), s.index)),
        )
        .await
        .is_ok();
        s.task.abort();
        let out = s.out.lock().unwrap();
        let (hist, errors) = &*out;
        if !sub {
            *stats.errors.entry("missing points".into()).or_default() += 1;
        }
        delivered += hist.len();
        stats.hist.add(hist).context("merging histograms")?;
        for (k, n) in errors {
            *stats.errors.entry(k.clone()).or_default() += n;
        }
    }
    stats.elapsed = spec.duration;
    Ok((
        stats,
        WsFigures {
            written: written.measured,
            delivered,
        },
    ))
}

type Outcome = (
    hdrhistogram::Histogram<u64>,
    std::collections::BTreeMap<String, u64>,
);

struct Subscriber {
    /// Index of the subscriber's run.
    index: usize,
    /// Measured points received so far.
    counter: Arc<AtomicU64>,
    out: Arc<std::sync::Mutex<Outcome>>,
    task: tokio::task::JoinHandle<()>,
}

async fn connect_all(
    target: &str,
    runs: &Arc<Vec<String>>,
    t0: Instant,
    from: &Arc<AtomicU64>,
    timeout: Duration,
) -> Result<Vec<Subscriber>> {
    let mut subs = Vec::with_capacity(runs.len());
    // 64 handshakes at a time.
    for chunk in runs.chunks(64) {
        let connecting = chunk.iter().map(|run| async move {
            let url = format!("ws://{target}/ws/metrics/{run}");
            let (mut ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(&url))
                .await
                .context("WebSocket handshake timed out")?
                .with_context(|| format!("connecting {url}"))?;
            let sub =
                json!({"type": "subscribe", "payload": {"run_id": run, "metric_names": [METRIC]}});
            ws.send(Message::text(sub.to_string())).await?;
            loop {
                let msg = tokio::time::timeout(timeout, ws.next())
                    .await
                    .context("no `subscribed` answer")?
                    .context("stream closed before `subscribed`")??;
                if let Message::Text(t) = msg {
                    if serde_json::from_str::<Value>(t.as_str())?["type"] == "subscribed" {
                        break;
                    }
                }
            }
            anyhow::Ok(ws)
        });
        for ws in futures::future::try_join_all(connecting).await? {
            subs.push(spawn_subscriber(ws, subs.len(), t0, from.clone()));
        }
    }
    Ok(subs)
}

fn spawn_subscriber<S>(mut ws: S, index: usize, t0: Instant, from: Arc<AtomicU64>) -> Subscriber
where
    S: futures::Stream<Item = tokio_tungstenite::tungstenite::Result<Message>>
        + Unpin
        + Send
        + 'static,
{
    let counter = Arc::new(AtomicU64::new(0));
    let hist = hdrhistogram::Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
    let out: Arc<std::sync::Mutex<Outcome>> =
        Arc::new(std::sync::Mutex::new((hist, Default::default())));
    let (c, o) = (counter.clone(), out.clone());
    let task = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(t) = msg else { continue };
            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                continue;
            };
            let now = t0.elapsed().as_micros() as u64;
            let mut o = o.lock().unwrap();
            match v["type"].as_str() {
                Some("metric") => {
                    for p in v["payload"]["metrics"].as_array().into_iter().flatten() {
                        let sent = p["value"].as_f64().unwrap_or(0.0) as u64;
                        if sent >= from.load(Ordering::Relaxed) {
                            let _ = o.0.record(now.saturating_sub(sent).max(1));
                            c.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Some("lagged") => {
                    let n = v["payload"]["dropped"].as_u64().unwrap_or(1);
                    *o.1.entry("lagged (batches dropped)".into()).or_default() += n;
                }
                _ => {}
            }
        }
    });
    Subscriber {
        index,
        counter,
        out,
        task,
    }
}

async fn wait_for(counter: &AtomicU64, n: u64) {
    while counter.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which points were acknowledged: per batch, its first run index and whether measured.
struct Written {
    batches: Vec<(usize, bool)>,
    batch: usize,
    measured: u64,
}

impl Written {
    /// Measured points acknowledged for run `i` of `n`.
    fn per_run(&self, n: usize, i: usize) -> u64 {
        self.batches
            .iter()
            .filter(|(first, measured)| *measured && (i + n - first) % n < self.batch)
            .count() as u64
    }
}

/// Sends a batch every `batch / rate` s until `stop_at`; at most 16 requests in flight.
async fn write(
    spec: &WsSpec,
    runs: &Arc<Vec<String>>,
    t0: Instant,
    measure_from: u64,
    stop_at: Instant,
) -> Result<Written> {
    let http = http_client(16, spec.timeout)?;
    let every = Duration::from_secs_f64(spec.batch as f64 / spec.rate as f64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    let mut pending = Vec::new();
    let mut k = 0usize;
    while Instant::now() < stop_at {
        tick.tick().await;
        let permit = slots.clone().acquire_owned().await?;
        let first = (k * spec.batch) % runs.len();
        let sent = t0.elapsed().as_micros() as u64;
        let items: Vec<Value> = (0..spec.batch)
            .map(|j| json!({"run_id": runs[(first + j) % runs.len()], "metric_name": METRIC, "step": k, "value": sent}))
            .collect();
        let url = format!(
            "http://{}/api/v1/metrics/batch",
            spec.targets[k % spec.targets.len()]
        );
        let req = http.post(url).json(&json!({ "metrics": items }));
        pending.push(tokio::spawn(async move {
            let ok = matches!(req.send().await, Ok(r) if r.status().is_success());
            drop(permit);
            (first, sent >= measure_from, ok)
        }));
        k += 1;
    }
    let mut written = Written {
        batches: Vec::new(),
        batch: spec.batch,
        measured: 0,
    };
    for p in pending {
        let (first, measured, ok) = p.await?;
        if !ok {
            bail!("a batch of points was not acknowledged");
        }
        written.batches.push((first, measured));
        written.measured += if measured { spec.batch as u64 } else { 0 };
    }
    Ok(written)
}
