//! `nemesis --minutes N [--seed S]`: a fault campaign ([`cluster_tests::nemesis`]) on a
//! fresh three-node process cluster of `$METACENTER_BIN` (default: the debug build);
//! prints its table and exits 1 on any violation. `scripts/faults.sh` runs it.

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use cluster_tests::nemesis::{self, Campaign};

#[derive(Parser)]
struct Args {
    /// Minutes of faults.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Seed of the choice of faults (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Longest a fault is held, in seconds.
    #[arg(long, default_value_t = 3)]
    max_hold: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let campaign = Campaign {
        seed: a.seed.unwrap_or_else(rand::random),
        duration: Duration::from_secs(a.minutes * 60),
        max_hold: Duration::from_secs(a.max_hold.max(1)),
    };
    eprintln!("nemesis: seed {}, {} minutes", campaign.seed, a.minutes);
    let report = nemesis::run(campaign).await?;
    println!("{}", report.table(&campaign));
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
