//! In-process cluster tests: replication, forwarding, leader loss, minority partition,
//! snapshot catch-up of a new member, restart from disk, linearizable follower reads,
//! service deregistration by a new leader.
//!
//! Each test starts its own cluster through [`cluster_tests::inproc::Cluster`] and holds
//! [`cluster_tests::inproc::serial`] so that only one cluster runs at a time.
//! Run: `cargo test -p cluster-tests --test inproc`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use cluster_tests::inproc::{init_tracing, serial, Api, Cluster, SETTLE};
use cluster_tests::poll;
use futures::StreamExt;
use metacenter_raft::NodeId;
use tokio::sync::broadcast::error::RecvError;

/// The running nodes of `c` other than `id`.
fn others(c: &Cluster, id: NodeId) -> Vec<NodeId> {
    c.live_ids().into_iter().filter(|o| *o != id).collect()
}

/// Writes `hash/key = value` through node `id` and requires success.
async fn must_put(c: &Cluster, id: NodeId, hash: &str, key: &str, value: &str) {
    let r = c
        .api()
        .put(id, hash, key, value)
        .await
        .expect("PUT answered");
    assert_eq!(r.status, 200, "PUT {hash}/{key} via node {id}: {}", r.body);
}

/// Asserts that node `id` serves `hash/key = value` from its local state right now.
async fn assert_value(c: &Cluster, id: NodeId, hash: &str, key: &str, value: &str) {
    let r = c.api().get(id, hash, key).await.expect("GET answered");
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, value),
        "node {id}, {hash}/{key}"
    );
}

/// Asserts that node `id` does not have `hash/key`.
async fn assert_absent(c: &Cluster, id: NodeId, hash: &str, key: &str) {
    let r = c.api().get(id, hash, key).await.expect("GET answered");
    assert_eq!(
        r.status, 404,
        "node {id} must not have {hash}/{key}: {}",
        r.body
    );
}

/// Asserts that every running node holds exactly the same metadata as node `like`.
fn assert_same_data(c: &Cluster, like: NodeId) {
    let expected = c.dump(like).expect("dump");
    for id in c.live_ids() {
        assert_eq!(
            c.dump(id).expect("dump"),
            expected,
            "node {id} vs node {like}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_to_leader_replicates_to_all() {
    let _serial = serial().await;
    init_tracing();
    let c = Cluster::start(3, &[]).await.expect("cluster");
    let leader = c.leader_id().await;
    let r = c
        .api()
        .put(leader, "obj1", "color", "blue")
        .await
        .expect("PUT");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.etag.is_some(), "a write answers an ETag");
    for id in c.ids() {
        c.api().wait_value(id, "obj1", "color", "blue").await;
    }
    c.wait_applied_equal().await;
    assert_same_data(&c, leader);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn write_to_follower_is_forwarded() {
    let _serial = serial().await;
    init_tracing();
    let c = Cluster::start(3, &[]).await.expect("cluster");
    let leader = c.leader_id().await;
    for follower in others(&c, leader) {
        let (key, value) = (format!("k{follower}"), format!("via-{follower}"));
        let r = c
            .api()
            .put(follower, "fwd", &key, &value)
            .await
            .expect("PUT");
        assert_eq!(r.status, 200, "follower {follower}: {}", r.body);
        // The leader applies an entry before the write is answered.
        let got = c.api().get(leader, "fwd", &key).await.expect("GET");
        assert_eq!((got.status, got.body.as_str()), (200, value.as_str()));
        assert_eq!(got.etag, r.etag, "the leader serves the written version");
    }
    c.shutdown().await;
}

/// Writes `during/w-{n}` through `targets` in turn until `stop`; returns the keys
/// whose write was acknowledged (200), counting them in `acked` as it goes.
async fn writer(
    api: Api,
    targets: Vec<NodeId>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> Vec<String> {
    let mut ok = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("w-{n}");
        let target = targets[n % targets.len()];
        if let Ok(r) = api.put(target, "during", &key, &key).await {
            if r.status == 200 {
                ok.push(key);
                acked.fetch_add(1, Ordering::SeqCst);
            }
        }
        n += 1;
    }
    ok
}

/// Polls until node `id`'s `/ready` answers `ready` and its `/health` agrees.
async fn wait_ready_is(c: &Cluster, id: NodeId, ready: bool) {
    let what = format!("node {id} ready={ready}");
    poll::until(&what, SETTLE, || async {
        let r = c.api().send(id, Method::GET, "/ready", None).await.ok()?;
        let h = c.api().send(id, Method::GET, "/health", None).await.ok()?;
        let health = h.json().ok()?["status"].clone();
        let want = if ready {
            (200, "ok")
        } else {
            (503, "degraded")
        };
        (r.status == want.0 && health == want.1).then_some(())
    })
    .await;
}

/// Polls until `acked` reaches `at_least`.
async fn wait_acked(what: &str, acked: &AtomicUsize, at_least: usize) {
    poll::until(what, SETTLE, || async {
        (acked.load(Ordering::SeqCst) >= at_least).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_loss_keeps_acknowledged_writes() {
    let _serial = serial().await;
    init_tracing();
    let mut c = Cluster::start(3, &[]).await.expect("cluster");
    let old = c.leader_id().await;
    let survivors = others(&c, old);
    for i in 0..10 {
        must_put(&c, old, "before", &format!("b{i}"), &format!("v{i}")).await;
    }
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let task = tokio::spawn(writer(
        c.api().clone(),
        survivors.clone(),
        stop.clone(),
        acked.clone(),
    ));
    wait_acked("writes before the leader stops", &acked, 5).await;
    c.stop(old).await.expect("stop the leader");
    let new = c.leader_id().await;
    assert!(
        survivors.contains(&new),
        "new leader {new} not among {survivors:?}"
    );
    let seen = acked.load(Ordering::SeqCst);
    wait_acked("writes after the new election", &acked, seen + 5).await;
    stop.store(true, Ordering::SeqCst);
    let during = task.await.expect("writer task");

    c.wait_applied_equal().await;
    for id in &survivors {
        for i in 0..10 {
            assert_value(&c, *id, "before", &format!("b{i}"), &format!("v{i}")).await;
        }
        for key in &during {
            assert_value(&c, *id, "during", key, key).await;
        }
    }
    for id in &survivors {
        must_put(&c, *id, "after", &format!("k{id}"), "new").await;
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn minority_partition_cannot_commit() {
    let _serial = serial().await;
    init_tracing();
    let forward_timeout = Duration::from_millis(3000);
    let ms = forward_timeout.as_millis().to_string();
    let c = Cluster::start(3, &[("raft.forward_timeout_ms", &ms)])
        .await
        .expect("cluster");
    let old = c.leader_id().await;
    let majority = others(&c, old);
    must_put(&c, old, "base", "k", "v0").await;
    c.wait_applied_equal().await;
    for id in c.ids() {
        wait_ready_is(&c, id, true).await;
    }

    c.isolate(old);
    // Still leader in its own eyes, but no quorum hears it: neither healthy nor ready.
    wait_ready_is(&c, old, false).await;
    // Bounded so that a hang fails the test instead of blocking it.
    let bound = forward_timeout + Duration::from_secs(10);
    let put = c.api().put(old, "minority", "k", "lost");
    let r = tokio::time::timeout(bound, put)
        .await
        .expect("the isolated node answers within its forward timeout")
        .expect("PUT answered");
    assert_eq!(r.status, 503, "write on the minority side: {}", r.body);
    let err = r.json().expect("error body");
    assert_eq!(err["error"], "Service Unavailable", "{err}");

    let new = c.leader_among(&majority).await;
    assert_ne!(new, old, "the majority elects a new leader");
    for id in &majority {
        must_put(&c, *id, "majority", &format!("k{id}"), "ok").await;
    }
    c.wait_applied_equal_among(&majority).await;
    for id in &majority {
        assert_absent(&c, *id, "minority", "k").await;
    }

    c.heal();
    let agreed = c.leader_id().await;
    assert!(majority.contains(&agreed), "leader {agreed} after heal");
    c.wait_applied_equal().await;
    assert_same_data(&c, new);
    for id in c.ids() {
        wait_ready_is(&c, id, true).await;
    }
    for id in c.ids() {
        assert_absent(&c, id, "minority", "k").await;
        for m in &majority {
            assert_value(&c, id, "majority", &format!("k{m}"), "ok").await;
        }
    }
    must_put(&c, old, "healed", "k", "ok").await;
    c.shutdown().await;
}

/// Writes `n` keys `snap/k{i} = v{i}` through node `id`, 8 at a time.
async fn write_many(api: &Api, id: NodeId, n: usize) {
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|i| async move {
            (
                i,
                api.put(id, "snap", &format!("k{i}"), &format!("v{i}"))
                    .await,
            )
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for (i, r) in results {
        let r = r.expect("PUT answered");
        assert_eq!(r.status, 200, "write {i}: {}", r.body);
    }
}

const RUN: &str = "0b9f5bd4-1b43-4e0c-8a55-5f1f3a9e2c77";

/// Writes `batches` batches of three points of one series, through every node in turn.
async fn write_points(c: &Cluster, batches: usize) {
    let ids = c.live_ids();
    for b in 0..batches {
        let items: Vec<_> = (0..3)
            .map(|k| json!({"run_id": RUN, "metric_name": "loss", "step": b * 3 + k, "value": (b * 3 + k) as f64 * 0.1}))
            .collect();
        let body = json!({ "metrics": items });
        let path = "/api/v1/metrics/batch";
        let r = c
            .api()
            .send(ids[b % ids.len()], Method::POST, path, Some(body));
        let r = r.await.expect("batch answered");
        assert_eq!(r.status, 201, "batch {b}: {}", r.body);
    }
}

/// A point as compared between nodes: time, value bits, step.
type Shown = (i64, u64, Option<i64>);

/// Node `id`'s points of the series, and its chunk sizes.
fn points_of(c: &Cluster, id: NodeId) -> (Vec<Shown>, Vec<usize>) {
    let store = c.node(id).expect("node").store();
    let run = *uuid::Uuid::parse_str(RUN).expect("uuid").as_bytes();
    let q = metacenter_storage::PointQuery {
        limit: usize::MAX,
        ..Default::default()
    };
    let points = store
        .series_points("default", &run, "loss", &q)
        .expect("read");
    let shown = points
        .iter()
        .map(|p| (p.time_ns, p.value.to_bits(), p.step));
    let chunks = store
        .series_chunk_counts("default", &run, "loss")
        .expect("chunks");
    (shown.collect(), chunks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_member_catches_up_through_a_snapshot() {
    let _serial = serial().await;
    init_tracing();
    let settings = [("raft.snapshot_every", "20"), ("raft.keep_logs", "0")];
    let mut c = Cluster::start(3, &settings).await.expect("cluster");
    let leader = c.leader_id().await;
    write_many(c.api(), leader, 200).await;
    // Small point batches: merged into column chunks by apply on every node.
    write_points(&c, 80).await;
    // The leader's log no longer starts at 1: a new member cannot replay it.
    let purged = poll::until("the leader to snapshot and purge", SETTLE, || async {
        let m = c.node(leader).ok()?.metrics();
        m.purged.map(|p| p.index).filter(|i| *i > 0)
    })
    .await;

    let id = c.spawn_node().await.expect("new node");
    let mut events = c.node(id).expect("node").subscribe();
    let installed = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(a) if a.snapshot_installed => return true,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return false,
            }
        }
    });
    c.join(id).await.expect("add the 4th node");
    let installed = tokio::time::timeout(SETTLE, installed).await;
    assert!(
        matches!(installed, Ok(Ok(true))),
        "node {id} installed a snapshot"
    );
    // Raft reports the installed snapshot in its metrics just after the event.
    let what = format!("node {id} to report a snapshot covering the purged log ({purged})");
    poll::until(&what, SETTLE, || async {
        let snap = c.node(id).ok()?.metrics().snapshot.map(|s| s.index);
        snap.filter(|s| *s >= purged)
    })
    .await;
    let voters: Vec<NodeId> = c
        .node(leader)
        .expect("leader")
        .metrics()
        .membership_config
        .voter_ids()
        .collect();
    assert!(voters.contains(&id), "voters {voters:?}");

    c.wait_applied_equal().await;
    let data = c.dump(id).expect("dump");
    assert_eq!(data.get("snap").map(|m| m.len()), Some(200));
    assert_same_data(&c, leader);
    let (points, chunks) = points_of(&c, leader);
    assert_eq!(points.len(), 240);
    assert!(chunks.len() < 80, "merged: {chunks:?}");
    for other in c.live_ids() {
        assert_eq!(
            points_of(&c, other),
            (points.clone(), chunks.clone()),
            "node {other}"
        );
    }
    must_put(&c, id, "after", "k", "v").await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_cluster_restarts_from_disk() {
    let _serial = serial().await;
    init_tracing();
    let mut c = Cluster::start(3, &[]).await.expect("cluster");
    let ids = c.ids();
    for i in 0..30 {
        let via = ids[i % ids.len()];
        must_put(
            &c,
            via,
            &format!("obj{}", i % 5),
            &format!("k{i}"),
            &format!("v{i}"),
        )
        .await;
    }
    c.wait_applied_equal().await;
    let before = c.dump(ids[0]).expect("dump");
    assert_eq!(before.len(), 5);

    for id in &ids {
        c.stop(*id).await.expect("stop");
    }
    for id in &ids {
        c.restart(*id).await.expect("restart");
    }
    let leader = c.leader_id().await;
    c.wait_applied_equal().await;
    for id in &ids {
        assert_eq!(
            c.dump(*id).expect("dump"),
            before,
            "node {id} after restart"
        );
    }
    for id in &ids {
        must_put(&c, *id, "after-restart", &format!("k{id}"), "v").await;
    }
    c.wait_applied_equal().await;
    assert_same_data(&c, leader);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizable_read_on_a_follower_sees_the_latest_write() {
    let _serial = serial().await;
    init_tracing();
    let c = Cluster::start(3, &[]).await.expect("cluster");
    let leader = c.leader_id().await;
    let [writer, reader] = others(&c, leader)[..] else {
        panic!("expected two followers");
    };
    must_put(&c, writer, "lin", "k", "v0").await;
    c.api().wait_value(reader, "lin", "k", "v0").await;
    for round in 1..=10 {
        let value = format!("v{round}");
        // The reader cannot receive this entry: the leader's traffic to it is cut.
        c.faults().cut(leader, reader);
        must_put(&c, writer, "lin", "k", &value).await;
        let stale = format!("v{}", round - 1);
        assert_value(&c, reader, "lin", "k", &stale).await;
        c.heal();
        let r = if round % 2 == 0 {
            c.api().get_linearizable(reader, "lin", "k").await
        } else {
            c.api().get_linearizable_header(reader, "lin", "k").await
        }
        .expect("GET answered");
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, value.as_str()),
            "round {round}"
        );
    }
    c.shutdown().await;
}

/// `deregisterAfterMs` is enforced by the leader's reaper from its own applied state: a
/// service registered through the old leader, and due only after that leader stops, is
/// removed by the new one (and one without the field stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_leader_reaps_services_registered_before_failover() {
    let _serial = serial().await;
    init_tracing();
    let settings = [
        ("services.stale_threshold_ms", "200"),
        ("services.reap_interval_ms", "50"),
    ];
    let mut c = Cluster::start(3, &settings).await.expect("cluster");
    let old = c.leader_id().await;
    for (name, body) in [
        ("eph", json!({ "version": "1", "deregisterAfterMs": 5_000 })),
        ("keep", json!({ "version": "1" })),
    ] {
        let path = format!("/services/{name}");
        let r = c.api().send(old, Method::PUT, &path, Some(body)).await;
        let r = r.expect("PUT answered");
        assert!(r.ok(), "register {name}: {} {}", r.status, r.body);
    }
    c.stop(old).await.expect("stop the leader");
    let new = c.leader_id().await;
    assert_ne!(new, old);
    let present = c.api().send(new, Method::GET, "/services/eph", None).await;
    assert_eq!(
        present.expect("GET answered").status,
        200,
        "due 5.2 s after its registration, it outlives the election"
    );
    poll::until("the new leader reaps `eph`", SETTLE, || async {
        let r = c.api().send(new, Method::GET, "/services/eph", None).await;
        (r.ok()?.status == 404).then_some(())
    })
    .await;
    for id in c.live_ids() {
        let r = c.api().send(id, Method::GET, "/services/keep", None).await;
        assert_eq!(
            r.expect("GET answered").status,
            200,
            "node {id} kept `keep`"
        );
    }
    c.shutdown().await;
}
