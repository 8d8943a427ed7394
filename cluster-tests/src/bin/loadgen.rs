//! `loadgen`: the load generator of `scripts/bench.sh`.
//!
//! ```text
//! loadgen kv --system metacenter --targets 127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083 \
//!     --clients 64 --duration 10s --key-size 8 --value-size 256 [--to-leader] [--json]
//! loadgen wait --system etcd --targets ... --voters 3 --timeout 60s
//! loadgen table results.jsonl
//! ```
//!
//! Each run prints one line (or one JSON object with `--json`, the line then goes to
//! stderr). The machinery lives in [`cluster_tests::loadgen`]; a new workload is a new
//! subcommand here plus a `Workload` implementation there.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use cluster_tests::loadgen::{
    find_leader, parse_duration, parse_targets, render_table, run_kv, wait_ready, KeyGen, KvSpec,
    Limit, Report, RunConfig, RunInfo, System,
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
    /// System under test.
    #[arg(long, value_enum, default_value = "metacenter")]
    system: System,
    /// Comma-separated API addresses; clients are spread over them.
    #[arg(long, default_value = "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083")]
    targets: String,
    /// Concurrent closed-loop clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured time (after the warm-up).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many operations instead of after --duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Unmeasured time before measuring.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Send everything to the current leader instead of spreading over the targets.
    #[arg(long)]
    to_leader: bool,
    /// gRPC connections for --system etcd (default: clients/4, 1..=100). HTTP systems use
    /// one keep-alive connection per client.
    #[arg(long)]
    conns: Option<usize>,
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
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Distinct keys written (uniformly at random).
    #[arg(long, default_value_t = 100_000)]
    key_space: u64,
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
fn conns_for(c: &Common) -> usize {
    match c.system {
        System::Etcd => c.conns.unwrap_or(c.clients / 4).clamp(1, 100),
        _ => c.clients,
    }
}

fn run_config(c: &Common) -> RunConfig {
    RunConfig {
        clients: c.clients,
        limit: c.ops.map_or(Limit::Time(c.duration), Limit::Ops),
        warmup: c.warmup,
        error_pause: Duration::from_millis(10),
    }
}

/// The targets clients talk to: all of them, or only the leader.
async fn resolve_targets(c: &Common) -> Result<Vec<String>> {
    let all = parse_targets(&c.targets)?;
    if !c.to_leader {
        return Ok(all);
    }
    Ok(vec![find_leader(c.system, &all).await?])
}

async fn kv(a: KvArgs) -> Result<()> {
    let c = &a.common;
    let spec = KvSpec {
        system: c.system,
        targets: resolve_targets(c).await?,
        clients: c.clients,
        conns: conns_for(c),
        keys: KeyGen::new(a.key_size, a.key_space)?,
        value_size: a.value_size,
        timeout: c.timeout,
    };
    let stats = run_kv(&spec, &run_config(c)).await?;
    let info = RunInfo {
        workload: "kv-put".into(),
        system: c.system.name().into(),
        clients: c.clients,
        conns: spec.conns,
        to: if c.to_leader { "leader" } else { "all" }.into(),
    };
    emit(&Report::new(info, &stats), c.json)
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
        Cmd::Wait(a) => wait(a).await,
        Cmd::Table { files } => table(&files),
    };
    if let Err(e) = res {
        eprintln!("loadgen: {e:#}");
        std::process::exit(1);
    }
}
