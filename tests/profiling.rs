//! The `[PProf]` CPU profile endpoint of a live node: pprof protobuf and flamegraph
//! SVG, bad parameters, one profile at a time, and the Metadata Center TOML aliases.
//! The bad parameters are a table run by `common::bad_input`.

mod common;

use std::time::Duration;

use common::bad_input::{self, row, NO_BODY, NO_HEADERS};
use common::{free_port, Node};
use metacenter::Config;
use reqwest::Method;

/// A node serving CPU profiles on `pprof_port`.
async fn start(pprof_port: u16) -> Node {
    let pprof = format!("127.0.0.1:{pprof_port}");
    Node::single(&[("pprof.enable", "true"), ("pprof.listen", &pprof)]).await
}

/// Keeps one thread busy for `d`, so that a profile has samples.
fn spin(d: Duration) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < d {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        x
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_profiles_in_pprof_and_svg_formats() {
    let port = free_port();
    let mut n = start(port).await;
    let http = common::client();
    let url = |q: &str| format!("http://127.0.0.1:{port}/debug/pprof/profile?{q}");

    let busy = spin(Duration::from_millis(1500));
    // Two profiles at once: each holds its slot for a second, so whichever arrives
    // second is refused, and exactly one is served.
    let get = |u: String| {
        let http = http.clone();
        tokio::spawn(async move { http.get(u).send().await.unwrap() })
    };
    let (a, b) = (get(url("seconds=1")), get(url("seconds=1")));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "one profile at a time");
    let r = if a.status() == 200 { a } else { b };
    let body = r.bytes().await.unwrap();
    // A pprof Profile message starts with field 1 (sample_type, length-delimited): tag 0x0a.
    assert!(
        body.len() > 16 && body[0] == 0x0a,
        "not a pprof protobuf ({} bytes)",
        body.len()
    );
    busy.join().unwrap();

    let busy = spin(Duration::from_millis(1500));
    let r = http.get(url("seconds=1&format=svg")).send().await.unwrap();
    busy.join().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let text = r.text().await.unwrap();
    assert!(text.contains("<svg"), "{}", &text[..text.len().min(300)]);

    let pprof = format!("http://127.0.0.1:{port}");
    let bad = |query: &str| {
        let path = format!("/debug/pprof/profile?{query}");
        row(
            Method::GET,
            path,
            NO_HEADERS,
            NO_BODY,
            400,
            "seconds must be 1 to 120",
        )
    };
    let table = [bad("seconds=0"), bad("seconds=121"), bad("seconds=x")];
    bad_input::run(&pprof, &table).await;
    n.stop().await;
}

#[test]
fn metadata_center_pprof_section_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "[PProf]\nEnable = true\nPort = 7070\n").unwrap();
    let mut c = Config::default();
    c.apply_file(&f).unwrap();
    assert!(c.pprof_enable);
    assert_eq!(c.pprof_listen, "127.0.0.1:7070");
}
