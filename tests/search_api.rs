//! HTTP tests of metric metadata search and sync (API.md section 6) on in-process
//! nodes, against a real VictoriaMetrics (the Debian `victoria-metrics` binary, which
//! `.ci/run` installs): sync, search (words, prefix, fuzzy, type and label filters,
//! pagination), removal of deleted series by a full sync, a source that is down
//! (retries, status `failed`, health 503) and then recovers, tenant isolation, metric
//! names from points, an index rebuilt after its directory is deleted, settings
//! validation, the Prometheus discovery API over metacenter's own points, and the one
//! tenant rule on the body's `tenant_id`, the sync routes' `{tenantId}` and the
//! Prometheus API's `X-Tenant-ID`.
//!
//! The refused searches, settings, tenants and discovery queries are tables run by
//! `common::bad_input`.

mod common;

use std::process::{Child, Command, Stdio};

use common::bad_input::{self, json, row, Case, ANY_4XX, GET, NO_BODY, NO_HEADERS, POST, PUT};
use common::{client, free_port, shape, until, Node, Reply};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A VictoriaMetrics process on a loopback port, killed on drop.
struct Victoria {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Victoria {
    async fn start(port: u16) -> Victoria {
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new("victoria-metrics")
            .arg(format!("-storageDataPath={}", dir.path().display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics must be installed (apt-get install victoria-metrics; .ci/run does)");
        let url = format!("http://127.0.0.1:{port}");
        let health = format!("{url}/health");
        until("VictoriaMetrics up", || async {
            let r = client().get(&health).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        Victoria {
            child,
            url,
            _dir: dir,
        }
    }

    /// Imports one sample per series (JSON lines) and waits until all are listed.
    async fn import(&self, series: &[Value]) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let lines: String = series
            .iter()
            .map(|m| {
                json!({"metric": m, "values": [1.0], "timestamps": [now_ms]}).to_string() + "\n"
            })
            .collect();
        let r = client()
            .post(format!("{}/api/v1/import", self.url))
            .body(lines)
            .send()
            .await
            .expect("import");
        assert!(r.status().is_success(), "import: {}", r.status());
        self.wait_series(|n| n >= series.len()).await;
    }

    async fn series_count(&self) -> usize {
        let r = client()
            .get(format!("{}/api/v1/series", self.url))
            .query(&[("match[]", r#"{__name__=~".+"}"#)])
            .send()
            .await
            .expect("series");
        let v: Value = r.json().await.expect("json");
        v["data"].as_array().map_or(0, Vec::len)
    }

    async fn wait_series(&self, ok: impl Fn(usize) -> bool) {
        let _ = client()
            .get(format!("{}/internal/force_flush", self.url))
            .send()
            .await;
        until("VictoriaMetrics lists the series", || async {
            ok(self.series_count().await).then_some(())
        })
        .await;
    }

    async fn delete(&self, name: &str) {
        let r = client()
            .post(format!("{}/api/v1/admin/tsdb/delete_series", self.url))
            .query(&[("match[]", name)])
            .send()
            .await
            .expect("delete");
        assert!(r.status().is_success(), "delete: {}", r.status());
    }
}

impl Drop for Victoria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|d| d["name"].as_str().expect("name").to_string())
        .collect()
}

async fn search(n: &Node, tenant: Option<&str>, body: Value) -> Value {
    let path = "/api/v1/metrics/search?consistency=linearizable";
    let (st, v) = n.post(path, tenant, body).await;
    assert_eq!(st, StatusCode::OK, "search: {v}");
    v
}

fn sources(url: &str) -> String {
    format!("default={url},other={url}")
}

/// Settings of a node whose scheduler stays off: the tests sync by hand.
fn manual(src: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sync.enabled", "false".into()),
        ("sync.sources", src.to_string()),
        ("sync.retry_delay", "10ms".into()),
        ("sync.max_retries", "2".into()),
        ("sync.timeout", "2s".into()),
    ]
}

async fn node_with(settings: Vec<(&'static str, String)>) -> Node {
    let s: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Node::single(&s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_search_and_full_sync_removal_against_victoria_metrics() {
    let vm = Victoria::start(free_port()).await;
    vm.import(&[
        json!({"__name__": "gpu_memory_used_bytes", "gpu": "0", "host": "a"}),
        json!({"__name__": "gpu_memory_used_bytes", "gpu": "1", "host": "a"}),
        json!({"__name__": "http_requests_total", "code": "200", "job": "api"}),
        json!({"__name__": "node_cpu_seconds_total", "cpu": "0", "mode": "idle", "job": "node"}),
    ])
    .await;
    let n = node_with(manual(&sources(&vm.url))).await;
    let (st, v) = n.get("/api/v1/metrics/sync/default/status", None).await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("never_run"))
    );

    let (st, v) = n
        .post(
            "/api/v1/metrics/sync/default?forceFull=true",
            None,
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["message"], "Sync completed successfully");
    assert_eq!(
        (
            v["result"]["metrics_processed"].as_u64(),
            v["result"]["metrics_added"].as_u64()
        ),
        (Some(3), Some(3))
    );

    let gpu = search(&n, None, json!({"query": "gpu mem"})).await;
    assert_eq!(names(&gpu), ["gpu_memory_used_bytes"]);
    assert_eq!(gpu["results"][0]["labels"]["gpu"], json!(["0", "1"]));
    assert_eq!(gpu["results"][0]["label_keys"], json!(["gpu", "host"]));
    assert_eq!(gpu["results"][0]["tenant_id"], "default");
    assert!(gpu["took"].is_number());
    let fuzzy = search(&n, None, json!({"query": "reqests"})).await;
    assert_eq!(names(&fuzzy), ["http_requests_total"]);
    let by_label = search(&n, None, json!({"query": "", "labels": {"job": "node"}})).await;
    assert_eq!(names(&by_label), ["node_cpu_seconds_total"]);
    let counters = search(&n, None, json!({"types": ["counter"]})).await;
    assert_eq!(
        names(&counters),
        ["http_requests_total", "node_cpu_seconds_total"]
    );
    let page1 = search(&n, None, json!({"limit": 2, "offset": 0})).await;
    let page2 = search(&n, None, json!({"limit": 2, "offset": 2})).await;
    assert_eq!(
        (page1["total"].as_u64(), page2["total"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        [names(&page1), names(&page2)].concat(),
        [
            "gpu_memory_used_bytes",
            "http_requests_total",
            "node_cpu_seconds_total"
        ]
    );

    let (_, state) = n.get("/api/v1/metrics/sync/default/state", None).await;
    assert_eq!(
        (
            state["metrics_in_index"].as_u64(),
            state["successful_syncs"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert!(state["last_full_sync_time"].is_string());

    vm.delete("node_cpu_seconds_total").await;
    vm.wait_series(|c| c == 3).await;
    let (st, v) = n
        .post(
            "/api/v1/metrics/sync",
            None,
            json!({"tenant_id": "default", "force_full_sync": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["metrics_removed"].as_u64(), Some(1));
    assert!(names(&search(&n, None, json!({"query": "cpu"})).await).is_empty());
    let (_, status) = n.get("/api/v1/metrics/sync/default/status", None).await;
    assert_eq!(
        (
            status["status"].as_str(),
            status["metrics_removed"].as_u64()
        ),
        (Some("completed"), Some(1))
    );
    // The other tenant has not synced: it sees nothing.
    assert_eq!(
        search(&n, Some("other"), json!({"query": "gpu"})).await["total"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_is_down_fails_with_its_error_then_recovers() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let n = node_with(manual(&sources(&url))).await;
    let (st, v) = n
        .post("/api/v1/metrics/sync/default", None, json!({}))
        .await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{v}");
    let (_, status) = n.get("/api/v1/metrics/sync/default/status", None).await;
    assert_eq!(status["status"], "failed");
    let err = status["last_error"]
        .as_str()
        .expect("last_error")
        .to_string();
    assert!(err.contains("after 3 attempts"), "retried: {err}");
    let (_, state) = n.get("/api/v1/metrics/sync/default/state", None).await;
    assert_eq!(
        (state["failed_syncs"].as_u64(), state["last_error"].as_str()),
        (Some(1), Some(err.as_str()))
    );
    let (st, health) = n.get("/api/v1/metrics/health", None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["is_healthy"], false);

    let vm = Victoria::start(port).await;
    vm.import(&[json!({"__name__": "up", "job": "x"})]).await;
    let (st, v) = n
        .post("/api/v1/metrics/sync/default", None, json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, status) = n.get("/api/v1/metrics/sync/default/status", None).await;
    assert_eq!(status["status"], "completed");
    let (st, health) = n.get("/api/v1/metrics/health", None).await;
    assert_eq!(
        (st, health["total_metrics"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{health}"
    );
    let (st, _) = n.post("/api/v1/metrics/sync/nobody", None, json!({})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

fn point(metric: &str) -> Value {
    json!({"run_id": "4f6d2a3e-8c1b-4d5e-9f00-1a2b3c4d5e6f", "metric_name": metric, "step": 1, "value": 0.5})
}

async fn write_points(n: &Node, tenant: &str, metrics: &[&str]) {
    let items: Vec<Value> = metrics.iter().map(|m| point(m)).collect();
    let (st, v) = n
        .post(
            "/api/v1/metrics/batch",
            Some(tenant),
            json!({"metrics": items}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_names_are_indexed_per_tenant_and_survive_losing_the_index() {
    let mut n = Node::single(&[]).await;
    write_points(&n, "team-a", &["train_loss", "train_accuracy"]).await;
    write_points(&n, "team-b", &["val_loss"]).await;
    let a = search(&n, Some("team-a"), json!({"query": "loss"})).await;
    assert_eq!(names(&a), ["train_loss"]);
    assert_eq!(a["results"][0]["source"], "points");
    let b = search(
        &n,
        Some("team-a"),
        json!({"query": "loss", "tenant_id": "team-b"}),
    )
    .await;
    assert_eq!(names(&b), ["val_loss"], "the body's tenant_id wins");
    assert!(names(&search(&n, Some("team-b"), json!({"query": "train"})).await).is_empty());

    n.stop().await;
    let index = n.data_dir().join("index");
    std::fs::remove_dir_all(&index).expect("delete the index");
    n.start().await;
    assert!(index.exists(), "recreated");
    let again = search(&n, Some("team-a"), json!({"query": "accuracy"})).await;
    assert_eq!(names(&again), ["train_accuracy"]);
}

/// The Metric Service's refusal: `{"error": ...}` alone, naming the row's fragments.
fn refused(case: &Case, r: &Reply) -> Result<(), String> {
    shape::plain(r, case.status(r), &case.needles())
}

/// Prometheus's refusal of bad data.
fn bad_data(_: &Case, r: &Reply) -> Result<(), String> {
    shape::prometheus(&r.json(), "bad_data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_searches_and_sync_settings_are_refused_with_the_reason() {
    let n = Node::single(&[]).await;
    let search = |body, why| {
        row(
            POST,
            "/api/v1/metrics/search",
            NO_HEADERS,
            json(body),
            400,
            why,
        )
    };
    let config = |body, why| {
        row(
            PUT,
            "/api/v1/metrics/sync/config",
            NO_HEADERS,
            json(body),
            400,
            why,
        )
    };
    #[rustfmt::skip]
    let table = [
        search(json!({"limit": 1001}), "`limit`"),
        search(json!({"offset": -1}), "`offset`"),
        search(json!({"types": "counter"}), "`types`"),
        search(json!({"labels": {"job": 1}}), "`labels`"),
        search(json!({"query": 5}), "`query`"),
        search(json!([1]), "JSON object"),
        config(json!({"interval": 0}), "interval"),
        config(json!({"interval": "soon"}), "interval"),
        config(json!({"strategy": "sometimes"}), "strategy"),
        config(json!({"batch_size": 0}), "batch_size"),
        config(json!({"colour": "red"}), "colour"),
    ];
    bad_input::run_shaped(&n, &table, refused).await;
    let (st, v) = n.put("/api/v1/metrics/sync/config", json!({"interval": "15m", "retry_delay": "2000000000", "time_range_lookback": 3_600_000_000_000u64})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, cfg) = n.get("/api/v1/metrics/sync/config", None).await;
    assert_eq!(
        (
            cfg["interval"].as_u64(),
            cfg["retry_delay"].as_u64(),
            cfg["time_range_lookback"].as_u64()
        ),
        (
            Some(900_000_000_000),
            Some(2_000_000_000),
            Some(3_600_000_000_000)
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_discovery_over_own_points() {
    let n = Node::single(&[]).await;
    write_points(&n, "default", &["train_loss", "lr"]).await;
    write_points(&n, "other", &["secret_metric"]).await;
    let (st, v) = n.get("/api/v1/series?match[]=train_loss", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"],
        json!([{"__name__": "train_loss", "run_id": "4f6d2a3e-8c1b-4d5e-9f00-1a2b3c4d5e6f"}])
    );
    let (_, v) = n.get("/api/v1/label/__name__/values", None).await;
    assert_eq!(v["data"], json!(["lr", "train_loss"]));
    let (_, v) = n.get("/api/v1/labels", None).await;
    assert_eq!(v["data"], json!(["__name__", "run_id"]));
    let (_, v) = n.get("/api/v1/metadata?metric=lr", None).await;
    assert_eq!(
        v["data"],
        json!({"lr": [{"type": "gauge", "help": "", "unit": ""}]})
    );
    let (_, v) = n.get("/api/v1/metadata", None).await;
    assert_eq!(
        v["data"],
        json!({"lr": [{"type": "gauge", "help": "", "unit": ""}],
               "train_loss": [{"type": "gauge", "help": "", "unit": ""}]})
    );
    let (_, v) = n.get("/api/v1/metadata?limit=1", None).await;
    assert_eq!(v["data"].as_object().map(|o| o.len()), Some(1), "{v}");
    for absent in ["nope", "secret_metric"] {
        let (st, v) = n
            .get(&format!("/api/v1/metadata?metric={absent}"), None)
            .await;
        assert_eq!((st, &v["data"]), (StatusCode::OK, &json!({})), "{absent}");
    }
    grafana_posts_forms(&n).await;
    let series = |path, why| row(GET, path, NO_HEADERS, NO_BODY, 400, why);
    #[rustfmt::skip]
    let table = [
        series("/api/v1/series", "match[]"),
        series("/api/v1/series?match[]=%7Ba%3D~%22(%22%7D", "regex parse error"),
    ];
    bad_input::run_shaped(&n, &table, bad_data).await;
    let (_, v) = n
        .get(
            "/api/v1/series?match[]=%7B__name__%3D~%22.%2B%22%7D&start=0&end=1",
            None,
        )
        .await;
    assert_eq!(v["data"], json!([]), "no series in that time range");
}

/// The requests Grafana's Prometheus data source sends: POST with the parameters in a
/// form body (and sometimes some in the query string too).
async fn grafana_posts_forms(n: &Node) {
    let form = |path: &str, body: &str, ctype: &str| {
        n.request(Method::POST, path)
            .header("content-type", ctype)
            .body(body.to_string())
    };
    let ctype = "application/x-www-form-urlencoded";
    let r = n
        .send(form(
            "/api/v1/series",
            "match%5B%5D=train_loss&start=0&end=99999999999",
            ctype,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.lossy());
    assert_eq!(
        r.json()["data"][0]["__name__"],
        json!("train_loss"),
        "{}",
        r.lossy()
    );
    let r = n
        .send(form("/api/v1/labels?start=0", "match%5B%5D=lr", ctype))
        .await;
    assert_eq!(
        r.json()["data"],
        json!(["__name__", "run_id"]),
        "{}",
        r.lossy()
    );
    let r = n
        .send(form("/api/v1/labels", "match%5B%5D=nothing_like_it", ctype))
        .await;
    assert_eq!(
        r.json()["data"],
        json!([]),
        "the body's match[] is applied: {}",
        r.lossy()
    );
    let r = n.send(form("/api/v1/series", "", ctype)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.lossy());
    assert!(r.contains(b"match[]"), "{}", r.lossy());
    let r = n
        .send(form("/api/v1/series", "{\"match\":1}", "application/json"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.lossy());
    assert!(r.contains(b"x-www-form-urlencoded"), "{}", r.lossy());
}

/// An empty, NUL-bearing or 5,000-byte tenant is a 400 naming its source wherever it
/// comes from, and nothing is synced; a valid one (trimmed) goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tenants_are_refused_on_every_search_and_sync_source() {
    let n = Node::single(&[]).await;
    let long = "t".repeat(5000);
    let mut table = Vec::new();
    for bad in ["", " ", "a\u{0}b", long.as_str()] {
        for path in ["/api/v1/metrics/search", "/api/v1/metrics/sync"] {
            let body = json(json!({ "tenant_id": bad }));
            table.push(row(POST, path, NO_HEADERS, body, 400, "tenant_id"));
        }
    }
    for seg in ["%20", "a%00b", long.as_str()] {
        for (method, suffix) in [(POST, ""), (GET, "/state"), (GET, "/status")] {
            let path = format!("/api/v1/metrics/sync/{seg}{suffix}");
            table.push(row(method, path, NO_HEADERS, NO_BODY, 400, "tenant"));
        }
    }
    bad_input::run_shaped(&n, &table, refused).await;
    // An empty segment is no route of a tenant: a 4xx, never a 500.
    let empty = row(
        GET,
        "/api/v1/metrics/sync//state",
        NO_HEADERS,
        NO_BODY,
        ANY_4XX,
        "tenant",
    );
    bad_input::run(&n, &[empty]).await;
    let (_, health) = n.get("/api/v1/metrics/health", None).await;
    assert_eq!(health["sync_errors"], json!([]), "{health}");
    assert_eq!(health["tenants"], json!(0), "{health}");

    // Valid tenants: the path's, trimmed; a sync without a source is a 404, not a 400.
    for suffix in ["/state", "/status"] {
        let (st, v) = n
            .get(&format!("/api/v1/metrics/sync/%20team-a%20{suffix}"), None)
            .await;
        assert_eq!(
            (st, v["tenant_id"].as_str()),
            (StatusCode::OK, Some("team-a")),
            "{v}"
        );
    }
    let (st, v) = n
        .call(Method::POST, "/api/v1/metrics/sync/team-a", None, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = n
        .post(
            "/api/v1/metrics/sync",
            None,
            json!({ "tenant_id": "team-a" }),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    search(&n, None, json!({ "tenant_id": " team-a " })).await;

    // Prometheus discovery: the header, in Prometheus' envelope.
    let labels = |tenant| {
        row(
            GET,
            "/api/v1/labels",
            &[("X-Tenant-ID", tenant)],
            NO_BODY,
            400,
            "X-Tenant-ID",
        )
    };
    let table = [labels(""), labels(long.as_str())];
    bad_input::run_shaped(&n, &table, bad_data).await;
}
