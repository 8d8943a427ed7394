//! Backup, restore and recover with the real binary: a backup taken under write load
//! restored into a new three-node cluster holds every write acknowledged before it
//! began and none sent after it ended, and every area comes back; damaged backups are
//! refused with a message saying what is wrong; a survivor of a lost quorum recovers
//! into a cluster that new members join; scheduled backups rotate and survive a
//! failover.
//!
//! Needs `target/debug/metacenter` (`cargo build --bin metacenter`). One cluster runs at
//! a time (a shared lock), for small machines.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_tests::poll;
use cluster_tests::process::{binary_path, ProcessCluster};
use metacenter::backup::format;
use serde_json::{json, Value};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TIMEOUT: Duration = Duration::from_secs(90);
const RUN: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
const TENANT: &str = "team-bk";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client")
}

/// Runs `metacenter ARGS`; returns (success, stdout and stderr).
async fn cli(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(binary_path().expect("binary"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("running metacenter");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Sends a request and asserts a 2xx answer.
async fn ok(req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

// ---------------------------------------------------------------------------------------
// A write of every area, and reading each back
// ---------------------------------------------------------------------------------------

async fn seed_areas(api: &str) {
    let h = http();
    let points = json!({"metrics": [
        {"run_id": RUN, "metric_name": "backup_probe_loss", "step": 1, "value": 0.75},
        {"run_id": RUN, "metric_name": "backup_probe_loss", "step": 2, "value": 0.25}]});
    let url = format!("http://{api}/api/v1/metrics/batch");
    ok(h.post(url).header("X-Tenant-ID", TENANT).json(&points)).await;
    let svc = json!({"version": "7", "api": "http://10.0.0.5:9000"});
    ok(h.put(format!("http://{api}/services/backup-svc"))
        .json(&svc))
    .await;
    let load = json!({"cluster": "bk", "request_id": "r1", "prompt_length": 812, "ip": "10.0.0.7"});
    ok(h.post(format!("http://{api}/v1/load/stats")).json(&load)).await;
}

/// What the seeded areas read on the node at `api`, once all are there.
async fn read_areas(api: &str) -> Value {
    let h = http();
    let get = |path: String| {
        let h = h.clone();
        async move {
            let resp = h
                .get(path)
                .header("X-Tenant-ID", TENANT)
                .send()
                .await
                .ok()?;
            resp.status().is_success().then_some(())?;
            resp.json::<Value>().await.ok()
        }
    };
    let stats = format!("http://{api}/api/v1/runs/{RUN}/metrics/backup_probe_loss/stats");
    let search = json!({"query": "backup probe", "tenant_id": TENANT});
    poll::until("every area readable", TIMEOUT, || async {
        let stats = get(stats.clone()).await?;
        let services = get(format!("http://{api}/services")).await?;
        let load = get(format!("http://{api}/v1/load/stats?cluster=bk")).await?;
        let catalog = get(format!("http://{api}/api/v1/metadata")).await?;
        let found = h.post(format!("http://{api}/api/v1/metrics/search"));
        let found: Value = found.json(&search).send().await.ok()?.json().await.ok()?;
        let names: Vec<&str> = (found["results"].as_array()?.iter())
            .filter_map(|r| r["name"].as_str())
            .collect();
        let svc = services["services"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "backup-svc")?;
        let engine = &load["data"].as_array()?.first()?;
        Some(json!({
            "points": [stats["count"], stats["min_value"], stats["max_value"]],
            "service": svc["version"],
            "load": [engine["ip"], engine["queued_req_num"], engine["prompt_length"]],
            "catalog": catalog["data"]["backup_probe_loss"].is_array(),
            "search": names,
        }))
    })
    .await
}

fn expected_areas() -> Value {
    json!({
        "points": [2, 0.25, 0.75],
        "service": "7",
        "load": ["10.0.0.7", 1, 812],
        "catalog": true,
        "search": ["backup_probe_loss"],
    })
}

// ---------------------------------------------------------------------------------------
// Writers that note when each write was sent and acknowledged
// ---------------------------------------------------------------------------------------

struct Write {
    key: String,
    sent: Instant,
    acked: Instant,
}

#[derive(Default)]
struct Log {
    acked: Mutex<Vec<Write>>,
    /// Sent but not acknowledged (error or timeout): outcome unknown.
    unknown: Mutex<Vec<(String, Instant)>>,
    stop: AtomicBool,
}

async fn writer(c: usize, apis: Vec<String>, log: Arc<Log>) {
    let h = http();
    let mut n = 0;
    while !log.stop.load(Ordering::SeqCst) {
        let key = format!("bk-{c}-{n}");
        let url = format!("http://{}/meta/{key}/v", apis[n % apis.len()]);
        let sent = Instant::now();
        let resp = h.put(url).body(key.clone()).send().await;
        match resp.map(|r| r.status().is_success()) {
            Ok(true) => {
                let acked = Instant::now();
                log.acked.lock().unwrap().push(Write { key, sent, acked });
            }
            _ => log.unknown.lock().unwrap().push((key, sent)),
        }
        n += 1;
    }
}

fn acked_count(log: &Log) -> usize {
    log.acked.lock().unwrap().len()
}

async fn value(h: &reqwest::Client, api: &str, key: &str) -> Option<String> {
    let resp = h
        .get(format!("http://{api}/meta/{key}/v"))
        .send()
        .await
        .ok()?;
    resp.status().is_success().then_some(())?;
    resp.text().await.ok()
}

/// Every write acknowledged before `began` is on `api`; none sent after `ended` is.
async fn check_window(api: &str, log: &Log, began: Instant, ended: Instant) {
    let h = http();
    let acked: Vec<_> = log
        .acked
        .lock()
        .unwrap()
        .iter()
        .map(|w| (w.key.clone(), w.sent, w.acked))
        .collect();
    let unknown = log.unknown.lock().unwrap().clone();
    let (mut before, mut after) = (0, 0);
    for (key, sent, acked) in acked {
        let w = Write { key, sent, acked };
        let got = value(&h, api, &w.key).await;
        if w.acked < began {
            assert_eq!(
                got.as_deref(),
                Some(w.key.as_str()),
                "{} acked before",
                w.key
            );
            before += 1;
        } else if w.sent > ended {
            assert_eq!(got, None, "{} sent after the backup ended", w.key);
            after += 1;
        }
    }
    for (key, sent) in unknown.iter().filter(|(_, sent)| *sent > ended) {
        assert_eq!(value(&h, api, key).await, None, "{key} sent at {sent:?}");
    }
    assert!(
        before >= 50 && after >= 20,
        "before {before}, after {after}"
    );
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

async fn take_backup(api: &str, out: &Path) -> format::Verified {
    let (done, text) = cli(&["backup", "--node", api, "--out", out.to_str().unwrap()]).await;
    assert!(done, "backup failed: {text}");
    let file = std::fs::File::open(out).expect("backup file");
    format::verify(std::io::BufReader::new(file)).expect("backup verifies")
}

async fn restore_all(cluster: &ProcessCluster, backup: &Path) {
    let members = cluster.members();
    for id in cluster.ids() {
        let dir = cluster.data_dir(id).unwrap();
        let id = id.to_string();
        let args = ["restore", "--from", backup.to_str().unwrap(), "--data-dir"];
        let mut args = args.to_vec();
        args.extend([dir.to_str().unwrap(), "--id", &id, "--members", &members]);
        let (done, text) = cli(&args).await;
        assert!(done, "restore of node {id}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_into_a_new_cluster() {
    let _serial = SERIAL.lock().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("state.mcbak");
    let old = ProcessCluster::start().await.expect("cluster");
    seed_areas(&old.api(1).unwrap()).await;
    let log = Arc::new(Log::default());
    let writers: Vec<_> = (0..4)
        .map(|c| tokio::spawn(writer(c, old.apis(), log.clone())))
        .collect();
    poll::until("50 writes acknowledged", TIMEOUT, || async {
        (acked_count(&log) >= 50).then_some(())
    })
    .await;
    let began = Instant::now();
    let v = take_backup(&old.api(2).unwrap(), &file).await;
    let ended = Instant::now();
    let target = acked_count(&log) + 20;
    poll::until("writes after the backup", TIMEOUT, || async {
        let after = log
            .acked
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.sent > ended)
            .count();
        (after >= 20 && acked_count(&log) >= target).then_some(())
    })
    .await;
    log.stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(v.header.members.len(), 3);
    drop(old);

    let mut new = ProcessCluster::prepare(3, &[]).expect("prepare");
    restore_all(&new, &file).await;
    new.boot_members().await.expect("restored cluster starts");
    let leader = new.leader(TIMEOUT).await.unwrap();
    let api = new.api(leader).unwrap();
    check_window(&api, &log, began, ended).await;
    for id in new.ids() {
        assert_eq!(
            read_areas(&new.api(id).unwrap()).await,
            expected_areas(),
            "node {id}"
        );
    }
    let h = http();
    ok(h.put(format!(
        "http://{}/meta/after-restore/v",
        new.api(3).unwrap()
    ))
    .body("yes"))
    .await;
    let status = new.get_json(leader, "/status").await.unwrap();
    assert!(status["raft"]["appliedIndex"].as_u64().unwrap() > v.header.index);
}

/// A copy of `file` changed by `change`, at `name` in `dir`.
fn damaged(file: &Path, dir: &Path, name: &str, change: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    change(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `restore` of `from` into a new `dir` fails, saying `why`, and writes no database.
async fn refused(from: &Path, dir: &Path, why: &str) {
    let members = "1=127.0.0.1:1@127.0.0.1:2";
    let (from, to) = (from.to_str().unwrap(), dir.to_str().unwrap());
    let args = [
        "restore",
        "--from",
        from,
        "--data-dir",
        to,
        "--id",
        "1",
        "--members",
        members,
    ];
    let (done, text) = cli(&args).await;
    assert!(!done, "restore of {from} succeeded: {text}");
    assert!(
        text.contains(why),
        "restore of {from}: expected `{why}` in: {text}"
    );
    assert!(!dir.join("db").exists(), "{to} got a database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_backups_and_used_data_dirs_are_refused() {
    let _serial = SERIAL.lock().await;
    let work = tempfile::tempdir().unwrap();
    let (w, file) = (work.path(), work.path().join("one.mcbak"));
    let node = ProcessCluster::start_with(1, &[]).await.expect("node");
    let api = node.api(1).unwrap();
    seed_areas(&api).await;
    take_backup(&api, &file).await;
    let (done, text) = cli(&[
        "backup",
        "--node",
        "127.0.0.1:1",
        "--out",
        w.join("x").to_str().unwrap(),
    ])
    .await;
    assert!(!done && text.contains("cannot reach"), "{text}");
    assert!(!w.join("x").exists() && !w.join("x.partial").exists());

    let cut = damaged(&file, w, "cut.mcbak", |b| b.truncate(b.len() / 2));
    refused(&cut, &w.join("d1"), "truncated").await;
    let flipped = damaged(&file, w, "flip.mcbak", |b| {
        let at = b.len() - format::END_LEN as usize - 5;
        b[at] ^= 0x10;
    });
    refused(&flipped, &w.join("d2"), "checksum does not match").await;
    let v2 = damaged(&file, w, "v2.mcbak", |b| {
        b[8..12].copy_from_slice(&2u32.to_be_bytes())
    });
    refused(&v2, &w.join("d3"), "format version 2").await;
    let used = w.join("used");
    std::fs::create_dir_all(&used).unwrap();
    std::fs::write(used.join("something"), b"x").unwrap();
    let (done, text) = cli(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        used.to_str().unwrap(),
        "--id",
        "1",
        "--members",
        "1=a:1@b:2",
    ])
    .await;
    assert!(!done && text.contains("is not empty"), "{text}");
}

/// Writes `n` keys through `api`, each acknowledged.
async fn write_keys(api: &str, prefix: &str, n: usize) -> Vec<String> {
    let h = http();
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("{prefix}-{i}");
        ok(h.put(format!("http://{api}/meta/{key}/v"))
            .body(key.clone()))
        .await;
        keys.push(key);
    }
    keys
}

/// Polls until every key reads back as itself on `api`.
async fn all_present(api: &str, keys: &[String]) {
    let h = http();
    for key in keys {
        poll::until(&format!("{key} on {api}"), TIMEOUT, || async {
            (value(&h, api, key).await.as_deref() == Some(key.as_str())).then_some(())
        })
        .await;
    }
}

/// The raft index node `id` has applied, and the leader's commit index.
async fn applied_and_committed(c: &ProcessCluster, id: u64, leader: u64) -> Option<(u64, u64)> {
    let mine = c.get_json(id, "/status").await?;
    let lead = c.get_json(leader, "/status").await?;
    let applied = mine["raft"]["appliedIndex"].as_u64()?;
    Some((applied, lead["raft"]["commitIndex"].as_u64()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_turns_a_survivor_into_a_cluster_that_new_members_join() {
    let _serial = SERIAL.lock().await;
    let mut c = ProcessCluster::start().await.expect("cluster");
    let leader = c.leader(TIMEOUT).await.unwrap();
    let keys = write_keys(&c.api(leader).unwrap(), "before-loss", 200).await;
    seed_areas(&c.api(leader).unwrap()).await;
    poll::until("node 1 applied all", TIMEOUT, || async {
        let (applied, committed) = applied_and_committed(&c, 1, leader).await?;
        (applied >= committed).then_some(())
    })
    .await;
    for id in [2, 3] {
        c.kill9(id).unwrap();
        std::fs::remove_dir_all(c.data_dir(id).unwrap()).unwrap();
    }
    c.kill9(1).unwrap();
    let data = c.data_dir(1).unwrap();
    let (done, text) = cli(&["recover", "--data-dir", data.to_str().unwrap()]).await;
    assert!(!done && text.contains("pass --id"), "{text}");
    let (done, text) = cli(&["recover", "--data-dir", data.to_str().unwrap(), "--id", "1"]).await;
    assert!(done, "recover: {text}");

    c.restart(1).unwrap();
    assert_eq!(c.leader(TIMEOUT).await.unwrap(), 1);
    let api = c.api(1).unwrap();
    all_present(&api, &keys).await;
    assert_eq!(read_areas(&api).await, expected_areas());
    let after = write_keys(&api, "after-recover", 20).await;
    let (four, five) = (c.add_joiner(1, &[]).unwrap(), c.add_joiner(1, &[]).unwrap());
    c.wait_voters(&[1, four, five], TIMEOUT).await.unwrap();
    for id in [four, five] {
        let api = c.api(id).unwrap();
        all_present(&api, &keys).await;
        all_present(&api, &after).await;
    }
    c.kill9(1).unwrap();
    let leader = c.leader(TIMEOUT).await.unwrap();
    write_keys(&c.api(leader).unwrap(), "after-failover", 5).await;
}

/// The scheduled backups in `dir`, by name.
fn scheduled(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".mcbak"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A series of `/metrics` on node `id`.
async fn metric(c: &ProcessCluster, id: u64, name: &str) -> Option<f64> {
    let url = format!("http://{}/metrics", c.api(id).ok()?);
    let text = http().get(url).send().await.ok()?.text().await.ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{name} ")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_backups_rotate_and_a_new_leader_carries_on() {
    let _serial = SERIAL.lock().await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("scheduled");
    let settings = [
        ("backup.dir", dir.to_str().unwrap()),
        ("backup.interval", "1s"),
        ("backup.keep", "2"),
    ];
    let mut c = ProcessCluster::start_with(3, &settings)
        .await
        .expect("cluster");
    let first = c.leader(TIMEOUT).await.unwrap();
    write_keys(&c.api(first).unwrap(), "scheduled", 20).await;
    let mut seen = std::collections::BTreeSet::new();
    poll::until("four scheduled backups, two kept", TIMEOUT, || {
        let names = scheduled(&dir);
        // A new backup is renamed into place just before the oldest goes.
        assert!(names.len() <= 3, "more than backup.keep + 1: {names:?}");
        seen.extend(names.iter().cloned());
        let enough = seen.len() >= 4 && names.len() == 2;
        let c = &c;
        async move {
            let ok = metric(c, first, "backup_last_success_timestamp_seconds").await? > 0.0;
            (ok && enough).then_some(())
        }
    })
    .await;
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(metric(&c, first, "backup_last_size_bytes").await.unwrap() > 0.0);
    assert_eq!(metric(&c, first, "backup_failures_total").await, Some(0.0));

    c.kill9(first).unwrap();
    let next = c.leader(TIMEOUT).await.unwrap();
    poll::until("the new leader writes backups", TIMEOUT, || async {
        let names = scheduled(&dir);
        let path = dir.join(names.last()?);
        let v = format::verify(std::io::BufReader::new(std::fs::File::open(path).ok()?)).ok()?;
        (v.header.node == next).then_some(())
    })
    .await;
    poll::until("rotated to backup.keep", TIMEOUT, || async {
        (scheduled(&dir).len() <= 2).then_some(())
    })
    .await;
}
