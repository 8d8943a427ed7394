//! HTTP tests of what the web console reads from the points area, on in-process
//! nodes: `GET /api/v1/runs` (a tenant's runs newest first, their metrics with point
//! counts and times, cursor pages, `run_id=` for named runs, tenants kept apart, bad
//! parameters refused in the Metric Service's envelope) and `?buckets=N` on a metric's
//! history (the whole range cut into time buckets, each keeping its lowest and highest
//! point, the range cut before it is sampled). Also the console's page and assets
//! (`/ui/`), which are open when tokens are configured, and its member probe.

mod common;

use common::bad_input::{self, row, Case, GET, NO_BODY};
use common::{shape, Node, Reply};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const RUN_A: &str = "11111111-1111-4111-8111-111111111111";
const RUN_B: &str = "22222222-2222-4222-8222-222222222222";
const RUN_C: &str = "33333333-3333-4333-8333-333333333333";

/// Unix seconds -> RFC3339.
fn ts(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .expect("in range")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn point(run: &str, metric: &str, step: i64, value: f64, secs: i64) -> Value {
    json!({ "run_id": run, "metric_name": metric, "step": step, "value": value, "time": ts(secs) })
}

async fn write(n: &Node, tenant: Option<&str>, items: Vec<Value>) {
    for chunk in items.chunks(1000) {
        let (st, body) = n
            .post("/api/v1/metrics/batch", tenant, json!({ "metrics": chunk }))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
}

async fn ok(n: &Node, path: &str, tenant: Option<&str>) -> Value {
    let (st, body) = n.get(path, tenant).await;
    assert_eq!(st, StatusCode::OK, "GET {path}: {body}");
    body
}

fn run_ids(page: &Value) -> Vec<&str> {
    page["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["run_id"].as_str().expect("run_id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_first_with_their_metrics_and_paged() {
    let mut n = Node::single(&[]).await;
    // A's newest point is at 1000 s, B's at 3000 s, C's at 2000 s.
    write(
        &n,
        None,
        vec![
            point(RUN_A, "loss", 1, 0.9, 900),
            point(RUN_A, "loss", 2, 0.5, 1000),
            point(RUN_A, "acc", 2, 0.1, 950),
            point(RUN_B, "loss", 1, 0.7, 3000),
            point(RUN_C, "loss", 1, 0.8, 2000),
        ],
    )
    .await;
    write(
        &n,
        Some("other"),
        vec![point(RUN_A, "secret", 1, 1.0, 5000)],
    )
    .await;

    let all = ok(&n, "/api/v1/runs", None).await;
    assert_eq!(run_ids(&all), [RUN_B, RUN_C, RUN_A]);
    assert_eq!(all["count"], 3);
    assert!(all.get("next").is_none(), "{all}");
    let a = &all["runs"][2];
    assert_eq!(a["point_count"], 3);
    assert_eq!(a["last_time"], ts(1000));
    assert_eq!(
        a["metrics"],
        json!([
            { "metric_name": "acc", "count": 1, "first_time": ts(950), "last_time": ts(950) },
            { "metric_name": "loss", "count": 2, "first_time": ts(900), "last_time": ts(1000) },
        ])
    );

    let first = ok(&n, "/api/v1/runs?limit=2", None).await;
    assert_eq!(run_ids(&first), [RUN_B, RUN_C]);
    let next = first["next"].as_str().expect("a next cursor");
    let second = ok(&n, &format!("/api/v1/runs?limit=2&cursor={next}"), None).await;
    assert_eq!(run_ids(&second), [RUN_A]);
    assert!(second.get("next").is_none());

    let named = ok(&n, &format!("/api/v1/runs?run_id={RUN_A},{RUN_C}"), None).await;
    assert_eq!(run_ids(&named), [RUN_C, RUN_A]);

    let other = ok(&n, "/api/v1/runs", Some("other")).await;
    assert_eq!(run_ids(&other), [RUN_A]);
    assert_eq!(other["runs"][0]["metrics"][0]["metric_name"], "secret");
    assert_eq!(
        ok(&n, "/api/v1/runs", Some("empty")).await["runs"],
        json!([])
    );
    n.stop().await;
}

fn refused(case: &Case, r: &Reply) -> Result<(), String> {
    shape::plain(r, case.status(r), &case.needles())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_run_listings_and_bucket_reads_are_400_naming_the_parameter() {
    let mut n = Node::single(&[]).await;
    let h = [("X-Tenant-ID", "")];
    let get = |path: &str, needle: &str| row(GET, path, &[], NO_BODY, 400, needle);
    let series = format!("/api/v1/runs/{RUN_A}/metrics/loss");
    let table = [
        get("/api/v1/runs?limit=many", "limit"),
        get("/api/v1/runs?limit=-1", "limit"),
        get("/api/v1/runs?cursor=zz", "cursor"),
        get("/api/v1/runs?run_id=nope", "run_id"),
        get("/api/v1/runs?run_id=", "run_id"),
        row(GET, "/api/v1/runs", &h, NO_BODY, 400, "X-Tenant-ID"),
        get(&format!("{series}?buckets=0"), "buckets"),
        get(&format!("{series}?buckets=5001"), "buckets"),
        get(&format!("{series}?buckets=x"), "buckets"),
        get(
            &format!("{series}?buckets=10&start_time=noon"),
            "start_time",
        ),
        get(&format!("{series}?buckets=10&bucket_by=epoch"), "bucket_by"),
        get(
            &format!("/api/v1/runs/{RUN_A}/metrics?buckets=10"),
            "metric_name",
        ),
    ];
    bad_input::run_shaped(&n, &table, refused).await;
    n.stop().await;
}

/// The values of a history answer, oldest first, as (seconds, value).
fn series(body: &Value) -> Vec<(i64, f64)> {
    let mut out: Vec<(i64, f64)> = body["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|p| {
            let t = chrono::DateTime::parse_from_rfc3339(p["time"].as_str().expect("time"));
            (
                t.expect("RFC3339").timestamp(),
                p["value"].as_f64().expect("value"),
            )
        })
        .collect();
    out.reverse();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_keep_spikes_and_a_narrow_range_comes_back_whole() {
    let mut n = Node::single(&[]).await;
    let mut items: Vec<Value> = (0..20_000)
        .map(|i| point(RUN_A, "loss", i, (i % 10) as f64, 1_000_000 + i))
        .collect();
    items[13_579]["value"] = json!(1e6);
    items[2_468]["value"] = json!(-1e6);
    write(&n, None, items).await;
    let path = format!("/api/v1/runs/{RUN_A}/metrics/loss");

    let body = ok(&n, &format!("{path}?buckets=100&limit=3"), None).await;
    let got = series(&body);
    assert!(got.len() <= 200 && got.len() >= 100, "{} points", got.len());
    assert_eq!(body["count"], got.len());
    assert!(body.get("next").is_none());
    assert!(got.contains(&(1_013_579, 1e6)) && got.contains(&(1_002_468, -1e6)));
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "newest first");

    // 40 s of the range: every point, though the whole series is 20,000.
    let (from, to) = (ts(1_010_000), ts(1_010_039));
    let narrow = ok(
        &n,
        &format!("{path}?buckets=100&start_time={from}&end_time={to}"),
        None,
    )
    .await;
    let secs: Vec<i64> = series(&narrow).iter().map(|p| p.0).collect();
    assert_eq!(secs, (1_010_000..1_010_040).collect::<Vec<_>>());

    // Steps filter before sampling too; an unknown metric is an empty answer.
    let steps = ok(
        &n,
        &format!("{path}?buckets=100&min_step=5&max_step=9"),
        None,
    )
    .await;
    assert_eq!(series(&steps).len(), 5);
    let none = ok(
        &n,
        &format!("/api/v1/runs/{RUN_A}/metrics/nope?buckets=10"),
        None,
    )
    .await;
    assert_eq!(none["count"], 0);
    n.stop().await;
}

/// Browsers accept gzip: a bucketed read is then compressed, the same JSON inside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_reads_are_gzipped_for_clients_that_accept_it() {
    use std::io::Read;
    let mut n = Node::single(&[]).await;
    let items = (0..3000)
        .map(|i| point(RUN_C, "loss", i, (i % 17) as f64, 2_000_000 + i))
        .collect();
    write(&n, None, items).await;
    let path = format!("/api/v1/runs/{RUN_C}/metrics/loss?buckets=500");
    let plain = n.fetch(&path).await;
    assert_eq!(plain.header("content-encoding"), None);
    let req = n
        .request(Method::GET, &path)
        .header("Accept-Encoding", "gzip, br");
    let gz = n.send(req).await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(
        gz.body.len() * 4 < plain.body.len(),
        "{} vs {}",
        gz.body.len(),
        plain.body.len()
    );
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(gz.body.as_slice())
        .read_to_end(&mut text)
        .expect("gunzip");
    assert_eq!(text, plain.body);
    n.stop().await;
}

/// Points written without a time share the receiving node's clock per batch: buckets
/// of time would keep two of each batch, buckets of steps keep the curve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_buckets_spread_a_batch_that_shares_one_time() {
    let mut n = Node::single(&[]).await;
    let items: Vec<Value> = (0..1000)
        .map(|s| json!({ "run_id": RUN_B, "metric_name": "acc", "step": s, "value": s as f64 }))
        .collect();
    write(&n, None, items).await;
    let path = format!("/api/v1/runs/{RUN_B}/metrics/acc?buckets=100");
    assert_eq!(
        ok(&n, &path, None).await["count"],
        2,
        "one time, one bucket"
    );
    let by_step = ok(&n, &format!("{path}&bucket_by=step"), None).await;
    let steps: Vec<i64> = by_step["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|p| p["step"].as_i64().expect("step"))
        .collect();
    assert!(steps.len() >= 100 && steps.len() <= 200, "{}", steps.len());
    assert!(
        steps.contains(&0) && steps.contains(&999),
        "the ends survive"
    );
    let zoom = ok(
        &n,
        &format!("{path}&bucket_by=step&min_step=300&max_step=349"),
        None,
    )
    .await;
    assert_eq!(zoom["count"], 50, "a narrow step range comes back whole");
    n.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_open_but_what_it_reads_needs_a_token() {
    let mut n = Node::single(&[("auth.tokens", "tok:read")]).await;
    let page = n.fetch("/ui/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .text()
        .contains("<script type=\"module\" src=\"/ui/assets/app.js\">"));
    assert_eq!(n.fetch("/ui").await.text(), page.text());
    let chart = n
        .send(
            n.request(Method::GET, "/ui/assets/chart.min.js")
                .header("Accept-Encoding", "gzip"),
        )
        .await;
    assert_eq!(chart.status, StatusCode::OK);
    assert_eq!(chart.header("content-encoding"), Some("gzip"));
    let licence = n.fetch("/ui/assets/chart.js.LICENSE").await;
    assert!(licence.text().contains("Permission is hereby granted"));
    let missing = n.fetch("/ui/assets/nope.js").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    shape::core(&missing, StatusCode::NOT_FOUND, "nope.js").expect("meta-core envelope");

    let bare = n.fetch("/ui/api/cluster").await;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    let probed = n
        .send(n.request(Method::GET, "/ui/api/cluster").bearer_auth("tok"))
        .await;
    assert_eq!(probed.status, StatusCode::OK);
    let view = probed.json();
    let member = &view["members"][0];
    assert_eq!(
        (member["up"].as_bool(), member["ready"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        member["status"]["nodeId"], view["node"],
        "the token reached the probe: {view}"
    );
    n.stop().await;
}
