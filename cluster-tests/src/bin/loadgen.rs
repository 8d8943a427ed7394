//! `loadgen`: the load generator of `scripts/bench.sh`.
//!
//! ```text
//! loadgen kv --system metacenter --targets 127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083 \
//!     --clients 64 --duration 10s --key-size 8 --value-size 256 [--to-leader] [--json]
//! loadgen heartbeat --targets ... --services 10000 --clients 64 --duration 10s
//! loadgen load --targets ... --clients 64 --engines 100 --clusters 4 --read-engines 1000
//! loadgen points --sink metacenter|victoria-metrics --targets ... --clients 8 --batch 1000
//! loadgen failover --system metacenter|etcd --targets A,B,C --pids PA,PB,PC --clients 64 \
//!     --warmup 2s --duration 10s
//! loadgen wait --system etcd --targets ... --voters 3 --timeout 60s
//! loadgen table results.jsonl
//! ```
//!
//! `heartbeat`, `load` and `points` print several reports (one per phase). `failover`
//! kills the leader's process (one pid per target) and exits with status 3 when an
//! acknowledged write was lost or read back wrong.
//!
//! Each run prints one line (or one JSON object with `--json`, the line then goes to
//! stderr). The machinery lives in [`cluster_tests::loadgen`]; a new workload is a new
//! subcommand here plus a `Workload` implementation there.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use cluster_tests::loadgen::failover::stores::{EtcdHttpStore, MetaStore, PidFaults};
use cluster_tests::loadgen::failover::{
    run_failover, DataLoss, FailoverFigures, FailoverRun, FailoverSpec, KvStore,
};
use cluster_tests::loadgen::heartbeat::{run_heartbeat, HeartbeatSpec};
use cluster_tests::loadgen::load::{run_reads, run_updates, LoadSpec};
use cluster_tests::loadgen::points::{run_read, run_writes, PointRead, PointsSpec, Shape, Sink};
use cluster_tests::loadgen::ws::{run_ws, WsSpec};
use cluster_tests::loadgen::{
    find_leader, parse_duration, parse_targets, render_table, run_kv, wait_ready, KeyGen, KvSpec,
    Limit, Report, RunConfig, RunInfo, RunStats, System,
};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Bounded load against metacenter and its peers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replicated key-value puts (8-byte keys, 256-byte values by default).
    Kv(KvArgs),
    /// Discovery: registers --services services, then heartbeats (64 clients by default).
    Heartbeat(HeartbeatArgs),
    /// Metric metadata: imports series into VictoriaMetrics, full-syncs, then searches.
    Search(SearchArgs),
    /// Engine load statistics: add / first token / done updates, then reads of a cluster.
    Load(LoadArgs),
    /// Metric points: batch writes (8 writers by default), then history / latest / stats.
    Points(PointsArgs),
    /// Live metric streams: WebSocket subscribers on the first target while points are
    /// ingested through all; delivery latency per point.
    Ws(WsArgs),
    /// Kills the leader under 64 writers; time until writes succeed again, lost writes.
    Failover(FailoverArgs),
    /// Waits until a cluster has its voters and a leader and accepts writes on every target.
    Wait(WaitArgs),
    /// Prints the comparison table of JSON reports (files of one report per line).
    Table {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Options every workload shares.
#[derive(Args)]
struct Common {
    /// Comma-separated API addresses; clients are spread over them.
    #[arg(long, default_value = "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083")]
    targets: String,
    /// Concurrent closed-loop clients (default: 64; `points`: 8 writers).
    #[arg(long)]
    clients: Option<usize>,
    /// Measured time (after the warm-up).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many operations instead of after --duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Unmeasured time before measuring.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Per-operation timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct KvArgs {
    #[command(flatten)]
    common: Common,
    /// System under test.
    #[arg(long, value_enum, default_value = "metacenter")]
    system: System,
    /// Send everything to the current leader instead of spreading over the targets.
    #[arg(long)]
    to_leader: bool,
    /// gRPC connections for --system etcd (default: clients/4, 1..=100). HTTP systems use
    /// one keep-alive connection per client.
    #[arg(long)]
    conns: Option<usize>,
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Distinct keys written (uniformly at random).
    #[arg(long, default_value_t = 100_000)]
    key_space: u64,
}

#[derive(Args)]
struct HeartbeatArgs {
    #[command(flatten)]
    common: Common,
    /// Services registered before the heartbeats.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Service name prefix (names `{prefix}-000000`...).
    #[arg(long, default_value = "bench-svc")]
    prefix: String,
    /// Also read the whole list (`GET /services`, first target) this often while the
    /// heartbeats run, e.g. `200ms`; reported as `service-list`.
    #[arg(long, value_parser = parse_duration)]
    list_every: Option<Duration>,
    /// Register nothing and require every heartbeat to be answered 404: the whole
    /// path of a heartbeat, raft round included, without its write.
    #[arg(long)]
    unregistered: bool,
    /// Name of the heartbeat report (default `heartbeat`).
    #[arg(long, default_value = "heartbeat")]
    label: String,
}

#[derive(Args)]
struct SearchArgs {
    #[command(flatten)]
    common: Common,
    /// VictoriaMetrics address the nodes sync from (host:port).
    #[arg(long, default_value = "127.0.0.1:8428")]
    vm: String,
    /// Series imported, spread evenly over --tenants tenants (`t0000`...).
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// Skip the import (the series are already in VictoriaMetrics).
    #[arg(long)]
    no_import: bool,
    /// Clients of the search phase; one run per entry (`1,8`).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    search_clients: Vec<usize>,
}

#[derive(Args)]
struct LoadArgs {
    #[command(flatten)]
    common: Common,
    /// Engines the simulated requests are spread over.
    #[arg(long, default_value_t = 100)]
    engines: usize,
    /// Clusters the engines belong to.
    #[arg(long, default_value_t = 4)]
    clusters: usize,
    /// Engines present in the cluster the read phase reads (0: no read phase).
    #[arg(long, default_value_t = 1000)]
    read_engines: usize,
    /// Clients of the read phase; one run per entry (`1,8`).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    read_clients: Vec<usize>,
    /// Skip the update phase.
    #[arg(long)]
    reads_only: bool,
    /// Updates per request: above 1, sent together through `POST /v1/load/batch` and
    /// reported as `{label}-batch-N` in updates per second.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Name of the update report (batches: `{label}-batch-N`).
    #[arg(long, default_value = "load-update")]
    label: String,
}

#[derive(Args)]
struct PointsArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_enum, default_value = "metacenter")]
    sink: Sink,
    /// Points per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Points per history read (metacenter only; 0: no read phase).
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Clients of the read phase; one run per entry (`1,8`).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    read_clients: Vec<usize>,
    /// Prefix of the report names (`{label}-write`, `{label}-history-N`, ...).
    #[arg(long, default_value = "points")]
    label: String,
    /// `flat`: one metric of f64 values; `curves`: five float32 training metrics a step.
    #[arg(long, value_enum, default_value = "flat")]
    shape: Shape,
}

#[derive(Args)]
struct WsArgs {
    /// --clients is unused; --duration is the measured ingest time after --warmup.
    #[command(flatten)]
    common: Common,
    /// WebSocket subscribers, each on a run of its own.
    #[arg(long, default_value_t = 5000)]
    subscribers: usize,
    /// Points per second ingested.
    #[arg(long, default_value_t = 10_000)]
    rate: usize,
    /// Points per write request (one per run).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

#[derive(Args)]
struct FailoverArgs {
    /// --warmup: writing before the kill; --duration: writing after the first write
    /// acknowledged after the kill.
    #[command(flatten)]
    common: Common,
    #[arg(long, value_enum, default_value = "metacenter")]
    system: System,
    /// Pids of the servers, one per target, in the same order; the leader's gets SIGKILL.
    #[arg(long, value_delimiter = ',', required = true)]
    pids: Vec<i32>,
    /// gRPC connections for --system etcd (default: clients/4, spread over the members).
    #[arg(long)]
    conns: Option<usize>,
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Concurrent readers of the read-back.
    #[arg(long, default_value_t = 64)]
    readers: usize,
    /// Fail when no write is acknowledged this long after the kill.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    max_outage: Duration,
    /// What the leader gets: `kill` (SIGKILL) or `pause` (SIGSTOP, SIGCONT once the
    /// read-back is done; reported as workload `failover-pause`).
    #[arg(long, value_enum, default_value = "kill")]
    fault: Fault,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Fault {
    Kill,
    Pause,
}

#[derive(Args)]
struct WaitArgs {
    #[arg(long, value_enum, default_value = "metacenter")]
    system: System,
    #[arg(long, default_value = "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083")]
    targets: String,
    /// Voters the cluster must have (checked for metacenter).
    #[arg(long, default_value_t = 3)]
    voters: usize,
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Connections per system: HTTP/1.1 needs one per client, gRPC multiplexes.
fn conns_for(a: &KvArgs, clients: usize) -> usize {
    match a.system {
        System::Etcd => a.conns.unwrap_or(clients / 4).clamp(1, 100),
        _ => clients,
    }
}

fn run_config(c: &Common, clients: usize) -> RunConfig {
    RunConfig {
        clients,
        limit: c.ops.map_or(Limit::Time(c.duration), Limit::Ops),
        warmup: c.warmup,
        error_pause: Duration::from_millis(10),
    }
}

/// The targets clients talk to: all of them, or only the leader.
async fn resolve_targets(a: &KvArgs) -> Result<Vec<String>> {
    let all = parse_targets(&a.common.targets)?;
    if !a.to_leader {
        return Ok(all);
    }
    Ok(vec![find_leader(a.system, &all).await?])
}

async fn kv(a: KvArgs) -> Result<()> {
    let c = &a.common;
    let clients = c.clients.unwrap_or(64);
    let spec = KvSpec {
        system: a.system,
        targets: resolve_targets(&a).await?,
        clients,
        conns: conns_for(&a, clients),
        keys: KeyGen::new(a.key_size, a.key_space)?,
        value_size: a.value_size,
        timeout: c.timeout,
    };
    let stats = run_kv(&spec, &run_config(c, clients)).await?;
    let info = RunInfo {
        workload: "kv-put".into(),
        system: a.system.name().into(),
        clients,
        conns: spec.conns,
        to: if a.to_leader { "leader" } else { "all" }.into(),
    };
    emit(&Report::new(info, &stats), c.json)
}

/// The report of a run of `clients` HTTP/1.1 clients spread over all targets.
fn report(workload: &str, system: &str, clients: usize, stats: &RunStats) -> Report {
    let info = RunInfo {
        workload: workload.into(),
        system: system.into(),
        clients,
        conns: clients,
        to: "all".into(),
    };
    Report::new(info, stats)
}

async fn heartbeat(a: HeartbeatArgs) -> Result<()> {
    let c = &a.common;
    let clients = c.clients.unwrap_or(64);
    let spec = HeartbeatSpec {
        targets: parse_targets(&c.targets)?,
        services: a.services,
        clients,
        prefix: a.prefix.clone(),
        timeout: c.timeout,
        list_every: a.list_every,
        unregistered: a.unregistered,
    };
    let run = run_heartbeat(&spec, &run_config(c, clients)).await?;
    let (registered, beats) = (&run.registered, &run.beats);
    if !a.unregistered {
        emit(
            &report("service-register", "metacenter", clients, registered),
            c.json,
        )?;
    }
    let Some(lists) = &run.lists else {
        return emit(&report(&a.label, "metacenter", clients, beats), c.json);
    };
    let every = a.list_every.unwrap_or_default().as_millis();
    let listed = format!("{}-while-listing-every-{every}ms", a.label);
    emit(&report(&listed, "metacenter", clients, beats), c.json)?;
    emit(
        &report(
            &format!("service-list-{}", a.services),
            "metacenter",
            1,
            lists,
        ),
        c.json,
    )
}

async fn search(a: SearchArgs) -> Result<()> {
    use cluster_tests::loadgen::search::{import, run_search, sync_all, Search};
    let c = &a.common;
    let targets = parse_targets(&c.targets)?;
    if !a.no_import {
        import(&a.vm, a.series, a.tenants).await?;
    }
    let (secs, processed) = sync_all(&targets[0], a.tenants).await?;
    let sync = Report {
        workload: format!("search-full-sync-{}t", a.tenants),
        system: "metacenter".into(),
        clients: 1,
        conns: 1,
        to: "leader".into(),
        ops: processed,
        seconds: secs,
        ops_per_sec: processed as f64 / secs.max(1e-9),
        p50_ms: secs * 1000.0 / a.tenants.max(1) as f64,
        p99_ms: secs * 1000.0,
        p999_ms: secs * 1000.0,
        max_ms: secs * 1000.0,
        errors: 0,
        error_kinds: Default::default(),
        failover: None,
    };
    eprintln!(
        "full sync of {processed} metrics in {} tenants: {secs:.2} s",
        a.tenants
    );
    emit(&sync, c.json)?;
    for &n in &a.search_clients {
        let s = Search::new(targets.clone(), a.tenants, n, c.timeout)?;
        let stats = run_search(s, &run_config(c, n)).await?;
        let name = format!("search-{}t", a.tenants);
        emit(&report(&name, "metacenter", n, &stats), c.json)?;
    }
    Ok(())
}

async fn load(a: LoadArgs) -> Result<()> {
    let c = &a.common;
    let clients = c.clients.unwrap_or(64);
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let spec = LoadSpec {
        targets: parse_targets(&c.targets)?,
        clients,
        engines: a.engines,
        clusters: a.clusters,
        read_engines: a.read_engines,
        run,
        timeout: c.timeout,
        batch: a.batch,
    };
    if !a.reads_only {
        let stats = run_updates(&spec, &run_config(c, clients)).await?;
        let row = match a.batch {
            1 => report(&a.label, "metacenter", clients, &stats),
            n => report(
                &format!("{}-batch-{n}", a.label),
                "metacenter",
                clients,
                &stats,
            )
            .per_item(n as u64),
        };
        emit(&row, c.json)?;
    }
    if a.read_engines > 0 {
        let all = run_reads(&spec, &a.read_clients, &run_config(c, 1)).await?;
        let name = format!("load-get-{}-engines", a.read_engines);
        for (&n, stats) in a.read_clients.iter().zip(&all) {
            emit(&report(&name, "metacenter", n, stats), c.json)?;
        }
    }
    Ok(())
}

async fn points(a: PointsArgs) -> Result<()> {
    let c = &a.common;
    let writers = c.clients.unwrap_or(8);
    let spec = PointsSpec {
        sink: a.sink,
        targets: parse_targets(&c.targets)?,
        writers,
        batch: a.batch,
        shape: a.shape,
        timeout: c.timeout,
    };
    let (w, stats) = run_writes(&spec, &run_config(c, writers)).await?;
    let write = report(
        &format!("{}-write", a.label),
        a.sink.name(),
        writers,
        &stats,
    );
    emit(&write.per_item(spec.points_per_batch() as u64), c.json)?;
    if a.sink != Sink::Metacenter || a.history == 0 {
        return Ok(());
    }
    let reads = [
        (
            PointRead::History(a.history),
            format!("{}-history-{}", a.label, a.history),
        ),
        (PointRead::Latest, format!("{}-latest", a.label)),
        (PointRead::Stats, format!("{}-stats", a.label)),
    ];
    for (what, name) in reads {
        for &n in &a.read_clients {
            // --ops sizes the write phase; reads run for --duration.
            let cfg = RunConfig {
                limit: Limit::Time(c.duration),
                ..run_config(c, n)
            };
            let stats = run_read(&spec.targets, &w.runs, what, &cfg, c.timeout).await?;
            emit(&report(&name, "metacenter", n, &stats), c.json)?;
        }
    }
    Ok(())
}

async fn ws(a: WsArgs) -> Result<()> {
    let c = &a.common;
    let spec = WsSpec {
        targets: parse_targets(&c.targets)?,
        subscribers: a.subscribers,
        rate: a.rate,
        batch: a.batch,
        warmup: c.warmup,
        duration: c.duration,
        timeout: c.timeout,
    };
    let (stats, figures) = run_ws(&spec).await?;
    eprintln!(
        "[ws] points acknowledged {} ({:.0}/s), delivered {}",
        figures.written,
        figures.written as f64 / c.duration.as_secs_f64(),
        figures.delivered
    );
    emit(
        &report("ws-delivery", "metacenter", a.subscribers, &stats),
        c.json,
    )
}

/// Drives a failover run against `store` (one of the [`KvStore`]s).
async fn failover_on<S: KvStore>(
    store: S,
    faults: &PidFaults,
    spec: &FailoverSpec,
) -> Result<FailoverRun> {
    run_failover(Arc::new(store), faults, spec).await
}

async fn failover(a: FailoverArgs) -> Result<()> {
    let c = &a.common;
    if c.ops.is_some() {
        bail!("failover runs for a time: --ops does not apply");
    }
    let targets = parse_targets(&c.targets)?;
    let writers = c.clients.unwrap_or(64);
    let conns = match a.system {
        System::Etcd => a.conns.unwrap_or(writers / 4).clamp(1, 100),
        _ => writers,
    };
    let spec = FailoverSpec {
        nodes: targets.len(),
        writers,
        readers: a.readers,
        value_size: a.value_size,
        warmup: c.warmup,
        after: c.duration,
        max_outage: a.max_outage,
        pause: Duration::from_millis(10),
    };
    let mut faults = PidFaults::new(a.system, &targets, a.pids.clone())?;
    if a.fault == Fault::Pause {
        faults = faults.pausing();
    }
    let pool = writers.max(a.readers);
    let run = match a.system {
        System::Metacenter => {
            let store = MetaStore::new(&targets, pool, c.timeout)?;
            failover_on(store, &faults, &spec).await?
        }
        System::EtcdHttp => {
            let store = EtcdHttpStore::new(&targets, pool, c.timeout)?;
            failover_on(store, &faults, &spec).await?
        }
        #[cfg(feature = "etcd-client")]
        System::Etcd => {
            use cluster_tests::loadgen::failover::stores::EtcdGrpcStore;
            let store = EtcdGrpcStore::new(&targets, conns, c.timeout).await?;
            failover_on(store, &faults, &spec).await?
        }
        #[cfg(not(feature = "etcd-client"))]
        System::Etcd => return Err(cluster_tests::loadgen::etcd_grpc::unavailable()),
    };
    if a.fault == Fault::Pause {
        faults.resume(run.killed)?;
    }
    let workload = match a.fault {
        Fault::Kill => "failover",
        Fault::Pause => "failover-pause",
    };
    let info = RunInfo {
        workload: workload.into(),
        system: a.system.name().into(),
        clients: writers,
        conns,
        to: "all".into(),
    };
    let mut r = Report::new(info, &run.stats);
    r.failover = Some(FailoverFigures::new(&run, targets[run.killed].clone()));
    emit(&r, c.json)?;
    let rb = run.read_back;
    if rb.lost + rb.wrong > 0 {
        let system = a.system.name().into();
        return Err(DataLoss {
            system,
            read_back: rb,
        }
        .into());
    }
    Ok(())
}

/// Prints a report; fails when nothing at all was acknowledged.
fn emit(r: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        eprintln!("{r}");
    } else {
        println!("{r}");
    }
    if r.ops == 0 {
        bail!("no operation was acknowledged");
    }
    Ok(())
}

async fn wait(a: WaitArgs) -> Result<()> {
    let targets = parse_targets(&a.targets)?;
    let spec = KvSpec {
        system: a.system,
        clients: targets.len(),
        conns: targets.len(),
        targets,
        keys: KeyGen::new(8, 1)?,
        value_size: 8,
        timeout: Duration::from_secs(3),
    };
    wait_ready(&spec, a.voters, a.timeout).await?;
    eprintln!("{} ready: {}", a.system.name(), a.targets);
    Ok(())
}

fn table(files: &[PathBuf]) -> Result<()> {
    let mut reports = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {f:?}"))?;
        reports.extend(cluster_tests::loadgen::parse_reports(&text)?);
    }
    print!("{}", render_table(&reports));
    Ok(())
}

#[tokio::main]
async fn main() {
    let res = match Cli::parse().cmd {
        Cmd::Kv(a) => kv(a).await,
        Cmd::Heartbeat(a) => heartbeat(a).await,
        Cmd::Search(a) => search(a).await,
        Cmd::Load(a) => load(a).await,
        Cmd::Points(a) => points(a).await,
        Cmd::Ws(a) => ws(a).await,
        Cmd::Failover(a) => failover(a).await,
        Cmd::Wait(a) => wait(a).await,
        Cmd::Table { files } => table(&files),
    };
    if let Err(e) = res {
        eprintln!("loadgen: {e:#}");
        // 3: the system lost acknowledged writes (bench.sh reports it after the table).
        std::process::exit(if e.is::<DataLoss>() { 3 } else { 1 });
    }
}
