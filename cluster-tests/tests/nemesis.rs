//! A short nemesis campaign ([`cluster_tests::nemesis`]): a minute of faults (kill -9,
//! pauses, an hour of clock skew either way) on a three-node process cluster under the
//! register, service and load workloads, with no violation allowed. The seed is printed;
//! `NEMESIS_SEED=N` replays its choice of faults; `NEMESIS_HISTORY=FILE` writes the
//! register history there. `scripts/faults.sh` runs long ones.

use std::time::Duration;

use cluster_tests::nemesis::{self, Campaign};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_faults_breaks_no_checker() {
    let seed = std::env::var("NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("nemesis seed {seed} (NEMESIS_SEED={seed} replays it)");
    let campaign = Campaign {
        seed,
        duration: Duration::from_secs(60),
        max_hold: Duration::from_secs(3),
    };
    let report = nemesis::run(campaign).await.expect("campaign");
    eprintln!("{}", report.table(&campaign));
    assert!(report.faults.values().sum::<usize>() >= 5, "too few faults");
    assert!(
        report.violations.is_empty(),
        "violations: {:#?}",
        report.violations
    );
}
