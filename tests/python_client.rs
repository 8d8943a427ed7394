//! Runs `tests/python/test_metacore_client.py`, a meta-core client written with Python's
//! `requests` the way meta-core's README uses the API, against an in-process node and
//! requires it to exit 0.
//!
//! The script needs `python3` with `requests`. Their absence is a failure with a clear
//! message (`pip install requests`), never a silent skip: CI installs them.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Node, DATA_DIR};

/// Deadline for the script to finish.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metacore_python_client_example() {
    require_requests().await;
    assert!(script().is_file(), "missing {}", script().display());

    let mut node = Node::single(&[("files.root", DATA_DIR)]).await;
    let base = node.base.clone();

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
    node.stop().await;
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
