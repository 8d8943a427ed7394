//! Load generator behind `scripts/bench.sh` (binary `loadgen`).
//!
//! The machinery is shared by every workload:
//!
//! - [`Workload`]: one kind of operation a client repeats (a replicated key-value put here;
//!   discovery heartbeats in [`heartbeat`], engine load statistics in [`load`], metric
//!   points in [`points`]; leader failover, which drives its own writers, in [`failover`]).
//!   A workload only knows how to perform one operation and whether it was acknowledged;
//!   [`GetAck`] is the shared read (a `GET` that must answer 2xx).
//! - [`drive`]: the timing loop. `clients` tasks each run operations back to back (closed
//!   loop) for a duration or until a total number of operations; latencies of acknowledged
//!   operations go into a per-client HDR histogram (microseconds), merged at the end.
//! - [`Report`]: one result line (human or JSON) and [`render_table`], the comparison table
//!   of several runs with the throughput ratio of metacenter to its peer (etcd, Redis,
//!   VictoriaMetrics: whichever other system has a row of the same workload).
//! - [`http_client`]: the HTTP/1.1 keep-alive connection pool, sized to the clients.
//!
//! Systems under test for the key-value workload ([`System`]): metacenter
//! (`PUT /meta/{key}`), etcd over gRPC (the `etcd-client` crate, cargo feature
//! `etcd-client`) and etcd over its v3 HTTP/JSON gateway (`POST /v3/kv/put`).
//!
//! Only acknowledged (2xx / gRPC OK) operations are counted and timed; failures are counted
//! per kind, and a client pauses briefly after one so a down target is not hammered.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use rand::distr::{Alphanumeric, SampleString};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub mod failover;
pub mod heartbeat;
pub mod load;
pub mod points;
pub mod search;
pub mod ws;

// ---------------------------------------------------------------------------------------
// Run plan and timing loop
// ---------------------------------------------------------------------------------------

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
    fn new() -> Self {
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

    fn merge(&mut self, other: RunStats) {
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

// ---------------------------------------------------------------------------------------
// Reports and the comparison table
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Shared pieces: durations, HTTP pool, keys and values, targets
// ---------------------------------------------------------------------------------------

/// Parses `10s`, `500ms`, `2m`, `1.5s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid duration `{s}`"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" => n / 1_000_000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration unit in `{s}` (use ms, s, m or h)"),
    };
    Duration::try_from_secs_f64(secs).with_context(|| format!("invalid duration `{s}`"))
}

/// An HTTP/1.1 client whose keep-alive pool holds `conns` connections per host.
pub fn http_client(conns: usize, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(conns)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .context("building the HTTP client")
}

/// Random keys of a fixed printable size drawn from a key space.
#[derive(Clone, Debug)]
pub struct KeyGen {
    size: usize,
    space: u64,
}

impl KeyGen {
    /// Keys of `size` characters (zero-padded decimal), uniformly from `space` distinct keys.
    pub fn new(size: usize, space: u64) -> Result<Self> {
        if size == 0 || size > 512 {
            bail!("key size must be 1..=512");
        }
        let max = 10u64.checked_pow(size.min(19) as u32).unwrap_or(u64::MAX);
        Ok(KeyGen {
            size,
            space: space.clamp(1, max),
        })
    }

    pub fn next(&self) -> String {
        let n = rand::rng().random_range(0..self.space);
        format!("{n:0width$}", width = self.size)
    }
}

/// A random alphanumeric value of `size` bytes.
pub fn random_value(size: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), size)
}

/// Standard base64 with padding (etcd's JSON gateway carries keys and values this way).
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Splits `a,b,c` into addresses (a leading `http://` is dropped).
pub fn parse_targets(s: &str) -> Result<Vec<String>> {
    let t: Vec<String> = s
        .split(',')
        .map(|a| a.trim().trim_start_matches("http://").trim_end_matches('/'))
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if t.is_empty() {
        bail!("no targets given");
    }
    Ok(t)
}

/// Sends an HTTP request and returns the status and body as JSON (`Null` if not JSON).
async fn call_json(req: reqwest::RequestBuilder) -> Result<(u16, Value), OpError> {
    let resp = req.send().await.map_err(|e| OpError::from_reqwest(&e))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| OpError::from_reqwest(&e))?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Sends a write and drains the answer (so the connection is reused); `Ok` on 2xx.
async fn send_ack(req: reqwest::RequestBuilder) -> Result<(), OpError> {
    let resp = req.send().await.map_err(|e| OpError::from_reqwest(&e))?;
    let status = resp.status();
    resp.bytes().await.map_err(|e| OpError::from_reqwest(&e))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(OpError::Status(status.as_u16().to_string()))
    }
}

/// Reads: each operation is a `GET` of one of `urls` (client `i`, operation `s`: url
/// `(i + s) % len`), acknowledged on 2xx with the body drained.
pub struct GetAck {
    http: reqwest::Client,
    urls: Vec<String>,
}

impl GetAck {
    pub fn new(urls: Vec<String>, clients: usize, timeout: Duration) -> Result<Self> {
        if urls.is_empty() {
            bail!("no URL to read");
        }
        Ok(GetAck {
            http: http_client(clients, timeout)?,
            urls,
        })
    }
}

impl Workload for GetAck {
    async fn op(&self, client: usize, seq: u64) -> Result<(), OpError> {
        let i = client.wrapping_add(seq as usize) % self.urls.len();
        send_ack(self.http.get(&self.urls[i])).await
    }
}

// ---------------------------------------------------------------------------------------
// Systems under test
// ---------------------------------------------------------------------------------------

/// A system the key-value workload can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// metacenter: `PUT /meta/{key}` with `{"v": value}`.
    Metacenter,
    /// etcd v3 over gRPC (the `etcd-client` crate; needs cargo feature `etcd-client`).
    Etcd,
    /// etcd v3 over its HTTP/JSON gateway (`POST /v3/kv/put`).
    EtcdHttp,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Metacenter => "metacenter",
            System::Etcd => "etcd",
            System::EtcdHttp => "etcd-http",
        }
    }
}

/// The address of the current leader among `targets`.
pub async fn find_leader(system: System, targets: &[String]) -> Result<String> {
    let http = http_client(1, Duration::from_secs(3))?;
    let mut last = anyhow::anyhow!("no target answered");
    for t in targets {
        let found = match system {
            System::Metacenter => metacenter_leader(&http, t).await,
            System::EtcdHttp => etcd_http_is_leader(&http, t).await,
            System::Etcd => etcd_grpc::is_leader(t).await,
        };
        match found {
            Ok(Some(addr)) => return Ok(addr),
            Ok(None) => {}
            Err(e) => last = e,
        }
    }
    Err(last.context("finding the leader"))
}

/// metacenter's `GET /leader`: the leader's API address.
async fn metacenter_leader(http: &reqwest::Client, target: &str) -> Result<Option<String>> {
    let (status, v) = call_json(http.get(format!("http://{target}/leader")))
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    if status != 200 {
        return Ok(None);
    }
    Ok(v["api"].as_str().map(String::from))
}

/// Whether the etcd member at `target` leads (`/v3/maintenance/status` over the gateway).
async fn etcd_http_is_leader(http: &reqwest::Client, target: &str) -> Result<Option<String>> {
    let url = format!("http://{target}/v3/maintenance/status");
    let (_, v) = call_json(http.post(url).json(&json!({})))
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    let id = |x: &Value| {
        x.as_str()
            .map(String::from)
            .or(x.as_u64().map(|n| n.to_string()))
    };
    let (me, leader) = (id(&v["header"]["member_id"]), id(&v["leader"]));
    Ok((me.is_some() && me == leader).then(|| target.to_string()))
}

/// Cluster membership as metacenter reports it: (voters, leader known).
async fn metacenter_members(http: &reqwest::Client, target: &str) -> Result<(usize, bool)> {
    let (status, v) = call_json(http.get(format!("http://{target}/cluster/members")))
        .await
        .map_err(|e| anyhow::anyhow!("{target}: {e}"))?;
    if status != 200 {
        bail!("{target}: /cluster/members answered {status}");
    }
    let voters = v["voters"].as_array().map_or(0, Vec::len);
    Ok((voters, !v["leader"].is_null()))
}

// ---------------------------------------------------------------------------------------
// The key-value put workload
// ---------------------------------------------------------------------------------------

/// Parameters of the key-value put workload.
#[derive(Clone, Debug)]
pub struct KvSpec {
    pub system: System,
    /// Addresses; client `i` uses `targets[i % len]`.
    pub targets: Vec<String>,
    pub clients: usize,
    /// gRPC connections (HTTP uses one connection per client).
    pub conns: usize,
    pub keys: KeyGen,
    pub value_size: usize,
    pub timeout: Duration,
}

/// metacenter: `PUT /meta/{key}` with `{"v":"<value>"}`.
pub struct MetaKv {
    http: reqwest::Client,
    bases: Vec<String>,
    keys: KeyGen,
    body: String,
}

impl MetaKv {
    pub fn new(spec: &KvSpec) -> Result<Self> {
        let value = random_value(spec.value_size);
        Ok(MetaKv {
            http: http_client(spec.clients, spec.timeout)?,
            bases: spec
                .targets
                .iter()
                .map(|t| format!("http://{t}/meta/"))
                .collect(),
            keys: spec.keys.clone(),
            body: json!({ "v": value }).to_string(),
        })
    }
}

impl Workload for MetaKv {
    async fn op(&self, client: usize, _seq: u64) -> Result<(), OpError> {
        let url = format!(
            "{}{}",
            self.bases[client % self.bases.len()],
            self.keys.next()
        );
        let req = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body.clone());
        send_ack(req).await
    }
}

/// etcd through its HTTP/JSON gateway: `POST /v3/kv/put` with base64 key and value.
pub struct EtcdHttpKv {
    http: reqwest::Client,
    urls: Vec<String>,
    keys: KeyGen,
    value_b64: String,
}

impl EtcdHttpKv {
    pub fn new(spec: &KvSpec) -> Result<Self> {
        let value = random_value(spec.value_size);
        Ok(EtcdHttpKv {
            http: http_client(spec.clients, spec.timeout)?,
            urls: spec
                .targets
                .iter()
                .map(|t| format!("http://{t}/v3/kv/put"))
                .collect(),
            keys: spec.keys.clone(),
            value_b64: base64(value.as_bytes()),
        })
    }
}

impl Workload for EtcdHttpKv {
    async fn op(&self, client: usize, _seq: u64) -> Result<(), OpError> {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(self.keys.next().as_bytes()),
            self.value_b64
        );
        let req = self
            .http
            .post(&self.urls[client % self.urls.len()])
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        send_ack(req).await
    }
}

/// etcd over gRPC with the `etcd-client` crate (only with cargo feature `etcd-client`).
#[cfg(feature = "etcd-client")]
pub mod etcd_grpc {
    use super::{KeyGen, KvSpec, OpError, Workload};
    use anyhow::{Context, Result};
    use etcd_client::{Client, ConnectOptions, KvClient};
    use std::time::Duration;

    /// Puts through `conns` HTTP/2 connections; client `i` uses connection `i % conns`.
    pub struct EtcdGrpcKv {
        conns: Vec<KvClient>,
        keys: KeyGen,
        value: Vec<u8>,
    }

    pub(crate) async fn connect(target: &str, timeout: Duration) -> Result<Client> {
        let opts = ConnectOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(Duration::from_secs(3));
        Client::connect([format!("http://{target}")], Some(opts))
            .await
            .with_context(|| format!("connecting to etcd at {target}"))
    }

    impl EtcdGrpcKv {
        pub async fn new(spec: &KvSpec) -> Result<Self> {
            let mut conns = Vec::with_capacity(spec.conns);
            for i in 0..spec.conns.max(1) {
                let target = &spec.targets[i % spec.targets.len()];
                conns.push(connect(target, spec.timeout).await?.kv_client());
            }
            Ok(EtcdGrpcKv {
                conns,
                keys: spec.keys.clone(),
                value: super::random_value(spec.value_size).into_bytes(),
            })
        }
    }

    impl Workload for EtcdGrpcKv {
        async fn op(&self, client: usize, _seq: u64) -> Result<(), OpError> {
            let mut kv = self.conns[client % self.conns.len()].clone();
            kv.put(self.keys.next(), self.value.clone(), None)
                .await
                .map(|_| ())
                .map_err(op_error)
        }
    }

    /// Classifies a failed etcd call: gRPC code name, timeout, or transport.
    pub(crate) fn op_error(e: etcd_client::Error) -> OpError {
        match e {
            etcd_client::Error::GRpcStatus(s) => {
                let code = format!("{:?}", s.code());
                if code == "DeadlineExceeded" {
                    OpError::Timeout
                } else {
                    OpError::Status(code)
                }
            }
            _ => OpError::Transport("grpc".into()),
        }
    }

    /// `Some(target)` when the etcd member at `target` is the leader.
    pub async fn is_leader(target: &str) -> Result<Option<String>> {
        let mut c = connect(target, Duration::from_secs(3)).await?;
        let st = c.status().await.context("etcd status")?;
        let me = st.header().map(|h| h.member_id());
        Ok((me == Some(st.leader())).then(|| target.to_string()))
    }
}

/// Stand-in when the crate is built without the `etcd-client` feature.
#[cfg(not(feature = "etcd-client"))]
pub mod etcd_grpc {
    use anyhow::{bail, Result};

    const MISSING: &str = "this loadgen was built without the `etcd-client` feature \
        (cargo build --features cluster-tests/etcd-client; needs protoc); use --system etcd-http";

    /// Always fails: gRPC support is not compiled in.
    pub async fn is_leader(_target: &str) -> Result<Option<String>> {
        bail!(MISSING)
    }

    /// Always fails: gRPC support is not compiled in.
    pub fn unavailable() -> anyhow::Error {
        anyhow::anyhow!(MISSING)
    }
}

/// Runs the key-value put workload described by `spec`.
pub async fn run_kv(spec: &KvSpec, cfg: &RunConfig) -> Result<RunStats> {
    match spec.system {
        System::Metacenter => drive(Arc::new(MetaKv::new(spec)?), cfg).await,
        System::EtcdHttp => drive(Arc::new(EtcdHttpKv::new(spec)?), cfg).await,
        #[cfg(feature = "etcd-client")]
        System::Etcd => drive(Arc::new(etcd_grpc::EtcdGrpcKv::new(spec).await?), cfg).await,
        #[cfg(not(feature = "etcd-client"))]
        System::Etcd => Err(etcd_grpc::unavailable()),
    }
}

// ---------------------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------------------

/// One probe write through every target, each as its own client.
async fn probe_writes(spec: &KvSpec) -> Result<()> {
    let one = RunConfig {
        clients: spec.targets.len(),
        limit: Limit::Ops(spec.targets.len() as u64),
        warmup: Duration::ZERO,
        error_pause: Duration::ZERO,
    };
    let mut per_target = spec.clone();
    per_target.clients = spec.targets.len();
    per_target.conns = spec.targets.len();
    let stats = run_kv(&per_target, &one).await?;
    if stats.failed() > 0 {
        bail!("probe writes failed: {:?}", stats.errors);
    }
    Ok(())
}

/// One readiness check: the expected voters (metacenter) and a write through every target.
async fn ready_once(spec: &KvSpec, voters: usize) -> Result<()> {
    if spec.system == System::Metacenter {
        let http = http_client(1, Duration::from_secs(3))?;
        for t in &spec.targets {
            let (n, leader) = metacenter_members(&http, t).await?;
            if n < voters || !leader {
                bail!("{t}: {n} voters, leader known: {leader}");
            }
        }
    }
    probe_writes(spec).await
}

/// Waits until the cluster behind `spec.targets` has `voters` voters, a leader, and accepts
/// a write through every target; fails with the last reason after `timeout`.
pub async fn wait_ready(spec: &KvSpec, voters: usize, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match ready_once(spec, voters).await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("cluster not ready after {timeout:?}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn keys_have_fixed_size_and_stay_in_space() {
        let k = KeyGen::new(8, 1000).unwrap();
        for _ in 0..100 {
            let key = k.next();
            assert_eq!(key.len(), 8);
            assert!(key.parse::<u64>().unwrap() < 1000);
        }
        assert_eq!(KeyGen::new(2, 1_000_000).unwrap().space, 100);
    }

    #[test]
    fn targets_are_split_and_trimmed() {
        let t = parse_targets("http://127.0.0.1:1/, 127.0.0.1:2").unwrap();
        assert_eq!(t, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(parse_targets(" , ").is_err());
    }

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
