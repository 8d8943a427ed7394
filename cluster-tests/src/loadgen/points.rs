//! Metric points (`loadgen points`): batch writes, then reads of one series.
//!
//! Write phase: writer `i` owns run id `runs[i]` (a fresh UUID) and sends batches of
//! `batch` points of metric `loss` with steps `seq * batch ..`, timestamps one millisecond
//! apart starting one day ago. Sinks:
//!
//! - metacenter: `POST /api/v1/metrics/batch` `{"metrics":[{run_id, metric_name, step,
//!   value, time}...]}`, 201 expected.
//! - VictoriaMetrics: `POST /api/v1/import`, the batch as one JSON line
//!   `{"metric":{"__name__":"loss","run_id":..},"values":[..],"timestamps":[..]}`.
//!
//! Read phase (metacenter): history (`?limit=`), `latest` and `stats` of the written series.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::{DateTime, SecondsFormat, Utc};

use super::{
    call_json, drive, http_client, send_ack, GetAck, OpError, RunConfig, RunStats, Workload,
};

/// Where points are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sink {
    Metacenter,
    VictoriaMetrics,
}

impl Sink {
    pub fn name(self) -> &'static str {
        match self {
            Sink::Metacenter => "metacenter",
            Sink::VictoriaMetrics => "victoria-metrics",
        }
    }
}

/// What the points look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// One metric, `loss`, full-precision f64 values, one millisecond apart.
    Flat,
    /// Five metrics logged together at each step, float32 values, jittered times
    /// ([`super::curves`]).
    Curves,
}

/// Parameters of the points workload.
#[derive(Clone, Debug)]
pub struct PointsSpec {
    pub sink: Sink,
    pub targets: Vec<String>,
    pub writers: usize,
    pub batch: usize,
    pub shape: Shape,
    pub timeout: Duration,
}

impl PointsSpec {
    /// Points in one request.
    pub fn points_per_batch(&self) -> usize {
        match self.shape {
            Shape::Flat => self.batch,
            Shape::Curves => {
                super::curves::steps_per_batch(self.batch) * super::curves::METRICS.len()
            }
        }
    }
}

const METRIC: &str = "loss";

/// Batch writer; writer `i` writes run `runs[i]` through `targets[i % len]`.
pub struct PointWriter {
    http: reqwest::Client,
    sink: Sink,
    urls: Vec<String>,
    pub runs: Vec<String>,
    batch: usize,
    shape: Shape,
    t0_ms: i64,
}

impl PointWriter {
    pub fn new(spec: &PointsSpec) -> Result<Self> {
        if spec.batch == 0 {
            bail!("batch must be at least 1");
        }
        let path = match spec.sink {
            Sink::Metacenter => "/api/v1/metrics/batch",
            Sink::VictoriaMetrics => "/api/v1/import",
        };
        Ok(PointWriter {
            http: http_client(spec.writers, spec.timeout)?,
            sink: spec.sink,
            urls: spec
                .targets
                .iter()
                .map(|t| format!("http://{t}{path}"))
                .collect(),
            runs: (0..spec.writers)
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect(),
            batch: spec.batch,
            shape: spec.shape,
            t0_ms: Utc::now().timestamp_millis() - 86_400_000,
        })
    }

    fn value(step: u64) -> f64 {
        2.0 / (1.0 + step as f64 / 1000.0) + (step % 7) as f64 * 1e-3
    }

    /// The request body of batch `seq` of `run`.
    fn body(&self, run: &str, seq: u64) -> String {
        if self.shape == Shape::Curves {
            return super::curves::body(self.sink, run, seq, self.batch, self.t0_ms);
        }
        let first = seq * self.batch as u64;
        let steps = first..first + self.batch as u64;
        let mut b = String::with_capacity(self.batch * 120);
        match self.sink {
            Sink::Metacenter => {
                b.push_str(r#"{"metrics":["#);
                for (k, step) in steps.enumerate() {
                    let time = DateTime::from_timestamp_millis(self.t0_ms + step as i64)
                        .unwrap_or_default()
                        .to_rfc3339_opts(SecondsFormat::Millis, true);
                    let sep = if k == 0 { "" } else { "," };
                    let _ = write!(
                        b,
                        r#"{sep}{{"run_id":"{run}","metric_name":"{METRIC}","step":{step},"value":{},"time":"{time}"}}"#,
                        Self::value(step)
                    );
                }
                b.push_str("]}");
            }
            Sink::VictoriaMetrics => {
                let _ = write!(
                    b,
                    r#"{{"metric":{{"__name__":"{METRIC}","run_id":"{run}"}},"values":["#
                );
                for (k, step) in steps.clone().enumerate() {
                    let sep = if k == 0 { "" } else { "," };
                    let _ = write!(b, "{sep}{}", Self::value(step));
                }
                b.push_str(r#"],"timestamps":["#);
                for (k, step) in steps.enumerate() {
                    let sep = if k == 0 { "" } else { "," };
                    let _ = write!(b, "{sep}{}", self.t0_ms + step as i64);
                }
                b.push_str("]}\n");
            }
        }
        b
    }
}

impl Workload for PointWriter {
    async fn op(&self, client: usize, seq: u64) -> Result<(), OpError> {
        let run = &self.runs[client % self.runs.len()];
        let req = self
            .http
            .post(&self.urls[client % self.urls.len()])
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body(run, seq));
        send_ack(req).await
    }
}

/// Runs the write phase; returns the writer (for its run ids) and what was measured.
pub async fn run_writes(
    spec: &PointsSpec,
    cfg: &RunConfig,
) -> Result<(Arc<PointWriter>, RunStats)> {
    let w = Arc::new(PointWriter::new(spec)?);
    let stats = drive(w.clone(), cfg).await?;
    Ok((w, stats))
}

/// What the read phase reads.
#[derive(Clone, Copy, Debug)]
pub enum PointRead {
    /// `GET .../metrics/loss?limit=N`.
    History(usize),
    Latest,
    Stats,
}

/// Reads `what` of the written runs on every target with `cfg`; a history read first
/// checks that each run answers with the full `limit` points.
pub async fn run_read(
    targets: &[String],
    runs: &[String],
    what: PointRead,
    cfg: &RunConfig,
    timeout: Duration,
) -> Result<RunStats> {
    let mut urls = Vec::new();
    for t in targets {
        for run in runs {
            let base = format!("http://{t}/api/v1/runs/{run}/metrics/{METRIC}");
            urls.push(match what {
                PointRead::History(n) => format!("{base}?limit={n}"),
                PointRead::Latest => format!("{base}/latest"),
                PointRead::Stats => format!("{base}/stats"),
            });
        }
    }
    if let PointRead::History(n) = what {
        let http = http_client(1, timeout)?;
        for url in &urls {
            let (status, v) = call_json(http.get(url))
                .await
                .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
            let got = v["count"].as_u64().unwrap_or(0);
            if status != 200 || got != n as u64 {
                bail!("{url}: status {status}, count {got}, {n} expected (write longer)");
            }
        }
    }
    drive(Arc::new(GetAck::new(urls, cfg.clients, timeout)?), cfg).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn writer(sink: Sink) -> PointWriter {
        let spec = PointsSpec {
            sink,
            targets: vec!["127.0.0.1:1".into()],
            writers: 2,
            batch: 3,
            shape: Shape::Flat,
            timeout: Duration::from_secs(1),
        };
        PointWriter::new(&spec).unwrap()
    }

    #[test]
    fn metacenter_batch_is_valid_json_with_consecutive_steps() {
        let w = writer(Sink::Metacenter);
        let v: Value = serde_json::from_str(&w.body("r", 2)).unwrap();
        let items = v["metrics"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        let steps: Vec<u64> = items.iter().map(|i| i["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, [6, 7, 8]);
        assert_eq!(items[0]["run_id"], "r");
        assert!(DateTime::parse_from_rfc3339(items[2]["time"].as_str().unwrap()).is_ok());
        assert_ne!(w.runs[0], w.runs[1]);
    }

    #[test]
    fn victoria_batch_is_one_json_line() {
        let w = writer(Sink::VictoriaMetrics);
        let body = w.body("r", 0);
        assert_eq!(body.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(body.trim_end()).unwrap();
        assert_eq!(v["metric"]["run_id"], "r");
        assert_eq!(v["values"].as_array().unwrap().len(), 3);
        let ts = v["timestamps"].as_array().unwrap();
        assert_eq!(ts[1].as_i64().unwrap() - ts[0].as_i64().unwrap(), 1);
    }
}
