//! The `metacenter` command line, exercised through the built binary: help, setting
//! errors, dev mode's loopback rule, `health`, and a bootstrapped `run` node that answers
//! `/ready` and `cluster status` and shuts down cleanly on SIGTERM.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::process::BIN;
use common::{free_ports, until_blocking};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A child process that is killed (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished command printed and how it exited.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Starts the binary with `args`, stdout and stderr going to files in `dir`.
fn spawn(dir: &Path, name: &str, args: &[&str]) -> Running {
    let out = File::create(dir.join(format!("{name}.out"))).expect("stdout file");
    let err = File::create(dir.join(format!("{name}.err"))).expect("stderr file");
    let child = Command::new(BIN)
        .args(args)
        .env_remove("METACENTER_CLUSTER_SECRET")
        .env_remove("METACENTER_CLUSTER_INSECURE")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start metacenter");
    Running(child)
}

/// Waits for `child` to exit (killing it after `timeout`) and collects its output.
fn finish(mut child: Running, dir: &Path, name: &str, timeout: Duration) -> Finished {
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        let out = std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "`{name}` still running after {timeout:?}; stderr:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).unwrap();
    Finished {
        status,
        stdout: read("out"),
        stderr: read("err"),
    }
}

/// Runs the binary with `args` to completion.
fn run(args: &[&str]) -> Finished {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = spawn(dir.path(), "cmd", args);
    finish(child, dir.path(), "cmd", TIMEOUT)
}

#[test]
fn help_lists_the_commands() {
    let f = run(&["--help"]);
    assert!(f.status.success(), "--help failed: {}", f.stderr);
    for cmd in [
        "dev", "run", "cluster", "health", "backup", "restore", "recover",
    ] {
        assert!(
            f.stdout.lines().any(|l| l.trim_start().starts_with(cmd)),
            "--help does not list `{cmd}`:\n{}",
            f.stdout
        );
    }
}

#[test]
fn invalid_setting_is_named_and_fails() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let f = run(&[
        "run",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--peer-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--set",
        "raft.heartbeat_ms=fast",
    ]);
    assert!(!f.status.success(), "an invalid setting was accepted");
    assert!(
        f.stderr.contains("raft.heartbeat_ms"),
        "the error does not name the key: {}",
        f.stderr
    );
}

/// A failing command prints its error chain on one `error:` line and no backtrace,
/// even with `RUST_BACKTRACE=1`.
#[test]
fn errors_are_one_line_without_a_backtrace() {
    let out = Command::new(BIN)
        .args(["health", "--node", "127.0.0.1:1"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run metacenter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["dev", "--data-dir", &data.path().display().to_string()])
        .args(["--set", "raft.heartbeat_ms=fast"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run metacenter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("raft.heartbeat_ms"), "{stderr}");
}

/// `dev --help` offers only what a loopback node uses; every option of `dev` and `run`
/// has a line of help.
#[test]
fn help_of_dev_and_run_explains_every_option() {
    let dev = run(&["dev", "--help"]);
    for absent in [
        "--join",
        "--bootstrap",
        "--id",
        "--cluster-secret",
        "--advertise",
    ] {
        assert!(
            !dev.stdout.contains(absent),
            "dev --help offers {absent}:\n{}",
            dev.stdout
        );
    }
    for cmd in [&dev, &run(&["run", "--help"])] {
        let lines: Vec<&str> = cmd.stdout.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with('-') {
                continue;
            }
            // Help on the same line, or on the next one, indented further.
            let parts = line.trim().split("  ").filter(|p| !p.trim().is_empty());
            let inline = parts.count() > 1;
            let indent = |l: &str| l.len() - l.trim_start().len();
            let below = lines.get(i + 1).is_some_and(|next| {
                !next.trim().is_empty()
                    && !next.trim_start().starts_with('-')
                    && indent(next) > indent(line)
            });
            assert!(
                inline || below,
                "no help for `{}`:\n{}",
                line.trim(),
                cmd.stdout
            );
        }
    }
}

#[test]
fn dev_refuses_a_non_loopback_listener() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let f = run(&[
        "dev",
        "--listen",
        "0.0.0.0:0",
        "--peer-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
    ]);
    assert!(!f.status.success(), "dev mode bound 0.0.0.0");
    assert!(
        f.stderr.contains("loopback"),
        "unclear refusal: {}",
        f.stderr
    );
}

#[test]
fn run_refuses_to_start_without_a_cluster_secret() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let args = ["run", "--id", "1", "--bootstrap", "--data-dir", &data_dir];
    let loopback = ["--listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:0"];
    let f = run(&[&args[..], &loopback].concat());
    assert!(!f.status.success(), "a node started without a secret");
    assert!(
        f.stderr.contains("cluster.secret") && f.stderr.contains("--insecure"),
        "unclear refusal: {}",
        f.stderr
    );
}

#[test]
fn health_of_a_closed_port_exits_1() {
    let port = free_ports(1)[0];
    let f = run(&["health", "--node", &format!("127.0.0.1:{port}")]);
    assert_eq!(f.status.code(), Some(1), "stderr: {}", f.stderr);
}

#[test]
fn bootstrapped_node_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let (api, peer) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let data_dir = dir.path().join("data").display().to_string();
    let args = [
        "run",
        "--id",
        "1",
        "--listen",
        &api,
        "--peer-listen",
        &peer,
        "--data-dir",
        &data_dir,
        "--bootstrap",
        "--set",
        "cluster.secret=cli-test-secret",
        "--set",
        "raft.election_min_ms=500",
        "--set",
        "raft.election_max_ms=1000",
    ];
    let node = spawn(dir.path(), "node", &args);
    until_blocking("the node to be ready", TIMEOUT, || {
        run(&["health", "--node", &api]).status.success()
    });
    let health = run(&["health", "--node", &api]);
    assert_eq!(health.stdout.trim(), format!("{api} is ready"));

    let status = run(&["cluster", "status", "--node", &api]);
    assert!(status.status.success(), "cluster status: {}", status.stderr);
    let json: serde_json::Value = serde_json::from_str(&status.stdout)
        .unwrap_or_else(|e| panic!("cluster status is not JSON ({e}): {}", status.stdout));
    assert_eq!(json["nodeId"], 1, "{json}");
    assert_eq!(json["role"], "leader", "{json}");

    second_node_on_the_same_data_dir_fails_at_once(dir.path(), &data_dir);

    let pid = Pid::from_raw(i32::try_from(node.0.id()).unwrap());
    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    let f = finish(node, dir.path(), "node", TIMEOUT);
    assert_eq!(
        f.status.code(),
        Some(0),
        "SIGTERM did not shut down cleanly; log:\n{}{}",
        f.stdout,
        f.stderr
    );
}

/// A second node started on a data directory a running node holds stops within a
/// couple of seconds, says the directory is in use (not that it may be corrupted), and
/// never binds its ports.
fn second_node_on_the_same_data_dir_fails_at_once(dir: &Path, data_dir: &str) {
    let ports = free_ports(2);
    let (api, peer) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let args = [
        "dev",
        "--listen",
        &api,
        "--peer-listen",
        &peer,
        "--data-dir",
        data_dir,
    ];
    let started = Instant::now();
    let second = spawn(dir, "second", &args);
    let f = finish(second, dir, "second", Duration::from_secs(5));
    assert!(
        !f.status.success(),
        "a second node on a held data dir started"
    );
    assert!(
        f.stderr.contains("in use by another metacenter process"),
        "{}",
        f.stderr
    );
    assert!(!f.stderr.contains("corrupt"), "{}", f.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    for addr in [&api, &peer] {
        std::net::TcpListener::bind(addr.as_str())
            .unwrap_or_else(|e| panic!("{addr} was bound by the refused node: {e}"));
    }
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// A `dev` node's data directory stays small: its log segments are 4 MiB, not the
/// 64 MiB a cluster member preallocates.
#[tokio::test]
async fn a_dev_data_dir_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let api = format!("127.0.0.1:{}", ports[0]);
    let peer = format!("127.0.0.1:{}", ports[1]);
    let data = dir.path().join("data");
    let data_s = data.display().to_string();
    let args = [
        "dev",
        "--listen",
        &api,
        "--peer-listen",
        &peer,
        "--data-dir",
        &data_s,
    ];
    let _node = spawn(dir.path(), "dev", &args);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + TIMEOUT;
    while !http
        .get(format!("http://{api}/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "dev node not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..20 {
        let r = http
            .put(format!("http://{api}/meta/k{i}"))
            .body(r#"{"v":1}"#)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let bytes = dir_bytes(&data);
    assert!(bytes < 16 << 20, "{bytes} bytes after 20 writes");
}
