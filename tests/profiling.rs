//! The `[PProf]` CPU profile endpoint of a live node: pprof protobuf and flamegraph
//! SVG, bad parameters, one profile at a time, and the Metadata Center TOML aliases.

use std::time::Duration;

use metacenter::{Config, Server};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(pprof_port: u16) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    for (k, v) in [
        ("node.data_dir", dir.path().to_str().unwrap().to_string()),
        ("node.listen", "127.0.0.1:0".into()),
        ("node.peer_listen", "127.0.0.1:0".into()),
        ("cluster.secret", "test-cluster-secret".into()),
        ("node.bootstrap", "true".into()),
        ("pprof.enable", "true".into()),
        ("pprof.listen", format!("127.0.0.1:{pprof_port}")),
    ] {
        c.set(k, &v).unwrap();
    }
    (dir, Server::start(c).await.unwrap())
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
    let (_dir, server) = start(port).await;
    let http = reqwest::Client::new();
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

    for bad in ["seconds=0", "seconds=121", "seconds=x"] {
        assert_eq!(
            http.get(url(bad)).send().await.unwrap().status(),
            400,
            "{bad}"
        );
    }
    server.shutdown().await;
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
