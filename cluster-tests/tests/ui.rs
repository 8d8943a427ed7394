//! The web console (`/ui/`) in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, through `fantoccini`) against a live three-node process cluster.
//!
//! - every page renders its data (cluster members, services, load bars, runs, a run's
//!   charts, the metric catalog), and a screenshot of each is written to
//!   `target/ui-screenshots/` so a failing run can be looked at;
//! - a point written through the API appears in the open chart within two seconds;
//!   dragging across a chart reads the range again at full resolution; another run
//!   overlays, with time on the x axis and a log scale;
//! - a service whose heartbeats stop turns stale on the page;
//! - a killed member shows as down within two seconds, and once the node the browser
//!   talks to has no quorum, the page says there is no leader;
//! - with `auth.tokens` set the console asks for a token and a wrong one gets a clear
//!   message.
//!
//! Needs `target/debug/metacenter` (`cargo build --bin metacenter`) and Debian's
//! `chromium` and `chromium-driver` (`.ci/run` installs them). Where no Chromium can be
//! found the tests print a loud SKIPPED line and return; they never pass silently
//! otherwise.

mod ui_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_tests::process::ProcessCluster;
use fantoccini::{Client, Locator};
use serde_json::json;
use ui_support::{
    browser_or_skip, count_at_least, goto, js_until, send, shot, write_points, Driver, OneNode,
    PAGE_TIMEOUT,
};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const RUN: &str = "6c1d2a3e-8c1b-4d5e-9f00-1a2b3c4d5e6f";
const RUN2: &str = "7d2e3b4f-9d2c-4e6f-8a11-2b3c4d5e6f70";

/// A run of two metrics, a service and two engines' load.
async fn seed(http: &reqwest::Client, api: &str) {
    let points = (0..2000)
        .flat_map(|s| {
            let loss = 2.0 * (-(s as f64) / 500.0).exp() + 0.1;
            [
                json!({ "run_id": RUN, "metric_name": "loss", "step": s, "value": loss }),
                json!({ "run_id": RUN, "metric_name": "accuracy", "step": s, "value": 1.0 - loss / 3.0 }),
            ]
        })
        .collect::<Vec<_>>();
    for chunk in points.chunks(1000) {
        write_points(http, api, chunk.to_vec()).await;
    }
    let other = (0..500)
        .map(|s| json!({ "run_id": RUN2, "metric_name": "loss", "step": s, "value": 3.0 / (1.0 + s as f64) }))
        .collect();
    write_points(http, api, other).await;
    for (req, ip, prompt) in [("r1", "10.0.0.7", 812), ("r2", "10.0.0.8", 300)] {
        let body =
            json!({ "cluster": "llama", "request_id": req, "prompt_length": prompt, "ip": ip });
        send(
            http,
            reqwest::Method::POST,
            format!("http://{api}/v1/load/stats"),
            body,
        )
        .await;
    }
}

async fn register(http: &reqwest::Client, api: &str) {
    let body = json!({ "name": "trainer", "version": "1.0", "api": "http://10.0.0.9:7000",
        "status": "active", "pid": 7, "hostname": "gpu-1", "capabilities": ["train"] });
    send(
        http,
        reqwest::Method::PUT,
        format!("http://{api}/services/trainer"),
        body,
    )
    .await
}

async fn pages_render(c: &Client, api: &str) {
    goto(c, api, "cluster").await;
    js_until(
        c,
        "three members up",
        PAGE_TIMEOUT,
        &count_at_least("tr[data-member][data-up=true]", 3),
    )
    .await;
    shot(c, "cluster").await;
    goto(c, api, "load").await;
    js_until(
        c,
        "two engines of llama",
        PAGE_TIMEOUT,
        &count_at_least("[data-cluster=llama] tr[data-engine][data-queued='1']", 2),
    )
    .await;
    shot(c, "load").await;
    goto(c, api, "runs").await;
    js_until(
        c,
        "the run listed",
        PAGE_TIMEOUT,
        &count_at_least(&format!("tr[data-run='{RUN}']"), 1),
    )
    .await;
    shot(c, "runs").await;
    goto(c, api, "search").await;
    js_until(
        c,
        "loss in the catalog",
        PAGE_TIMEOUT,
        &count_at_least("tr[data-metric=loss]", 1),
    )
    .await;
    shot(c, "search").await;
}

/// The run's page draws both metrics, then a point written through another node's API
/// reaches the open chart within two seconds.
async fn live_point_reaches_the_chart(
    c: &Client,
    api: &str,
    other_api: &str,
    http: &reqwest::Client,
) {
    goto(c, api, &format!("runs/{RUN}")).await;
    let drawn = "const cards = [...document.querySelectorAll('[data-metric]')];
        const page = document.getElementById('page');
        return cards.length === 2 && cards.every((c) => Number(c.dataset.points) > 100)
            && Number(page.dataset.streams) >= 1";
    js_until(
        c,
        "both charts drawn and the stream open",
        PAGE_TIMEOUT,
        drawn,
    )
    .await;
    shot(c, "run").await;
    let written = Instant::now();
    let point = json!({ "run_id": RUN, "metric_name": "loss", "step": 5000, "value": 4242.5 });
    write_points(http, other_api, vec![point]).await;
    let shown =
        "return document.querySelector('[data-metric=loss]').dataset.lastValue === '4242.5'";
    js_until(
        c,
        "the new point in the chart",
        Duration::from_secs(2),
        shown,
    )
    .await;
    eprintln!(
        "a written point reached the chart in {:?}",
        written.elapsed()
    );
    shot(c, "run-live").await;
}

/// Dragging across the loss chart from step 100 to 160 reads that range again at full
/// resolution (every step, where the whole run was bucketed); a double-click returns.
async fn zoom_reads_full_resolution(c: &Client) {
    let coarse = "const d = Chart.getChart(document.querySelector('[data-metric=loss] canvas'))
            .data.datasets[0].data;
        return d.some((p, i) => i > 0 && p.x - d[i - 1].x > 1)";
    js_until(c, "a bucketed loss chart", PAGE_TIMEOUT, coarse).await;
    let drag = "const canvas = document.querySelector('[data-metric=loss] canvas');
        const x = Chart.getChart(canvas).scales.x;
        const r = canvas.getBoundingClientRect();
        const ev = (type, v) => canvas.dispatchEvent(new MouseEvent(type,
            { clientX: r.left + x.getPixelForValue(v), clientY: r.top + 50, bubbles: true }));
        ev('mousedown', 100); ev('mousemove', 160); ev('mouseup', 160);
        return true";
    c.execute(drag, vec![])
        .await
        .expect("dragging across the chart");
    let whole = "const card = document.querySelector('[data-metric=loss]');
        const d = Chart.getChart(card.querySelector('canvas')).data.datasets[0].data;
        return card.dataset.zoomed === '1' && d.length >= 50
            && d.every((p, i) => i === 0 || p.x - d[i - 1].x === 1)";
    js_until(c, "every step of the zoomed range", PAGE_TIMEOUT, whole).await;
    shot(c, "run-zoomed").await;
    let dbl = "document.querySelector('[data-metric=loss] canvas')
        .dispatchEvent(new MouseEvent('dblclick', { bubbles: true })); return true";
    c.execute(dbl, vec![])
        .await
        .expect("double-clicking the chart");
    let back = "return document.querySelector('[data-metric=loss]').dataset.zoomed === ''";
    js_until(c, "the zoom undone", PAGE_TIMEOUT, back).await;
}

/// A second run overlaid on the first, time on the x axis, a log scale.
async fn runs_overlay(c: &Client, api: &str) {
    goto(c, api, &format!("runs/{RUN}?with={RUN2}&x=time&log=1")).await;
    let overlaid = "const canvas = document.querySelector('[data-metric=loss] canvas');
        const chart = canvas && Chart.getChart(canvas);
        return !!chart && chart.options.scales.y.type === 'logarithmic' && chart.data.datasets.length === 2
            && chart.data.datasets.every((d) => d.data.length > 0)";
    js_until(
        c,
        "two runs overlaid on a log scale",
        PAGE_TIMEOUT,
        overlaid,
    )
    .await;
    shot(c, "run-overlay").await;
}

/// A service that heartbeats reads active; once its heartbeats stop it turns stale.
async fn stale_service_turns_stale(c: &Client, api: &str, http: &reqwest::Client) {
    register(http, api).await;
    let beat_url = format!("http://{api}/services/trainer/heartbeat");
    let (beat_http, stop) = (http.clone(), Arc::new(AtomicBool::new(false)));
    let beating = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let _ = beat_http.post(&beat_url).send().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    goto(c, api, "services").await;
    js_until(
        c,
        "trainer active",
        PAGE_TIMEOUT,
        &count_at_least("tr[data-service=trainer][data-status=active]", 1),
    )
    .await;
    shot(c, "services").await;
    stop.store(true, Ordering::SeqCst);
    beating.await.expect("heartbeat task");
    js_until(
        c,
        "trainer stale",
        PAGE_TIMEOUT,
        &count_at_least("tr[data-service=trainer][data-status=stale]", 1),
    )
    .await;
    shot(c, "services-stale").await;
}

/// Kills `down` (not the browser's node): it reads down within two seconds. Then kills
/// `leader` too: the browser's node has no quorum and the page says there is no leader.
async fn members_go_down(
    c: &Client,
    cluster: &mut ProcessCluster,
    api: &str,
    down: u64,
    leader: u64,
) {
    goto(c, api, "cluster").await;
    js_until(
        c,
        "three members up",
        PAGE_TIMEOUT,
        &count_at_least("tr[data-member][data-up=true]", 3),
    )
    .await;
    cluster.kill9(down).expect("kill -9");
    let killed = Instant::now();
    let gone = format!("tr[data-member='{down}'][data-up=false]");
    js_until(
        c,
        "the killed member down",
        Duration::from_secs(2),
        &count_at_least(&gone, 1),
    )
    .await;
    eprintln!("a killed member read down after {:?}", killed.elapsed());
    shot(c, "cluster-member-down").await;
    cluster.kill9(leader).expect("kill -9");
    let banner = "const b = document.getElementById('leader-banner');
        return !b.hidden && b.textContent.includes('No leader')";
    js_until(c, "the no-leader banner", Duration::from_secs(30), banner).await;
    shot(c, "cluster-no-leader").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_live_cluster_in_a_real_browser() {
    let Some(driver_exe) = browser_or_skip("the_console_shows_a_live_cluster_in_a_real_browser")
    else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let settings = [("services.stale_threshold_ms", "3000")];
    let mut cluster = ProcessCluster::start_with(3, &settings)
        .await
        .expect("cluster");
    let leader = cluster.leader(PAGE_TIMEOUT).await.expect("a leader");
    // The browser talks to a follower, so that killing the others leaves it leaderless.
    let ids = cluster.ids();
    let others: Vec<u64> = ids.iter().copied().filter(|i| *i != leader).collect();
    let (mine, down) = (others[0], others[1]);
    let (api, leader_api) = (
        cluster.api(mine).expect("api"),
        cluster.api(leader).expect("api"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http");
    seed(&http, &leader_api).await;

    let driver = Driver::start(&driver_exe).await;
    let c = driver.browser().await;
    pages_render(&c, &api).await;
    live_point_reaches_the_chart(&c, &api, &leader_api, &http).await;
    zoom_reads_full_resolution(&c).await;
    runs_overlay(&c, &api).await;
    stale_service_turns_stale(&c, &api, &http).await;
    members_go_down(&c, &mut cluster, &api, down, leader).await;
    c.close().await.expect("closing the session");
    assert!(cluster.exited().is_empty(), "a node exited on its own");
}

async fn enter_token(c: &Client, token: &str) {
    let input = c
        .find(Locator::Css("#token-input"))
        .await
        .expect("the token field");
    input.send_keys(token).await.expect("typing the token");
    let submit = c
        .find(Locator::Css("#token-form button[type=submit]"))
        .await
        .expect("submit");
    submit.click().await.expect("submitting the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_asks_for_a_token_and_refuses_a_wrong_one() {
    let Some(driver_exe) = browser_or_skip("the_console_asks_for_a_token_and_refuses_a_wrong_one")
    else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let node = OneNode::start(Some("reader-token:read")).await;
    let driver = Driver::start(&driver_exe).await;
    let c = driver.browser().await;
    goto(&c, &node.api, "cluster").await;
    let asks = "const f = document.getElementById('token-form');
        return !f.hidden && document.getElementById('token-message').textContent.includes('requires a token')";
    js_until(&c, "the token prompt", PAGE_TIMEOUT, asks).await;
    shot(&c, "token-prompt").await;

    enter_token(&c, "not-the-token").await;
    let refused = "const f = document.getElementById('token-form');
        return !f.hidden && document.getElementById('token-message').textContent.includes('token was not accepted')";
    js_until(&c, "the wrong-token message", PAGE_TIMEOUT, refused).await;
    shot(&c, "token-wrong").await;

    enter_token(&c, "reader-token").await;
    let accepted = "return document.getElementById('token-form').hidden
        && document.querySelectorAll('tr[data-member][data-up=true]').length === 1";
    js_until(
        &c,
        "the cluster page with the right token",
        PAGE_TIMEOUT,
        accepted,
    )
    .await;
    shot(&c, "token-accepted").await;
    c.close().await.expect("closing the session");
}
