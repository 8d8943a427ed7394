//! `loadgen heartbeat` against an in-process three-node cluster: registration,
//! heartbeats over every node, and the optional list reader (`--list-every`) each
//! measure what they did, without errors; with `unregistered`, nothing is registered and
//! only 404s count. `bench.sh heartbeat` relies on these figures.
//! Run: `cargo test -p cluster-tests --test loadgen_heartbeat`.

use std::time::Duration;

use cluster_tests::inproc::{serial, Cluster};
use cluster_tests::loadgen::heartbeat::{run_heartbeat, HeartbeatSpec};
use cluster_tests::loadgen::{Limit, RunConfig};

fn spec(c: &Cluster, list_every: Option<Duration>) -> HeartbeatSpec {
    let targets = c
        .ids()
        .into_iter()
        .map(|id| c.api().addr(id).expect("node address").to_string())
        .collect();
    HeartbeatSpec {
        targets,
        services: 40,
        clients: 4,
        prefix: "lg".into(),
        timeout: Duration::from_secs(10),
        list_every,
        unregistered: false,
    }
}

fn run_for(d: Duration) -> RunConfig {
    RunConfig {
        clients: 4,
        limit: Limit::Time(d),
        warmup: Duration::ZERO,
        error_pause: Duration::from_millis(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heartbeats_and_list_reads_are_measured() {
    let _one = serial().await;
    let c = Cluster::start(3, &[]).await.expect("cluster");

    let run = run_heartbeat(
        &spec(&c, Some(Duration::from_millis(20))),
        &run_for(Duration::from_millis(600)),
    )
    .await
    .expect("run");
    assert_eq!(run.registered.acked(), 40, "{:?}", run.registered.errors);
    assert!(
        run.beats.acked() > 0 && run.beats.errors.is_empty(),
        "{:?}",
        run.beats.errors
    );
    let lists = run.lists.expect("the list reader ran");
    assert!(lists.errors.is_empty(), "{:?}", lists.errors);
    assert!(
        lists.acked() >= 3,
        "only {} list reads in 600 ms",
        lists.acked()
    );
    let r = c
        .api()
        .send(1, reqwest::Method::GET, "/services", None)
        .await
        .expect("list");
    assert_eq!(r.json().expect("json")["count"], 40);

    let run = run_heartbeat(&spec(&c, None), &run_for(Duration::from_millis(200)))
        .await
        .expect("run without the reader");
    assert!(run.lists.is_none());
    assert!(run.beats.acked() > 0);

    // Unregistered: names nobody registered are answered 404, and only 404 counts.
    let none = HeartbeatSpec {
        prefix: "none".into(),
        unregistered: true,
        ..spec(&c, None)
    };
    let run = run_heartbeat(&none, &run_for(Duration::from_millis(200)))
        .await
        .expect("unregistered run");
    assert_eq!(run.registered.acked(), 0);
    assert!(
        run.beats.acked() > 0 && run.beats.errors.is_empty(),
        "{:?}",
        run.beats.errors
    );
    let registered = HeartbeatSpec {
        unregistered: true,
        ..spec(&c, None)
    };
    let run = run_heartbeat(&registered, &run_for(Duration::from_millis(200)))
        .await
        .expect("run expecting 404s of registered services");
    assert_eq!(run.beats.acked(), 0, "a 200 is not a 404");
    assert!(
        run.beats.errors.contains_key("status 200"),
        "{:?}",
        run.beats.errors
    );
    let r = c
        .api()
        .send(1, reqwest::Method::GET, "/services", None)
        .await
        .expect("list");
    assert_eq!(
        r.json().expect("json")["count"],
        40,
        "nothing more registered"
    );
}
