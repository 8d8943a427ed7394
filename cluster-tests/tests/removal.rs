//! A member removed from its cluster stands down (issue 32): under writes, within 2 s
//! of `POST /cluster/remove` it answers client requests 503 "removed" and reports it in
//! `/health`, `/ready` and `/status`; the remaining members' term does not move over
//! the next 10 s; restarted on its old data directory it refuses to start; wiped and
//! started with `--join` it is a member again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_tests::process::ProcessCluster;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// PUTs keys through `apis` in turn until `stop`, ignoring failures.
async fn writes(apis: Vec<String>, stop: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let api = &apis[i % apis.len()];
        let url = format!("http://{api}/meta/rm-{i}");
        let _ = http.put(url).json(&json!({ "v": i })).send().await;
    }
}

async fn term(c: &ProcessCluster, id: u64) -> Option<u64> {
    c.get_json(id, "/status").await?["raft"]["term"].as_u64()
}

/// Status and JSON body of `GET path` on `api`.
async fn get(api: &str, path: &str) -> (u16, Value) {
    let Ok(r) = reqwest::get(format!("http://{api}{path}")).await else {
        return (0, Value::Null);
    };
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_stands_down_and_comes_back_only_wiped() {
    let mut c = ProcessCluster::start().await.expect("cluster");
    let leader = c.leader(WAIT).await.expect("leader");
    let victim = c.ids().into_iter().find(|&id| id != leader).unwrap();
    let others: Vec<u64> = c.ids().into_iter().filter(|&id| id != victim).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(writes(c.apis(), stop.clone()));

    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{}/cluster/remove", c.api(leader).unwrap()))
        .json(&json!({ "id": victim }))
        .send()
        .await
        .expect("remove");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let removed_at = Instant::now();
    let api = c.api(victim).unwrap();
    loop {
        let (status, body) = get(&api, "/meta/rm-1").await;
        if status == 503 && body.to_string().contains("removed from the cluster") {
            break;
        }
        assert!(
            removed_at.elapsed() < Duration::from_secs(2),
            "node {victim} still answers {status} {body} 2 s after its removal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, health) = get(&api, "/health").await;
    assert_eq!(health["status"], "removed", "{health}");
    let (ready, body) = get(&api, "/ready").await;
    assert_eq!(ready, 503, "{body}");
    assert!(body["removed"].is_string(), "{body}");
    let (_, status) = get(&api, "/status").await;
    assert!(status["removed"].is_string(), "{status}");

    // The others' term stays put while the removed node would have campaigned.
    let before: Vec<Option<u64>> =
        futures::future::join_all(others.iter().map(|&id| term(&c, id))).await;
    assert!(before.iter().all(Option::is_some), "{before:?}");
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (&id, was) in others.iter().zip(&before) {
            let now = term(&c, id).await;
            assert!(
                now.is_none() || now == *was,
                "node {id}: term {was:?} -> {now:?}"
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    // Its old data directory cannot come back.
    c.restart(victim).unwrap();
    let deadline = Instant::now() + WAIT;
    while !c.exited().iter().any(|(id, _)| *id == victim) {
        assert!(
            Instant::now() < deadline,
            "node {victim} started on its old data dir"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(c.log_path(victim).unwrap()).unwrap();
    assert!(
        log.contains("removed from its cluster") && log.contains("--join"),
        "{log}"
    );

    // Wiped and joined again, it is a voter that serves.
    c.rejoin_wiped(victim, leader, &[]).unwrap();
    if let Err(e) = c.wait_voters(&c.ids(), WAIT).await {
        c.print_logs();
        panic!("node {victim} is not a voter again: {e}");
    }
    c.wait_ready(victim, WAIT).await.expect("ready again");
    let (status, body) = get(&api, "/meta/rm-1").await;
    assert!(status == 200 || status == 404, "{status} {body}");
}
