//! With one member down the leader's log stays readable (issue 32): one WARN that the
//! peer is unreachable, no openraft ERROR per replication attempt, no colour codes in a
//! log file, and one INFO when the peer is back.

use std::time::{Duration, Instant};

use cluster_tests::process::ProcessCluster;

const WAIT: Duration = Duration::from_secs(60);

/// The lines of node `id`'s log written after the first `skip` bytes.
fn log_after(c: &ProcessCluster, id: u64, skip: usize) -> Vec<String> {
    let text = std::fs::read_to_string(c.log_path(id).unwrap()).unwrap();
    text[skip.min(text.len())..]
        .lines()
        .map(str::to_string)
        .collect()
}

fn log_len(c: &ProcessCluster, id: u64) -> usize {
    std::fs::metadata(c.log_path(id).unwrap()).map_or(0, |m| m.len() as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_is_one_warning_and_back_is_one_line() {
    let mut c = ProcessCluster::start().await.expect("cluster");
    let leader = c.leader(WAIT).await.expect("leader");
    let victim = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let from = log_len(&c, leader);
    c.kill9(victim).unwrap();
    // Writes keep replication (and so its failures) busy.
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(5);
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        let url = format!("http://{}/meta/q-{i}", c.api(leader).unwrap());
        let _ = http
            .put(url)
            .json(&serde_json::json!({"v": i}))
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lines = log_after(&c, leader, from);
    let loud: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    let unreachable = loud
        .iter()
        .filter(|l| l.contains("peer unreachable"))
        .count();
    assert_eq!(unreachable, 1, "one WARN for the peer: {loud:#?}");
    assert!(
        loud.len() <= 3,
        "{} ERROR/WARN lines in 5 s: {loud:#?}",
        loud.len()
    );
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes in a log file"
    );

    let from = log_len(&c, leader);
    c.restart(victim).unwrap();
    c.wait_ready(victim, WAIT).await.expect("back");
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = log_after(&c, leader, from);
        let back = lines
            .iter()
            .filter(|l| l.contains("peer reachable again"))
            .count();
        if back == 1 {
            break;
        }
        assert!(back == 0 && Instant::now() < deadline, "{lines:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
