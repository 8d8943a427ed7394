//! Process clusters of the real binary under `kill -9`: no acknowledged write is lost,
//! and a history of concurrent put/get/CAS operations stays linearizable.
//!
//! Needs `target/debug/metacenter` (`cargo build --bin metacenter`; `cargo test
//! --workspace` builds it). The tests take a shared lock so that only one three-node
//! cluster runs at a time on small machines.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_tests::linearizability::{self, Client, History, Op, Outcome, Ret};
use cluster_tests::poll;
use cluster_tests::process::ProcessCluster;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LEADER_TIMEOUT: Duration = Duration::from_secs(60);
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-request bound; longer than the node's forward timeout (10 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

fn http() -> reqwest::Client {
    linearizability::http_client(REQUEST_TIMEOUT).expect("http client")
}

/// Waits until `counter` reaches `target`.
async fn wait_count(what: &str, counter: &AtomicUsize, target: usize) {
    poll::until(what, PHASE_TIMEOUT, || async {
        (counter.load(Ordering::SeqCst) >= target).then_some(())
    })
    .await
}

// ---------------------------------------------------------------------------------------
// No acknowledged write is lost
// ---------------------------------------------------------------------------------------

const WRITERS: usize = 8;
const WRITES_PER_WRITER: usize = 200;

#[derive(Default)]
struct Acks {
    writes: Mutex<Vec<(String, String)>>,
    count: AtomicUsize,
    /// Answers that no correct node gives to a valid write (4xx, missing ETag).
    unexpected: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// Writes distinct keys round robin over the nodes; records every acknowledged write.
async fn writer(c: usize, apis: Vec<String>, acks: Arc<Acks>) {
    let http = http();
    for n in 0..WRITES_PER_WRITER {
        if acks.stop.load(Ordering::SeqCst) {
            return;
        }
        let api = &apis[(c + n) % apis.len()];
        let (key, value) = (format!("ack-{c}-{n}"), format!("value-{c}-{n}"));
        let url = format!("http://{api}/meta/{key}/v");
        let Ok(resp) = http.put(&url).body(value.clone()).send().await else {
            continue; // node down or timed out: not acknowledged
        };
        let status = resp.status();
        if status.is_success() {
            acks.writes.lock().unwrap().push((key, value));
            acks.count.fetch_add(1, Ordering::SeqCst);
        } else if !status.is_server_error() {
            let body = resp.text().await.unwrap_or_default();
            acks.unexpected
                .lock()
                .unwrap()
                .push(format!("PUT {url}: {status} {body}"));
        }
    }
}

/// The value of `key` on the node at `api` (`None` when absent or on error).
async fn read(http: &reqwest::Client, api: &str, key: &str, linearizable: bool) -> Option<String> {
    let q = if linearizable {
        "?consistency=linearizable"
    } else {
        ""
    };
    let resp = http
        .get(format!("http://{api}/meta/{key}/v{q}"))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.text().await.ok()
}

/// Starts [`WRITERS`] writers round robin over `apis`.
fn start_writers(apis: &[String]) -> (Arc<Acks>, Vec<tokio::task::JoinHandle<()>>) {
    let acks = Arc::new(Acks::default());
    let writers = (0..WRITERS)
        .map(|c| tokio::spawn(writer(c, apis.to_vec(), acks.clone())))
        .collect();
    (acks, writers)
}

/// Stops the writers; returns the acknowledged writes, none answered unexpectedly.
async fn stop_writers(
    acks: &Acks,
    writers: Vec<tokio::task::JoinHandle<()>>,
) -> Vec<(String, String)> {
    acks.stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer task");
    }
    let unexpected = acks.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:#?}");
    acks.writes.lock().unwrap().clone()
}

/// Polls until every acknowledged write reads back on the node at `api`.
async fn verify_node(api: &str, writes: &[(String, String)], linearizable: bool) {
    let http = http();
    futures::stream::iter(writes)
        .for_each_concurrent(16, |(key, value)| {
            let http = &http;
            async move {
                let what =
                    format!("{key}={value} readable on {api} (linearizable: {linearizable})");
                poll::until(&what, PHASE_TIMEOUT, || async {
                    (read(http, api, key, linearizable).await.as_deref() == Some(value.as_str()))
                        .then_some(())
                })
                .await
            }
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_kill9() {
    let _serial = SERIAL.lock().await;
    let mut cluster = ProcessCluster::start()
        .await
        .expect("start a 3-node cluster");
    let apis = cluster.apis();
    let (acks, writers) = start_writers(&apis);

    wait_count("150 acknowledged writes", &acks.count, 150).await;
    let leader = cluster.leader(LEADER_TIMEOUT).await.expect("leader");
    cluster.kill9(leader).expect("kill -9 the leader");
    let at_kill = acks.count.load(Ordering::SeqCst);
    wait_count(
        "150 more acknowledged writes after the kill",
        &acks.count,
        at_kill + 150,
    )
    .await;
    let writes = stop_writers(&acks, writers).await;
    cluster.restart(leader).expect("restart the killed node");
    cluster
        .wait_ready(leader, LEADER_TIMEOUT)
        .await
        .expect("restarted node ready");
    eprintln!(
        "{} acknowledged writes ({at_kill} before killing leader {leader}); verifying on every node",
        writes.len()
    );
    for api in &apis {
        verify_node(api, &writes, true).await;
        verify_node(api, &writes, false).await;
    }
    assert!(
        cluster.exited().is_empty(),
        "nodes exited: {:?}",
        cluster.exited()
    );
}

/// A crash of the whole cluster at once: no node is left to send a snapshot, so each
/// must rebuild what it had applied from its own raft log (the state machine is not
/// flushed per entry, and `kill -9` drops what sled had not yet written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_killing_every_node() {
    let _serial = SERIAL.lock().await;
    // Snapshots and log purges every few entries, so the crash finds some.
    let settings = [("raft.snapshot_every", "20"), ("raft.keep_logs", "0")];
    let mut cluster = ProcessCluster::start_with(3, &settings)
        .await
        .expect("start a 3-node cluster");
    let apis = cluster.apis();
    let (acks, writers) = start_writers(&apis);
    wait_count("300 acknowledged writes", &acks.count, 300).await;
    for id in cluster.ids() {
        cluster.kill9(id).expect("kill -9 a node");
    }
    let writes = stop_writers(&acks, writers).await;
    for id in cluster.ids() {
        cluster.restart(id).expect("restart a node");
    }
    for id in cluster.ids() {
        cluster
            .wait_ready(id, LEADER_TIMEOUT)
            .await
            .expect("restarted node ready");
    }
    for api in &apis {
        verify_node(api, &writes, false).await;
    }
    assert!(
        cluster.exited().is_empty(),
        "nodes exited: {:?}",
        cluster.exited()
    );
}

// ---------------------------------------------------------------------------------------
// Linearizability across a leader kill -9 and restart
// ---------------------------------------------------------------------------------------

const LIN_CLIENTS: usize = 6;
const LIN_OPS_PER_CLIENT: usize = 250;
/// Rounds of: kill -9 the leader, run, restart it, run.
const LIN_KILLS: usize = 2;
const LIN_KEYS: [&str; 3] = ["lin-a", "lin-b", "lin-c"];

#[derive(Default)]
struct LinRun {
    history: History,
    /// Operations with a definite, non-rejected answer.
    definite: AtomicUsize,
    unknown: AtomicUsize,
    stop: AtomicBool,
}

fn random_op(rng: &mut StdRng, c: usize, n: usize, last_version: u64) -> Op {
    let value = format!("c{c}-{n}");
    match rng.random_range(0..10) {
        0..=3 => Op::Put(value),
        4..=7 => Op::Get,
        _ => Op::Cas {
            expected_version: last_version,
            value,
        },
    }
}

/// Random put/get/CAS on random keys at random nodes, recorded in the run's history.
/// A CAS expects the version this client last saw for the key (0 if none), so some
/// succeed and some fail.
async fn lin_client(c: usize, seed: u64, apis: Vec<String>, run: Arc<LinRun>) {
    let http = http();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut client = Client::new(&run.history);
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for n in 0..LIN_OPS_PER_CLIENT {
        if run.stop.load(Ordering::SeqCst) {
            return;
        }
        let key = LIN_KEYS[rng.random_range(0..LIN_KEYS.len())];
        let api = &apis[rng.random_range(0..apis.len())];
        let op = random_op(&mut rng, c, n, seen.get(key).copied().unwrap_or(0));
        match client.run(&http, api, key, op).await {
            Outcome::Done(Ret::Rejected) => {}
            Outcome::Done(ret) => {
                if let Ret::PutOk { version }
                | Ret::CasOk { version }
                | Ret::GetOk { version, .. } = ret
                {
                    seen.insert(key, version);
                }
                run.definite.fetch_add(1, Ordering::SeqCst);
            }
            Outcome::Unknown(_) => {
                run.unknown.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Runs until `more` further definite operations are recorded.
async fn lin_phase(run: &LinRun, what: &str, more: usize) {
    let target = run.definite.load(Ordering::SeqCst) + more;
    wait_count(what, &run.definite, target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_linearizable_across_leader_kill9() {
    let _serial = SERIAL.lock().await;
    let mut cluster = ProcessCluster::start()
        .await
        .expect("start a 3-node cluster");
    let apis = cluster.apis();
    let run = Arc::new(LinRun::default());
    let base_seed: u64 = rand::random();
    eprintln!("linearizability run, base seed {base_seed}");
    let clients: Vec<_> = (0..LIN_CLIENTS)
        .map(|c| {
            tokio::spawn(lin_client(
                c,
                base_seed ^ c as u64,
                apis.clone(),
                run.clone(),
            ))
        })
        .collect();

    lin_phase(&run, "100 operations before the first kill", 100).await;
    let mut killed = Vec::new();
    for round in 1..=LIN_KILLS {
        let leader = cluster.leader(LEADER_TIMEOUT).await.expect("leader");
        cluster.kill9(leader).expect("kill -9 the leader");
        killed.push(leader);
        lin_phase(&run, &format!("100 operations after kill {round}"), 100).await;
        cluster.restart(leader).expect("restart the killed node");
        cluster
            .wait_ready(leader, LEADER_TIMEOUT)
            .await
            .expect("restarted node ready");
        lin_phase(&run, &format!("100 operations after restart {round}"), 100).await;
    }
    run.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.expect("client task");
    }
    assert!(
        cluster.exited().is_empty(),
        "nodes exited: {:?}",
        cluster.exited()
    );

    let events = run.history.events();
    let started = std::time::Instant::now();
    let reports = linearizability::check(&events, Duration::from_secs(90)).expect("check");
    eprintln!("checked {} events in {:?}", events.len(), started.elapsed());
    for r in &reports {
        eprintln!(
            "key {}: {} operations, {} of unknown outcome: {:?}",
            r.key, r.invoked, r.unknown, r.verdict
        );
    }
    for r in &reports {
        assert!(
            r.linearizable(),
            "history of {} (leaders killed: {killed:?}): {:?}\nhistory:\n{}",
            r.key,
            r.verdict,
            linearizability::describe(&events, &r.key)
        );
    }
    assert_eq!(reports.len(), LIN_KEYS.len(), "every key was exercised");
}
