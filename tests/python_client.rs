//! Runs `tests/python/test_metacore_client.py`, a meta-core client written with Python's
//! `requests` the way meta-core's README uses the API, against an in-process node and
//! requires it to exit 0.
//!
//! The script needs `python3` with `requests`. Their absence is a failure with a clear
//! message (`pip install requests`), never a silent skip: CI installs them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use metacenter::{Config, Server};

/// Deadline for the node to become ready and for the script to finish.
const DEADLINE: Duration = Duration::from_secs(120);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_metacore_client.py")
}

/// Fails the test unless `python3` can import `requests`.
async fn require_requests() {
    let out = tokio::process::Command::new("python3")
        .args(["-c", "import requests"])
        .kill_on_drop(true)
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 cannot import `requests` ({}): run `pip install requests` \
             (CI installs it); this test does not skip\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "cannot run python3 ({e}): install Python 3 and `pip install requests` \
             (CI installs them); this test does not skip"
        ),
    }
}

async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match http.get(format!("{base}/ready")).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => return,
            Ok(r) => r.status().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(Instant::now() < deadline, "node not ready: {last}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metacore_python_client_example() {
    require_requests().await;
    assert!(script().is_file(), "missing {}", script().display());

    let data = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config::default();
    for (k, v) in [
        ("node.data_dir", data.path().to_str().expect("UTF-8 path")),
        ("node.listen", "127.0.0.1:0"),
        ("node.peer_listen", "127.0.0.1:0"),
        ("cluster.secret", "test-cluster-secret"),
        ("node.bootstrap", "true"),
        ("files.root", data.path().to_str().expect("UTF-8 path")),
    ] {
        cfg.set(k, v).expect("valid setting");
    }
    let server = Server::start(cfg).await.expect("node starts");
    let base = format!("http://{}", server.api_addr());
    wait_ready(&base).await;

    // Async child: the node keeps serving on this runtime while the script runs.
    let child = tokio::process::Command::new("python3")
        .arg(script())
        .arg(&base)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, child)
        .await
        .expect("the Python client finished before the deadline")
        .expect("python3 runs");
    server.shutdown().await;
    assert!(
        out.status.success(),
        "the Python client failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK: meta-core client example passed"),
        "the script did not report success: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
