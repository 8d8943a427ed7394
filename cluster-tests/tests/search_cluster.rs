//! Metric metadata search and sync on a three-node in-process cluster: a sync asked of
//! a follower is relayed to the leader, its replicated status is answered by every
//! node and survives the leader's loss, and metric names written through one node are
//! searchable on every other (linearizable search waits for the local index).
//! Run: `cargo test -p cluster-tests --test search_cluster`.

use cluster_tests::inproc::{init_tracing, serial, Cluster, SETTLE};
use cluster_tests::poll;
use reqwest::Method;
use serde_json::{json, Value};

fn dead_source() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("default=http://{}", l.local_addr().expect("addr"))
}

async fn call(
    c: &Cluster,
    id: u64,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let r = c
        .api()
        .send(id, method, path, body)
        .await
        .expect("answered");
    let v = serde_json::from_str(&r.body).unwrap_or(Value::String(r.body.clone()));
    (r.status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn syncs_relay_to_the_leader_and_their_status_is_replicated() {
    let _serial = serial().await;
    init_tracing();
    let source = dead_source();
    let settings = [
        ("sync.enabled", "false"),
        ("sync.sources", source.as_str()),
        ("sync.max_retries", "0"),
        ("sync.timeout", "1s"),
    ];
    let mut c = Cluster::start(3, &settings).await.expect("cluster");
    let leader = c.leader_id().await;
    let follower = c
        .live_ids()
        .into_iter()
        .find(|i| *i != leader)
        .expect("follower");

    let (st, v) = call(
        &c,
        follower,
        Method::POST,
        "/api/v1/metrics/sync/default",
        None,
    )
    .await;
    assert_eq!(
        st, 502,
        "the leader ran the sync and the source is down: {v}"
    );
    for id in c.live_ids() {
        poll::until("failed status on every node", SETTLE, || async {
            let (_, s) = call(
                &c,
                id,
                Method::GET,
                "/api/v1/metrics/sync/default/status",
                None,
            )
            .await;
            (s["status"] == "failed").then_some(())
        })
        .await;
    }

    let points = json!({"metrics": [{"run_id": "4f6d2a3e-8c1b-4d5e-9f00-1a2b3c4d5e6f",
        "metric_name": "gpu_memory_used_bytes", "value": 1.0}]});
    let (st, v) = call(
        &c,
        follower,
        Method::POST,
        "/api/v1/metrics/batch",
        Some(points),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    for id in c.live_ids() {
        let path = "/api/v1/metrics/search?consistency=linearizable";
        let (st, v) = call(
            &c,
            id,
            Method::POST,
            path,
            Some(json!({"query": "gpu memory"})),
        )
        .await;
        assert_eq!((st, v["total"].as_u64()), (200, Some(1)), "node {id}: {v}");
    }

    c.stop(leader).await.expect("stop leader");
    let survivor = c.live_ids()[0];
    let (st, s) = call(
        &c,
        survivor,
        Method::GET,
        "/api/v1/metrics/sync/default/state",
        None,
    )
    .await;
    assert_eq!((st, s["failed_syncs"].as_u64()), (200, Some(1)), "{s}");
    let new_leader = c.leader_id().await;
    assert_ne!(new_leader, leader);
    let (st, v) = call(
        &c,
        survivor,
        Method::POST,
        "/api/v1/metrics/sync/default",
        None,
    )
    .await;
    assert_eq!(st, 502, "the new leader runs syncs: {v}");
    poll::until("the second failure replicated", SETTLE, || async {
        let path = "/api/v1/metrics/sync/default/state";
        let (_, s) = call(&c, survivor, Method::GET, path, None).await;
        (s["failed_syncs"].as_u64() == Some(2)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_installs_a_snapshot_rebuilds_its_index() {
    let _serial = serial().await;
    init_tracing();
    let settings = [("raft.snapshot_every", "20"), ("raft.keep_logs", "0")];
    let mut c = Cluster::start(3, &settings).await.expect("cluster");
    let leader = c.leader_id().await;
    for i in 0..60 {
        let batch = json!({"metrics": [{"run_id": "4f6d2a3e-8c1b-4d5e-9f00-1a2b3c4d5e6f",
            "metric_name": format!("snapmetric_{i}"), "value": 1.0}]});
        let (st, v) = call(
            &c,
            leader,
            Method::POST,
            "/api/v1/metrics/batch",
            Some(batch),
        )
        .await;
        assert_eq!(st, 201, "{v}");
    }
    poll::until("the leader to snapshot and purge", SETTLE, || async {
        let m = c.node(leader).ok()?.metrics();
        m.purged.map(|p| p.index).filter(|i| *i > 0)
    })
    .await;
    let id = c.spawn_node().await.expect("new node");
    c.join(id).await.expect("add the 4th node");
    let path = "/api/v1/metrics/search?consistency=linearizable";
    let body = json!({"query": "snapmetric", "limit": 1000});
    let (st, v) = call(&c, id, Method::POST, path, Some(body)).await;
    assert_eq!((st, v["total"].as_u64()), (200, Some(60)), "node {id}: {v}");
    c.shutdown().await;
}
