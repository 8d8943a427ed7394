//! A paused leader (SIGSTOP: to its peers, a partition that drops packets) must not hold
//! up writes through either follower for longer than the election that replaces it.
//!
//! Clients write through each follower with a short timeout, retrying as gateways do. A
//! follower whose forwards were stuck on the silent leader used to keep every later
//! write queued behind them for the whole `raft.forward_timeout`; it now fails those
//! forwards (503, outcome unknown) as soon as it sees a new term or leader. With the
//! forward timeout at 30 s, the test asks both followers to take writes again within
//! 10 s of the first one that does. After SIGCONT, the old leader must not have lost or
//! invented anything: every acknowledged write reads back, linearizably, on every node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_tests::poll;
use cluster_tests::process::ProcessCluster;

const TIMEOUT: Duration = Duration::from_secs(60);
/// The nodes' `raft.forward_timeout_ms`: far longer than an election.
const FORWARD_TIMEOUT_MS: &str = "30000";
/// How much later than the first follower the second may take writes again.
const SLACK: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Writes {
    acked: Mutex<Vec<(String, String)>>,
    /// When the first write after the pause was acknowledged.
    resumed: Mutex<Option<Instant>>,
    paused_at: Mutex<Option<Instant>>,
    stop: AtomicBool,
}

/// Writes distinct keys through `api`, a request at a time, each given one second.
async fn writer(api: String, tag: u64, w: Arc<Writes>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("http client");
    let mut n = 0;
    while !w.stop.load(Ordering::SeqCst) {
        n += 1;
        let (key, value) = (format!("pause-{tag}-{n}"), format!("v{n}"));
        let url = format!("http://{api}/meta/{key}/v");
        let sent = Instant::now();
        match http.put(&url).body(value.clone()).send().await {
            Ok(r) if r.status().is_success() => {
                w.acked.lock().unwrap().push((key, value));
                let paused = *w.paused_at.lock().unwrap();
                if paused.is_some_and(|p| sent > p) {
                    w.resumed.lock().unwrap().get_or_insert_with(Instant::now);
                }
            }
            Ok(r) => assert!(r.status().is_server_error(), "PUT {url}: {}", r.status()),
            Err(_) => {} // timed out: the client retries with the next key
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read(http: &reqwest::Client, api: &str, key: &str) -> Option<String> {
    let url = format!("http://{api}/meta/{key}/v?consistency=linearizable");
    let r = http.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_both_followers_resume_soon_after_the_leader_is_paused() {
    let settings = [("raft.forward_timeout_ms", FORWARD_TIMEOUT_MS)];
    let mut cluster = ProcessCluster::start_with(3, &settings)
        .await
        .expect("start a 3-node cluster");
    let leader = cluster.leader(TIMEOUT).await.expect("leader");
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
    let writes: Vec<Arc<Writes>> = followers.iter().map(|_| Arc::default()).collect();
    let tasks: Vec<_> = followers
        .iter()
        .zip(&writes)
        .map(|(id, w)| tokio::spawn(writer(cluster.api(*id).unwrap(), *id, w.clone())))
        .collect();
    poll::until("writes through both followers", TIMEOUT, || async {
        writes
            .iter()
            .all(|w| w.acked.lock().unwrap().len() >= 5)
            .then_some(())
    })
    .await;

    cluster.stop(leader).expect("SIGSTOP the leader");
    let paused = Instant::now();
    for w in &writes {
        *w.paused_at.lock().unwrap() = Some(paused);
    }
    let resumed: Vec<Instant> = poll::until("writes through both followers again", TIMEOUT, || {
        let r: Option<Vec<Instant>> = writes.iter().map(|w| *w.resumed.lock().unwrap()).collect();
        async move { r }
    })
    .await;
    let first = *resumed.iter().min().unwrap();
    let last = *resumed.iter().max().unwrap();
    eprintln!(
        "leader {leader} paused; writes resumed through {followers:?} after {:?}",
        resumed.iter().map(|r| *r - paused).collect::<Vec<_>>()
    );
    assert!(
        last - first <= SLACK,
        "one follower took writes {:?} after the other (forward timeout {FORWARD_TIMEOUT_MS} ms)",
        last - first
    );

    cluster.cont(leader).expect("SIGCONT the old leader");
    for w in &writes {
        w.stop.store(true, Ordering::SeqCst);
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let acked: Vec<(String, String)> = writes
        .iter()
        .flat_map(|w| w.acked.lock().unwrap().clone())
        .collect();
    let http = reqwest::Client::new();
    for api in cluster.apis() {
        for (key, value) in &acked {
            let what = format!("{key}={value} on {api}");
            poll::until(&what, TIMEOUT, || async {
                (read(&http, &api, key).await.as_deref() == Some(value.as_str())).then_some(())
            })
            .await;
        }
    }
    assert!(
        cluster.exited().is_empty(),
        "nodes exited: {:?}",
        cluster.exited()
    );
}
