//! A broken data directory gives a clear error and never a wrong answer: a data dir
//! that cannot hold a database fails start-up with its path in the message, a
//! corrupted database either fails start-up or answers every acknowledged write
//! exactly, and a full disk turns writes into 503 while acknowledged data stays.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use common::{Node, Process};
use metacenter::Server;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_data_dir_that_is_a_file_fails_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Server::start(common::base_config(&file))
        .await
        .err()
        .expect("start must fail");
    let msg = err.to_string();
    assert!(msg.contains("not-a-dir"), "{msg}");
}

#[tokio::test]
async fn a_database_that_is_a_file_fails_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db"), b"garbage").unwrap();
    let err = Server::start(common::base_config(dir.path()))
        .await
        .err()
        .expect("start must fail");
    let msg = err.to_string();
    assert!(msg.contains("db"), "{msg}");
}

/// Writes `n` keys and returns them with their values.
async fn write_keys(node: &Node, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let (k, v) = (format!("k{i}"), format!("value-{i}-{}", "x".repeat(i % 50)));
        let (st, b) = node.put(&format!("/meta/{k}"), json!({ "v": v })).await;
        assert!(st.is_success(), "{st} {b}");
        out.push((k, v));
    }
    out
}

/// Flips 16 bytes of `file` at `at` (a fraction of its length).
fn corrupt(file: &Path, at: f64) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let at = (len as f64 * at) as u64;
    let mut b = [0u8; 16];
    f.seek(SeekFrom::Start(at)).unwrap();
    let n = f.read(&mut b).unwrap();
    b[..n].iter_mut().for_each(|x| *x ^= 0x5a);
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b[..n]).unwrap();
    f.sync_all().unwrap();
}

/// Every acknowledged key reads back exactly, or the node refuses (5xx); never a
/// wrong value and never a 404.
async fn answers_exactly_or_refuses(data: &Path, written: &[(String, String)]) {
    let server = match Server::start(common::base_config(data)).await {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(data.to_str().unwrap()), "{msg}");
            return;
        }
        Ok(s) => s,
    };
    let base = format!("http://{}", server.api_addr());
    let client = common::client();
    for (k, v) in written {
        let r = client
            .request(Method::GET, format!("{base}/meta/{k}"))
            .send()
            .await
            .unwrap();
        let st = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        if st == StatusCode::OK {
            assert_eq!(body["metadata"]["v"], *v, "wrong answer for {k}");
        } else {
            assert!(st.is_server_error(), "{k}: {st} {body}");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_database_fails_start_up_or_answers_exactly() {
    for (file, at) in [
        ("db", 0.1),
        ("db", 0.3),
        ("db", 0.5),
        ("db", 0.7),
        ("db", 0.9),
        ("db", 0.999),
        ("conf", 0.5),
    ] {
        let mut node = Node::single(&[]).await;
        let written = write_keys(&node, 300).await;
        node.stop().await;
        corrupt(&node.data_dir().join("db").join(file), at);
        answers_exactly_or_refuses(&node.data_dir(), &written).await;
    }
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// None (and a loud line) where mounting is not allowed (not root).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root); full-disk test not run");
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn resize(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: sled's threads of a node stopped in-process may still hold files.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_writes_503_and_keeps_what_was_acknowledged() {
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let data = fs.0.path().join("data");
    let logs = tempfile::tempdir().unwrap();
    let node = Process::run(&data, &logs.path().join("1.log")).await;
    let client = common::client();
    let mut written = Vec::new();
    let mut refused = None;
    for i in 0..4000 {
        let v = format!("{i}-{}", "y".repeat(32 * 1024));
        let r = client
            .put(format!("{}/meta/k{i}", node.base))
            .json(&json!({ "v": v }))
            .send()
            .await
            .unwrap();
        let st = r.status();
        if st.is_success() {
            written.push((format!("k{i}"), v));
            continue;
        }
        refused = Some((st, r.text().await.unwrap()));
        break;
    }
    let (st, body) = refused.expect("the disk never filled");
    eprintln!("after {} writes: {st} {body}", written.len());
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("No space left on device"), "{body}");
    assert!(!written.is_empty());
    node.stop().await;

    fs.resize("512m");
    let node = Process::run(&data, &logs.path().join("2.log")).await;
    for (k, v) in &written {
        let r = client
            .get(format!("{}/meta/{k}", node.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "acknowledged {k} lost");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["metadata"]["v"], *v, "wrong answer for {k}");
    }
    let r = client
        .put(format!("{}/meta/after", node.base))
        .json(&json!({"v": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    node.stop().await;
}
