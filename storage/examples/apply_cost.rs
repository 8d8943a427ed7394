//! How long one node's apply takes per command, with no raft and no HTTP around it:
//! 10,000 service registrations, then heartbeats and load updates (add, first token,
//! done) over them, applied in log entries of 23 commands (what group commit packs at
//! 64 clients). Run with `cargo run --release -p metacenter-storage --example apply_cost`.

use std::time::Instant;

use metacenter_storage::{ApplyEntry, Command, Store};

/// Commands per log entry.
const PER_ENTRY: usize = 23;
const SERVICES: u64 = 10_000;

/// Applies `commands` in entries of [`PER_ENTRY`] and returns µs per command. The
/// entries are built before the clock starts, so only apply is timed.
fn apply_all(store: &Store, index: &mut u64, commands: Vec<Command>) -> f64 {
    let n = commands.len();
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
    let started = Instant::now();
    for entry in &entries {
        store
            .apply(std::slice::from_ref(entry), b"applied")
            .expect("apply");
    }
    started.elapsed().as_secs_f64() * 1e6 / n as f64
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
    (0..50_000u64)
        .map(|i| Command::ServiceHeartbeat {
            name: name((i * 64 + round) % SERVICES),
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
    let us = apply_all(&store, &mut index, registrations());
    println!("service register: {us:.2} µs per command");
    for round in 0..3 {
        let us = apply_all(&store, &mut index, heartbeats(round));
        println!("service heartbeat: {us:.2} µs per command");
    }
    for round in 0..3 {
        let us = apply_all(&store, &mut index, load_updates(round));
        println!("load update: {us:.2} µs per command");
    }
}
