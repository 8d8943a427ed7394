//! How long one node's apply takes per command, with no raft and no HTTP around it:
//! 10,000 service registrations, then heartbeats and load updates (add, first token,
//! done) over them, applied in log entries of 23 commands (what group commit packs at
//! 64 clients). Run with `cargo run --release -p metacenter-storage --example apply_cost`.
//!
//! Two figures per run: the applying thread's wall time, and the CPU time of the whole
//! process (every thread, from `/proc/self/task/*/schedstat`, Linux only), which also
//! counts sled's background flushing of what apply wrote. The run ends with a flush, so
//! the bytes written are paid within it. With `ONE_SERVICE=1` every heartbeat goes to the
//! same service (what spreading them over 10,000 costs).

use std::time::Instant;

use metacenter_storage::{ApplyEntry, Command, Store};

/// Commands per log entry.
const PER_ENTRY: usize = 23;
const SERVICES: u64 = 10_000;

/// Nanoseconds of CPU used so far by every thread of this process (0 where the
/// scheduler statistics cannot be read).
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Applies `commands` in entries of [`PER_ENTRY`] and flushes; returns µs per command
/// of wall time and of process CPU. The entries are built before the clock starts, so
/// only apply and the flush are timed.
fn apply_all(store: &Store, index: &mut u64, commands: Vec<Command>) -> (f64, f64) {
    let n = commands.len() as f64;
    let mut entries = Vec::new();
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        *index += 1;
        let chunk = commands.by_ref().take(PER_ENTRY).collect();
        entries.push(ApplyEntry {
            index: *index,
            commands: chunk,
        });
    }
    let (started, cpu) = (Instant::now(), process_cpu_ns());
    for entry in &entries {
        store
            .apply(std::slice::from_ref(entry), b"applied")
            .expect("apply");
    }
    store.flush_durable().expect("flush");
    let wall = started.elapsed().as_secs_f64() * 1e6 / n;
    (wall, (process_cpu_ns() - cpu) as f64 / 1e3 / n)
}

fn name(i: u64) -> String {
    format!("bench-svc-{i:06}")
}

fn registrations() -> Vec<Command> {
    (0..SERVICES)
        .map(|i| Command::ServiceRegister {
            name: name(i),
            info_json: format!(r#"{{"name":"{}","version":"1","status":"ok"}}"#, name(i)),
            now_ms: 1,
            deregister_after_ms: None,
        })
        .collect()
}

fn heartbeats(round: u64) -> Vec<Command> {
    let one = std::env::var_os("ONE_SERVICE").is_some();
    (0..50_000u64)
        .map(|i| Command::ServiceHeartbeat {
            name: name(if one { 1 } else { (i * 64 + round) % SERVICES }),
            now_ms: 2 + i,
        })
        .collect()
}

fn load_updates(round: u64) -> Vec<Command> {
    let mut out = Vec::new();
    for i in 0..20_000u64 {
        let request_id = format!("req-{round}-{i}");
        out.push(Command::LoadAdd {
            cluster: format!("c{}", i % 4),
            request_id: request_id.clone(),
            ip: format!("10.0.{}.{}", i % 4, i % 25),
            prompt_length: 100,
            now_ns: i,
        });
        out.push(Command::LoadPromptDone {
            request_id: request_id.clone(),
            now_ns: i,
        });
        out.push(Command::LoadDone {
            request_id,
            now_ns: i,
        });
    }
    out
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    let mut index = 0;
    let report = |what: &str, (wall, cpu): (f64, f64)| {
        println!("{what}: {wall:.2} µs per command, {cpu:.2} µs of process CPU");
    };
    report(
        "service register",
        apply_all(&store, &mut index, registrations()),
    );
    for round in 0..3 {
        report(
            "service heartbeat",
            apply_all(&store, &mut index, heartbeats(round)),
        );
    }
    for round in 0..3 {
        report(
            "load update",
            apply_all(&store, &mut index, load_updates(round)),
        );
    }
}
