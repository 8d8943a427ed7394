//! Discovery API (API.md section 3, meta-core) and blocking queries over real HTTP.
//!
//! Services: register (`PUT`, `lastHeartbeat` stamped by the node), list with count,
//! get, 404 `service not found`, heartbeat, deregister, the derived `stale` status
//! (`services.stale_threshold_ms`, or meta-core's `STALE_THRESHOLD_MS`), removal by the
//! leader past `deregisterAfterMs`, and bad registration bodies (400, nothing stored).
//!
//! Blocking queries (`?index=N&wait=D`) on `GET /services/{name}`, `GET /services` and
//! `GET /meta/{hash}`: a parked watch wakes on a change and answers the new value; with
//! no change it answers the unchanged value when the wait runs out; a watch on node 2
//! wakes on a write to node 1; `limits.max_waiters` bounds the parked watches (429).
//!
//! A watch is proven parked before the change is made: with `limits.max_waiters=1`, a
//! probe watch is refused with 429 exactly while another watch holds the only slot.
//! "Wakes on the change" is checked on content against a wait far longer than the
//! client-side deadline, never by measuring durations.
//!
//! The refused requests are the table [`bad_input`], run by `common::bad_input`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::bad_input::{self, raw, row, Case, NO_BODY, NO_HEADERS};
use common::{cluster, shape, stop_all, until, until_every, Node, Reply, QUICK_RAFT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// `wait` of watches that must be woken by a change: far beyond [`WAKE_DEADLINE`], so a
/// watch that only returns when its wait runs out fails the test instead of passing.
const LONG_WAIT: &str = "120s";

/// How long the test waits for a woken watch to answer.
const WAKE_DEADLINE: Duration = Duration::from_secs(40);

// ------------------------------------------------------------------ helpers

/// The discovery calls and blocking-query probes of these tests.
trait Services {
    async fn register(&self, name: &str, info: Value) -> Value;
    async fn heartbeat(&self, name: &str) -> Reply;
    fn spawn_get(&self, path: &str) -> tokio::task::JoinHandle<Reply>;
    async fn until_slot_taken(&self);
}

impl Services for Node {
    async fn register(&self, name: &str, info: Value) -> Value {
        self.json(Method::PUT, &format!("/services/{name}"), info)
            .await
            .ok()
    }

    async fn heartbeat(&self, name: &str) -> Reply {
        let path = format!("/services/{name}/heartbeat");
        self.send(self.request(Method::POST, &path)).await
    }

    /// Starts the watch `GET path` in the background with a client deadline of
    /// [`WAKE_DEADLINE`]. A 429 (a probe of [`Services::until_slot_taken`] held the only
    /// slot for its few milliseconds) is retried, so the watch ends up parked.
    fn spawn_get(&self, path: &str) -> tokio::task::JoinHandle<Reply> {
        let url = format!("{}{path}", self.base);
        tokio::spawn(async move {
            until_every("the watch let in", Duration::from_millis(2), || async {
                let req = common::client().get(&url).timeout(WAKE_DEADLINE);
                let resp = req.send().await;
                let resp = resp.expect("watch answered before the client deadline");
                let reply = Reply::read(resp).await;
                (reply.status != StatusCode::TOO_MANY_REQUESTS).then_some(reply)
            })
            .await
        })
    }

    /// Polls until a watch on this node is refused with 429, i.e. the only waiter slot
    /// (`limits.max_waiters=1`) is held by a parked watch. Probes that do get the slot
    /// return after a few milliseconds.
    async fn until_slot_taken(&self) {
        until_every("the watch parked", Duration::from_millis(5), || async {
            let r = self
                .fetch(&format!("/services?index={}&wait=5ms", u64::MAX))
                .await;
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                r.assert_error(StatusCode::TOO_MANY_REQUESTS, "blocking queries");
                return Some(());
            }
            assert_eq!(r.status, StatusCode::OK, "probe: {r:?}");
            None
        })
        .await
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// `lastHeartbeat` (RFC 3339) as unix ms.
fn heartbeat_ms(info: &Value) -> u64 {
    let text = info["lastHeartbeat"]
        .as_str()
        .unwrap_or_else(|| panic!("lastHeartbeat is a string: {info}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("lastHeartbeat {text:?} is not RFC 3339: {e}"))
        .timestamp_millis() as u64
}

/// Polls until the wall clock is past `ms`, so that a later stamp differs.
async fn clock_past(ms: u64) {
    until_every("the clock past {ms}", Duration::from_millis(1), || async {
        (now_ms() > ms).then_some(())
    })
    .await
}

/// A full meta-core ServiceInfo.
fn service_info(name: &str) -> Value {
    json!({
        "name": name,
        "version": "1.4.2",
        "api": format!("http://{name}.local:9000"),
        "status": "healthy",
        "pid": 4242,
        "hostname": "host-a",
        "startedAt": "2024-05-01T10:00:00Z",
        "capabilities": ["read", "write"],
        "endpoints": { "health": "/health", "metrics": "/metrics" },
    })
}

/// Checks `status` against `lastHeartbeat` given that the node read its clock
/// somewhere in `[before, after]`: stale must be reported exactly when the heartbeat is
/// older than the threshold. Returns whether it was stale.
fn status_consistent(info: &Value, before: u64, after: u64, threshold: u64) -> bool {
    let hb = heartbeat_ms(info);
    let stale = info["status"] == "stale";
    if after.saturating_sub(hb) <= threshold {
        assert!(!stale, "reported stale too early: {info}");
    }
    if before.saturating_sub(hb) > threshold {
        assert!(stale, "not reported stale past the threshold: {info}");
    }
    stale
}

// ------------------------------------------------------------ registration

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_list_get_heartbeat_deregister() {
    let mut node = Node::single(&[]).await;

    let r = node.fetch("/services").await.ok();
    assert_eq!(r, json!({ "services": [], "count": 0 }));
    node.fetch("/services/alpha")
        .await
        .assert_error(StatusCode::NOT_FOUND, "service not found");

    let before = now_ms();
    let mut info = service_info("alpha");
    info["lastHeartbeat"] = json!("1999-01-01T00:00:00Z"); // the node stamps its own
    let reg = node.register("alpha", info).await;
    let after = now_ms();
    let stamped = heartbeat_ms(&reg);
    assert!(
        (before..=after).contains(&stamped),
        "lastHeartbeat {stamped} stamped during the request [{before}, {after}]"
    );
    for field in [
        "name",
        "version",
        "api",
        "status",
        "pid",
        "hostname",
        "startedAt",
        "capabilities",
        "endpoints",
    ] {
        assert_eq!(reg[field], service_info("alpha")[field], "{field} echoed");
    }

    // A registration without `name` in the body takes the path's name.
    node.register("beta", json!({ "version": "0.1" })).await;

    let one = node.fetch("/services/alpha").await.ok();
    assert_eq!(one, reg, "GET answers what PUT answered");
    let list = node.fetch("/services").await.ok();
    assert_eq!(list["count"], 2);
    let services = list["services"].as_array().expect("services array");
    let mut names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
    let beta = services.iter().find(|s| s["name"] == "beta").unwrap();
    assert_eq!(beta["status"], "healthy", "default status");
    assert_eq!(beta["version"], "0.1");

    // Heartbeat moves lastHeartbeat forward.
    clock_past(stamped).await;
    let hb = node.heartbeat("alpha").await.ok();
    assert_eq!(hb["success"], true);
    let new = heartbeat_ms(&hb);
    assert!(
        new > stamped,
        "heartbeat {new} after registration {stamped}"
    );
    let one = node.fetch("/services/alpha").await.ok();
    assert_eq!(heartbeat_ms(&one), new);
    assert_eq!(one["version"], "1.4.2", "heartbeat keeps the ServiceInfo");
    node.heartbeat("ghost")
        .await
        .assert_error(StatusCode::NOT_FOUND, "service not found");

    // Deregister.
    let r = node.delete("/services/alpha").await.ok();
    assert_eq!(r["success"], true);
    node.fetch("/services/alpha")
        .await
        .assert_error(StatusCode::NOT_FOUND, "service not found");
    node.delete("/services/alpha")
        .await
        .assert_error(StatusCode::NOT_FOUND, "service not found");
    node.heartbeat("alpha")
        .await
        .assert_error(StatusCode::NOT_FOUND, "service not found");
    let list = node.fetch("/services").await.ok();
    assert_eq!(list["count"], 1);
    assert_eq!(list["services"][0]["name"], "beta");
    node.stop().await;
}

/// Discovery's refused requests: registration bodies that are no JSON object, whose
/// `name` is not the path's or whose `deregisterAfterMs` is no count of milliseconds,
/// and the query parameters of blocking queries and pages. Each is a 400 in
/// meta-core's error shape naming the problem.
fn bad_input() -> Vec<Case> {
    let put = |body: &str, needle| {
        let p = "/services/svc";
        row(Method::PUT, p, NO_HEADERS, raw(body), 400, needle)
    };
    let get = |path: &str, needle| row(Method::GET, path, NO_HEADERS, NO_BODY, 400, needle);
    vec![
        put("{\"name\": ", "invalid JSON body"),
        put("not json at all", "invalid JSON body"),
        put("[1, 2, 3]", "invalid JSON body"),
        put("\"a string\"", "invalid JSON body"),
        put("{\"name\": \"other\"}", "name"),
        put("{\"name\": 7}", "name"),
        put("{\"deregisterAfterMs\": -5}", "deregisterAfterMs"),
        put("{\"deregisterAfterMs\": \"soon\"}", "deregisterAfterMs"),
        put("{\"deregisterAfterMs\": 1.5}", "deregisterAfterMs"),
        get("/services/w?index=x", "index"),
        get("/services?index=1&wait=soon", "wait"),
        get("/services?limit=x", "limit"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_are_rejected_and_store_nothing() {
    let mut node = Node::single(&[]).await;
    bad_input::run_shaped(&node, &bad_input(), |case, r| {
        shape::core(r, case.status(r), case.needle())
    })
    .await;
    node.fetch("/services/svc")
        .await
        .assert_error(StatusCode::NOT_FOUND, "service not found");
    assert_eq!(
        node.fetch("/services").await.ok(),
        json!({ "services": [], "count": 0 })
    );

    // The same path with a good body works.
    node.register("svc", json!({ "name": "svc", "deregisterAfterMs": 5000 }))
        .await;
    assert_eq!(node.fetch("/services").await.ok()["count"], 1);
    assert_eq!(
        node.fetch("/services/svc").await.ok()["deregisterAfterMs"],
        5000
    );
    node.stop().await;
}

// ---------------------------------------------------------- stale and reap

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_turns_stale_and_heartbeat_revives() {
    const THRESHOLD: u64 = 300;
    // meta-core's own variable sets the threshold.
    let threshold = THRESHOLD.to_string();
    let mut node = Node::launch(&[], &[("STALE_THRESHOLD_MS", &threshold)]).await;
    node.wait_ready().await;

    let before = now_ms();
    let reg = node
        .register("slow", json!({ "status": "starting", "version": "1" }))
        .await;
    let after = now_ms();
    if !status_consistent(&reg, before, after, THRESHOLD) {
        assert_eq!(
            reg["status"], "starting",
            "a fresh service keeps its status"
        );
    }

    // Poll until stale; every observation must agree with its lastHeartbeat.
    until("stale", || async {
        let before = now_ms();
        let one = node.fetch("/services/slow").await.ok();
        let after = now_ms();
        if status_consistent(&one, before, after, THRESHOLD) {
            let list = node.fetch("/services").await.ok();
            assert_eq!(list["services"][0]["status"], "stale", "the list agrees");
            return Some(());
        }
        assert_eq!(one["status"], "starting");
        None
    })
    .await;

    // Without deregisterAfterMs a stale service stays listed; a heartbeat revives it.
    until_every(
        "a heartbeat revives it",
        Duration::from_millis(5),
        || async {
            node.heartbeat("slow").await.ok();
            let before = now_ms();
            let one = node.fetch("/services/slow").await.ok();
            let after = now_ms();
            if !status_consistent(&one, before, after, THRESHOLD) {
                assert_eq!(one["status"], "starting", "registered status is back");
                return Some(());
            }
            None
        },
    )
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_removes_services_past_deregister_after() {
    let mut node = Node::single(&[
        ("services.stale_threshold_ms", "200"),
        ("services.reap_interval_ms", "100"),
    ])
    .await;
    let reg = node
        .register("ephemeral", json!({ "deregisterAfterMs": 100 }))
        .await;
    assert_eq!(reg["deregisterAfterMs"], 100);
    node.register("durable", json!({ "version": "1" })).await;
    node.register("patient", json!({ "deregisterAfterMs": 600_000 }))
        .await;

    until("the leader reaps it", || async {
        let r = node.fetch("/services/ephemeral").await;
        if r.status == StatusCode::NOT_FOUND {
            r.assert_error(StatusCode::NOT_FOUND, "service not found");
            return Some(());
        }
        r.ok();
        None
    })
    .await;
    // The reap that removed it saw the other two at the same time: the one without
    // deregisterAfterMs and the one whose bound is far away are merely stale.
    let list = node.fetch("/services").await.ok();
    assert_eq!(list["count"], 2, "{list}");
    let mut names: Vec<&str> = list["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["durable", "patient"]);
    node.stop().await;
}

// --------------------------------------------------------- blocking queries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_watch_wakes_on_heartbeat_and_times_out_unchanged() {
    let mut node = Node::single(&[("limits.max_waiters", "1")]).await;
    node.register("w", json!({ "version": "1" })).await;
    let index = node.settled().await;
    let first = node.fetch("/services/w").await;
    let seen = first.ok();
    let index = index.max(first.applied_index());

    // No change: the watch answers the unchanged value when its wait runs out.
    let r = node
        .fetch(&format!("/services/w?index={index}&wait=300ms"))
        .await;
    assert_eq!(r.ok(), seen);

    // A parked watch wakes on a heartbeat and answers the new heartbeat.
    clock_past(heartbeat_ms(&seen)).await;
    let watch = node.spawn_get(&format!("/services/w?index={index}&wait={LONG_WAIT}"));
    node.until_slot_taken().await;
    let hb = node.heartbeat("w").await.ok();
    let woke = watch.await.expect("watch task");
    let body = woke.ok();
    assert_ne!(
        body["lastHeartbeat"], seen["lastHeartbeat"],
        "the body changed"
    );
    assert_eq!(body["lastHeartbeat"], hb["lastHeartbeat"]);
    // X-Applied-Index of the woken answer can lag the data it carries: see
    // bug_woken_watch_applied_index_lags_its_data.

    // The slot is free again, and a watch behind the current index answers at once.
    let r = node
        .fetch(&format!("/services/w?index=0&wait={LONG_WAIT}"))
        .await;
    assert_eq!(r.ok()["lastHeartbeat"], hb["lastHeartbeat"]);

    // Deregistration wakes a watch of the service too: it answers 404.
    let index = node.settled().await;
    let watch = node.spawn_get(&format!("/services/w?index={index}&wait={LONG_WAIT}"));
    node.until_slot_taken().await;
    node.delete("/services/w").await.ok();
    watch
        .await
        .expect("watch task")
        .assert_error(StatusCode::NOT_FOUND, "service not found");

    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_list_watch() {
    let mut node = Node::single(&[("limits.max_waiters", "1")]).await;
    node.register("a", json!({})).await;
    let index = node.settled().await;
    let first = node.fetch("/services").await;
    let seen = first.ok();
    let index = index.max(first.applied_index());

    let r = node
        .fetch(&format!("/services?index={index}&wait=300ms"))
        .await;
    assert_eq!(r.ok(), seen, "unchanged after the wait");

    let watch = node.spawn_get(&format!("/services?index={index}&wait={LONG_WAIT}"));
    node.until_slot_taken().await;
    node.register("b", json!({})).await;
    let body = watch.await.expect("watch task").ok();
    assert_eq!(body["count"], 2, "woke with the new service: {body}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_watch() {
    let mut node = Node::single(&[("limits.max_waiters", "1")]).await;
    node.json(Method::PUT, "/meta/obj", json!({ "title": "one" }))
        .await
        .ok();
    let index = node.settled().await;
    let first = node.fetch("/meta/obj").await;
    let seen = first.ok();
    let index = index.max(first.applied_index());

    let r = node
        .fetch(&format!("/meta/obj?index={index}&wait=300ms"))
        .await;
    assert_eq!(r.ok(), seen, "unchanged after the wait");

    // A write to another object does not wake it; one to this object does.
    let watch = node.spawn_get(&format!("/meta/obj?index={index}&wait={LONG_WAIT}"));
    node.until_slot_taken().await;
    node.json(Method::PUT, "/meta/other", json!({ "x": "y" }))
        .await
        .ok();
    node.json(Method::PUT, "/meta/obj", json!({ "title": "two" }))
        .await
        .ok();
    let body = watch.await.expect("watch task").ok();
    assert_eq!(body["metadata"]["title"], "two", "{body}");

    // Watching an absent object wakes when it is created.
    let index = node.settled().await;
    let watch = node.spawn_get(&format!("/meta/later?index={index}&wait={LONG_WAIT}"));
    node.until_slot_taken().await;
    node.json(Method::PUT, "/meta/later", json!({ "k": "v" }))
        .await
        .ok();
    let body = watch.await.expect("watch task").ok();
    assert_eq!(body, json!({ "hashId": "later", "metadata": { "k": "v" } }));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_waiters_refuses_a_second_watch() {
    let mut node = Node::single(&[("limits.max_waiters", "1")]).await;
    node.register("m", json!({})).await;
    let index = node.settled().await;

    let watch = node.spawn_get(&format!("/services/m?index={index}&wait={LONG_WAIT}"));
    node.until_slot_taken().await;
    // Concurrent watches on other resources are refused as well.
    node.fetch(&format!("/meta/x?index={index}&wait=10s"))
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "blocking queries");
    node.fetch(&format!("/services/m?index={index}&wait=10s"))
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "blocking queries");
    // Plain reads are not limited.
    node.fetch("/services/m").await.ok();

    node.heartbeat("m").await.ok();
    watch.await.expect("watch task").ok();
    // The slot is released once the first watch answers.
    node.fetch(&format!("/services/m?index={index}&wait=10s"))
        .await
        .ok();
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_on_node2_wakes_on_write_to_node1() {
    let mut nodes = cluster(&[QUICK_RAFT, &[("limits.max_waiters", "1")]].concat()).await;
    nodes[0]
        .json(Method::PUT, "/meta/shared", json!({ "v": "1" }))
        .await
        .ok();
    nodes[0].register("svc", json!({ "version": "1" })).await;

    // Node 2 has the writes once it shows them.
    until("node 2 caught up", || async {
        (nodes[1].fetch("/services/svc").await.status == StatusCode::OK).then_some(())
    })
    .await;
    let index = nodes[1].settled().await;
    let first = nodes[1].fetch("/meta/shared").await;
    assert_eq!(first.ok()["metadata"]["v"], "1");
    let index = index.max(first.applied_index());

    let watch = nodes[1].spawn_get(&format!("/meta/shared?index={index}&wait={LONG_WAIT}"));
    nodes[1].until_slot_taken().await;
    nodes[0]
        .json(Method::PUT, "/meta/shared", json!({ "v": "2" }))
        .await
        .ok();
    let body = watch.await.expect("watch task").ok();
    assert_eq!(body["metadata"]["v"], "2", "{body}");

    // The same for a service heartbeat sent to node 1.
    let index = nodes[1].settled().await;
    let seen = nodes[1].fetch("/services/svc").await.ok();
    clock_past(heartbeat_ms(&seen)).await;
    let watch = nodes[1].spawn_get(&format!("/services/svc?index={index}&wait={LONG_WAIT}"));
    nodes[1].until_slot_taken().await;
    let hb = nodes[0].heartbeat("svc").await.ok();
    let body = watch.await.expect("watch task").ok();
    assert_eq!(body["lastHeartbeat"], hb["lastHeartbeat"]);
    stop_all(&mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_woken_watch_applied_index_lags_its_data() {
    let mut node = Node::single(&[("limits.max_waiters", "1")]).await;
    node.register("w", json!({})).await;
    for round in 0..40 {
        let index = node.settled().await;
        let seen = node.fetch("/services/w").await.ok();
        clock_past(heartbeat_ms(&seen)).await;
        let watch = node.spawn_get(&format!("/services/w?index={index}&wait={LONG_WAIT}"));
        node.until_slot_taken().await;
        let hb = node.heartbeat("w").await.ok();
        let woke = watch.await.expect("watch task");
        let body = woke.ok();
        assert_eq!(body["lastHeartbeat"], hb["lastHeartbeat"], "the new value");
        assert!(
            woke.applied_index() > index,
            "round {round}: the answer carries the heartbeat applied after index {index}, \
             but X-Applied-Index is {}: a client's next watch with it wakes at once",
            woke.applied_index()
        );
    }
    node.stop().await;
}

// ------------------------------------------------------------------ pages

/// The names listed by following `next` from `first` (a path with its query).
async fn follow_pages(node: &Node, first: &str, limit: usize) -> (Vec<String>, usize) {
    let (mut names, mut pages, mut path) = (Vec::new(), 0, first.to_string());
    loop {
        let page = node.fetch(&path).await.ok();
        let listed = page["services"].as_array().expect("services");
        assert_eq!(page["count"], listed.len(), "{page}");
        assert!(
            (1..=limit).contains(&listed.len()),
            "page of {}",
            listed.len()
        );
        names.extend(
            listed
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match page["next"].as_str() {
            Some(next) => path = format!("/services?limit={limit}&after={next}"),
            None => return (names, pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_list_pages_by_count_and_by_bytes() {
    let mut node = Node::single(&[]).await;
    let names: Vec<String> = (0..5).map(|i| format!("svc-{i}")).collect();
    for n in &names {
        node.register(n, service_info(n)).await;
    }
    let (listed, pages) = follow_pages(&node, "/services?limit=2", 2).await;
    assert_eq!((listed, pages), (names.clone(), 3));
    let all = node.fetch("/services").await.ok();
    assert_eq!((all["count"].as_u64(), all.get("next")), (Some(5), None));

    // Large registrations: a page ends after about 4 MiB, whatever its limit.
    let pad = "x".repeat(60 << 10);
    for i in 0..80 {
        let name = format!("big-{i:02}");
        node.register(&name, json!({ "name": name, "pad": pad }))
            .await;
    }
    let first = node.fetch("/services?after=b");
    let first = first.await;
    let listed = first.ok()["count"].as_u64().unwrap();
    assert!(
        first.json()["next"].is_string() && listed < 80,
        "{listed} listed"
    );
    let most = (4 << 20) + (64 << 10) + 4096;
    assert!(
        first.body.len() <= most,
        "a page of {} bytes",
        first.body.len()
    );
    let (listed, _) = follow_pages(&node, "/services?after=b", 1000).await;
    assert_eq!(listed.len(), 85, "every big service, then the small ones");
    node.stop().await;
}
