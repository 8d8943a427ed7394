//! `kill -9` in the middle of applies: whatever moment a node dies, its store must
//! reopen to the state after one whole apply call, `last_applied` included (raft then
//! re-applies the rest from its log). Small applies are written key by key behind a
//! redo record and large ones as one batch (`storage/src/redo.rs`); both are killed
//! here, many times, in one data directory.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};

use metacenter_storage::{ApplyEntry, Command, Store};

const CHILD_ENV: &str = "METACENTER_CRASH_DIR";
const OBJECTS: usize = 10;
const ROUNDS: u64 = 24;

/// Every object's value names the call that wrote it; every 5th call is large
/// enough to be written as one batch instead of behind a redo record.
fn value(call: u64) -> String {
    let pad = if call.is_multiple_of(5) { 9_000 } else { 2_000 };
    format!("{call}:{}", "x".repeat(pad))
}

fn applied(store: &Store) -> u64 {
    match store.applied_state().expect("read applied state") {
        Some(b) => u64::from_be_bytes(b.as_slice().try_into().expect("8 bytes")),
        None => 0,
    }
}

/// The child: applies calls of `OBJECTS` merges each, forever, reporting each one.
#[test]
#[ignore = "run by applies_survive_kill_9_as_whole_calls in a child process"]
fn crash_writer() {
    let dir = std::env::var(CHILD_ENV).expect("only run as a child of the crash test");
    let store = Store::open(Path::new(&dir)).expect("open");
    for call in applied(&store) + 1.. {
        let commands = (0..OBJECTS)
            .map(|i| Command::MetaMerge {
                hash: format!("obj{i}"),
                fields: BTreeMap::from([("v".to_string(), value(call))]),
                expect_version: None,
            })
            .collect();
        let entry = ApplyEntry {
            index: call,
            commands,
        };
        store.apply(&[entry], &call.to_be_bytes()).expect("apply");
        println!("applied {call}");
    }
}

/// Runs the child until it reports `until`, then kills it with SIGKILL.
fn run_child_until(dir: &Path, until: u64) {
    let mut child = Process::new(std::env::current_exe().expect("test binary"))
        .args(["crash_writer", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    for line in out.lines() {
        let line = line.expect("read the writer");
        if let Some(n) = line.strip_prefix("applied ") {
            if n.parse::<u64>().expect("call number") >= until {
                break;
            }
        }
    }
    child.kill().expect("kill -9 the writer");
    child.wait().expect("reap the writer");
}

/// Every object must hold the value of call `applied`, no older and no newer one.
fn check_whole_call(store: &Store) -> u64 {
    let call = applied(store);
    for i in 0..OBJECTS {
        let got = store
            .meta_get_prop(&format!("obj{i}"), "v")
            .expect("read")
            .map(|(_, v)| v);
        let want = (call > 0).then(|| value(call));
        let head = |v: &Option<String>| v.as_ref().map(|s| s[..s.len().min(12)].to_string());
        assert!(
            got == want,
            "obj{i} holds {:?} but last_applied is call {call}",
            head(&got)
        );
    }
    call
}

#[test]
fn applies_survive_kill_9_as_whole_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut reached = 0;
    for round in 0..ROUNDS {
        let until = reached + 20 + (round * 53) % 300;
        run_child_until(dir.path(), until);
        let store = Store::open(dir.path()).expect("reopen after kill -9");
        reached = check_whole_call(&store);
    }
    // Not vacuous: the writes reached the disk, so each reopen found real progress.
    assert!(reached > ROUNDS * 20, "only {reached} calls survived");
}
