//! The console's benchmark (issue 34), ignored by default: a run of 10 metrics with
//! `UI_BENCH_POINTS` points each (default 1,000,000) on one node, its page opened in
//! headless Chromium. It prints how long the page took until every chart was drawn and
//! the bytes of API answers it read (measured in the browser), the time to zoom one
//! chart to 1 % of its steps, and the compressed bytes of the page's assets.
//!
//! ```sh
//! cargo build --release --bin metacenter
//! METACENTER_BIN=target/release/metacenter \
//!   cargo test -p cluster-tests --test ui_bench -- --ignored --nocapture
//! ```

mod ui_support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use ui_support::{browser_or_skip, goto, js_until, write_points, Driver, OneNode};

const RUN: &str = "5e1d2a3e-8c1b-4d5e-9f00-1a2b3c4d5e6f";
const METRICS: usize = 10;
const BATCH: usize = 1000;

/// One batch of metric `m`: steps `from..from + BATCH`, one millisecond apart, a
/// spike every 100,000 steps.
fn batch(m: usize, from: usize) -> Vec<Value> {
    (from..from + BATCH)
        .map(|s| {
            let v = (s as f64 / 5000.0).sin() + if s % 100_000 == 77 { 50.0 } else { 0.0 };
            let t = chrono::DateTime::from_timestamp_millis(1_790_000_000_000 + s as i64)
                .expect("in range")
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            json!({ "run_id": RUN, "metric_name": format!("m{m}"), "step": s, "value": v, "time": t })
        })
        .collect()
}

async fn ingest(http: &reqwest::Client, api: &str, points: usize) {
    let jobs = (0..METRICS).flat_map(|m| (0..points).step_by(BATCH).map(move |s| (m, s)));
    let started = Instant::now();
    futures::stream::iter(jobs)
        .for_each_concurrent(4, |(m, s)| write_points(http, api, batch(m, s)))
        .await;
    let n = METRICS * points;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "ingested {n} points in {secs:.1} s ({:.0} points/s)",
        n as f64 / secs
    );
}

/// Bytes the page read, by the Resource Timing entries whose URL holds `part`.
const BYTES: &str = "return performance.getEntriesByType('resource')
    .filter((e) => e.name.includes(arguments[0]))
    .reduce((n, e) => n + e.transferSize, 0)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand, see the module documentation"]
async fn console_benchmark() {
    let Some(driver_exe) = browser_or_skip("console_benchmark") else {
        return;
    };
    let points: usize = std::env::var("UI_BENCH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let node = OneNode::start(None).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http");
    ingest(&http, &node.api, points).await;

    let driver = Driver::start(&driver_exe).await;
    let c = driver.browser().await;
    goto(&c, &node.api, &format!("runs/{RUN}")).await;
    let long = Duration::from_secs(300);
    let drawn = "const cards = document.querySelectorAll('[data-metric][data-load-ms]');
        return cards.length === 10 && Number(document.getElementById('page').dataset.drawnMs)";
    let drawn_ms = js_until(&c, "every chart drawn", long, drawn).await;
    let api_bytes = c.execute(BYTES, vec![json!("/api/")]).await.expect("bytes");
    let asset_bytes = c.execute(BYTES, vec![json!("/ui/")]).await.expect("bytes");

    let lo = points / 2;
    let hi = lo + points / 100;
    let zoom = format!(
        "const canvas = document.querySelector('[data-metric=m0] canvas');
        delete canvas.closest('[data-metric]').dataset.loadMs;
        const x = Chart.getChart(canvas).scales.x;
        const r = canvas.getBoundingClientRect();
        const ev = (type, v) => canvas.dispatchEvent(new MouseEvent(type,
            {{ clientX: r.left + x.getPixelForValue(v), clientY: r.top + 50, bubbles: true }}));
        ev('mousedown', {lo}); ev('mousemove', {hi}); ev('mouseup', {hi});
        return true"
    );
    c.execute(&zoom, vec![]).await.expect("zooming");
    let zoomed = "const card = document.querySelector('[data-metric=m0]');
        return card.dataset.zoomed === '1' && card.dataset.loadMs && Number(card.dataset.loadMs)";
    let zoom_ms = js_until(&c, "the zoomed chart drawn", long, zoomed).await;
    let zoom_points = c
        .execute(
            "return Number(document.querySelector('[data-metric=m0]').dataset.points)",
            vec![],
        )
        .await
        .expect("points");
    println!(
        "console benchmark: {METRICS} metrics x {points} points: every chart drawn in {drawn_ms} ms, \
         {api_bytes} bytes of API answers; zoom to 1 % ({} steps): {zoom_ms} ms, \
         {zoom_points} points drawn; page assets {asset_bytes} bytes transferred",
        hi - lo
    );
    c.close().await.expect("closing the session");
}
