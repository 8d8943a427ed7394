//! Apply-level tests of the load keyspaces (Metadata Center, API.md section 4):
//! `Command::LoadAdd` / `LoadPromptDone` / `LoadDone` / `LoadExpire` through
//! `Store::apply`, read back with `Store::load_cluster`, `Store::load_engines` and
//! `Store::load_expiry_due`.
//!
//! Covered: the counters of add / first token / done; duplicates; finishes that
//! arrive before their add (tombstones: a late add is cancelled or counted without
//! its prompt, and the tombstone is consumed); counters that never go below zero;
//! independence of engines and clusters; expiry of requests, engines and tombstones
//! (driven by the `now_ns` the commands carry, never by the clock); and determinism
//! (the same commands give byte-equal snapshot exports).
//!
//! Whether a request or tombstone is still stored is read from the snapshot export
//! (records of its keyspace), so the check itself changes nothing.

use std::collections::BTreeSet;

use metacenter_storage::{keys, ApplyEntry, Command, EngineLoad, LoadOutcome, Response, Store};
use tempfile::TempDir;

/// One second in ns.
const S: u64 = 1_000_000_000;
/// A base time (unix ns) for every test.
const T0: u64 = 1_700_000_000 * S;

// ---------------------------------------------------------------- harness

/// A store with its own data directory and a running log index.
struct Sm {
    store: Store,
    index: u64,
    _dir: TempDir,
}

impl Sm {
    fn new() -> Sm {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        Sm {
            store,
            index: 0,
            _dir: dir,
        }
    }

    /// Applies `cmds` as one entry (the next index) and returns their responses.
    fn entry(&mut self, cmds: Vec<Command>) -> Vec<Response> {
        self.index += 1;
        let n = cmds.len();
        let mut out = self
            .store
            .apply(
                &[ApplyEntry {
                    index: self.index,
                    commands: cmds,
                }],
                &self.index.to_be_bytes(),
            )
            .expect("apply must not fail");
        assert_eq!(out.len(), 1);
        let rs = out.remove(0);
        assert_eq!(rs.len(), n, "one response per command");
        rs
    }

    /// Applies one load command and returns its outcome.
    fn load(&mut self, cmd: Command) -> LoadOutcome {
        match self.entry(vec![cmd]).remove(0) {
            Response::Load(o) => o,
            other => panic!("expected a load outcome, got {other:?}"),
        }
    }

    /// Counters of one engine as (queued, prompt), `None` when it is not stored.
    fn counts(&self, cluster: &str, ip: &str) -> Option<(u64, u64)> {
        self.engine(cluster, ip)
            .map(|e| (e.queued_req_num, e.prompt_length))
    }

    fn engine(&self, cluster: &str, ip: &str) -> Option<EngineLoad> {
        let engines = self.store.load_cluster(cluster).expect("load_cluster");
        let uncontended = self.store.try_load_cluster(cluster);
        assert_eq!(
            uncontended.as_ref(),
            Some(&engines),
            "try_load_cluster differs"
        );
        let mut found = engines.iter().filter(|(i, _)| i == ip);
        let e = found.next().map(|(_, e)| *e);
        assert!(found.next().is_none(), "engine {ip} listed twice");
        e
    }

    /// Ids with a stored record in keyspace `ks` (by-id keyspaces), from the export.
    fn ids(&self, ks: u8) -> BTreeSet<String> {
        records(&self.export())
            .into_iter()
            .filter(|(k, _)| k.first() == Some(&ks))
            .map(|(k, _)| String::from_utf8(k[1..].to_vec()).expect("UTF-8 id"))
            .collect()
    }

    /// Number of records in keyspace `ks`.
    fn count_in(&self, ks: u8) -> usize {
        records(&self.export())
            .iter()
            .filter(|(k, _)| k.first() == Some(&ks))
            .count()
    }

    fn requests(&self) -> BTreeSet<String> {
        self.ids(keys::KS_LOAD_REQ)
    }

    fn tombstones(&self) -> BTreeSet<String> {
        self.ids(keys::KS_LOAD_TOMB)
    }

    fn export(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.store.export_snapshot(&mut out).expect("export");
        out
    }

    fn due(&self, now: u64, req: u64, engine: u64, tomb: u64) -> bool {
        self.store
            .load_expiry_due(now, req, engine, tomb)
            .expect("load_expiry_due")
    }
}

/// Splits a snapshot export (`MCSNAP1\n`, then `u32 BE len, key, u32 BE len, value`
/// records, then a zero-length key) into its records.
fn records(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    assert_eq!(&bytes[..8], b"MCSNAP1\n", "snapshot magic");
    let mut pos = 8;
    let chunk = |pos: &mut usize| -> Vec<u8> {
        let len = u32::from_be_bytes(bytes[*pos..*pos + 4].try_into().unwrap()) as usize;
        *pos += 4;
        let c = bytes[*pos..*pos + len].to_vec();
        *pos += len;
        c
    };
    let mut out = Vec::new();
    loop {
        let k = chunk(&mut pos);
        if k.is_empty() {
            break;
        }
        let v = chunk(&mut pos);
        out.push((k, v));
    }
    assert_eq!(pos, bytes.len(), "nothing after the terminator");
    out
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn add(cluster: &str, id: &str, ip: &str, prompt: u64, now: u64) -> Command {
    Command::LoadAdd {
        cluster: cluster.into(),
        request_id: id.into(),
        ip: ip.into(),
        prompt_length: prompt,
        now_ns: now,
    }
}

fn prompt_done(id: &str, now: u64) -> Command {
    Command::LoadPromptDone {
        request_id: id.into(),
        now_ns: now,
    }
}

fn done(id: &str, now: u64) -> Command {
    Command::LoadDone {
        request_id: id.into(),
        now_ns: now,
    }
}

fn expire(now: u64, req: u64, engine: u64, tomb: u64) -> Command {
    Command::LoadExpire {
        now_ns: now,
        req_expire_ns: req,
        engine_expire_ns: engine,
        tombstone_ttl_ns: tomb,
    }
}

fn expired(requests: u32, engines: u32, tombstones: u32) -> LoadOutcome {
    LoadOutcome::Expired {
        requests,
        engines,
        tombstones,
    }
}

const C: &str = "llama-7b";
const IP: &str = "10.0.0.1";

// ---------------------------------------------------------------- counters

#[test]
fn add_prompt_done_and_done_move_the_counters() {
    let mut sm = Sm::new();
    assert_eq!(sm.counts(C, IP), None, "nothing before the first add");

    assert_eq!(sm.load(add(C, "r1", IP, 100, T0)), LoadOutcome::Applied);
    let e = sm.engine(C, IP).expect("engine created by the add");
    assert_eq!(
        (e.queued_req_num, e.prompt_length, e.updated_ns),
        (1, 100, T0)
    );

    assert_eq!(sm.load(add(C, "r2", IP, 50, T0 + 1)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((2, 150)));
    assert_eq!(sm.requests(), ids(&["r1", "r2"]));

    assert_eq!(sm.load(prompt_done("r1", T0 + 2)), LoadOutcome::Applied);
    let e = sm.engine(C, IP).unwrap();
    assert_eq!(
        (e.queued_req_num, e.prompt_length, e.updated_ns),
        (2, 50, T0 + 2)
    );

    assert_eq!(sm.load(done("r1", T0 + 3)), LoadOutcome::Applied);
    let e = sm.engine(C, IP).unwrap();
    assert_eq!(
        (e.queued_req_num, e.prompt_length, e.updated_ns),
        (1, 50, T0 + 3)
    );

    // Done without a prompt-done takes the prompt off too.
    assert_eq!(sm.load(done("r2", T0 + 4)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
    assert!(sm.requests().is_empty());
    // Finished requests leave tombstones so that a late retried add does not count.
    assert_eq!(sm.tombstones().len(), 2);
}

#[test]
fn add_retried_after_done_does_not_count_again() {
    let mut sm = Sm::new();
    assert_eq!(sm.load(add(C, "r1", IP, 10, T0)), LoadOutcome::Applied);
    assert_eq!(sm.load(done("r1", T0 + 1)), LoadOutcome::Applied);
    assert_eq!(
        sm.load(add(C, "r1", IP, 10, T0 + 2)),
        LoadOutcome::Cancelled
    );
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
    assert!(
        sm.tombstones().is_empty(),
        "the late add consumed the tombstone"
    );
}

#[test]
fn duplicate_add_is_ignored() {
    let mut sm = Sm::new();
    assert_eq!(sm.load(add(C, "r1", IP, 100, T0)), LoadOutcome::Applied);
    let before = sm.engine(C, IP).unwrap();
    // Same id, even with another prompt, engine or cluster: nothing changes.
    assert_eq!(
        sm.load(add(C, "r1", IP, 100, T0 + 5)),
        LoadOutcome::Duplicate
    );
    assert_eq!(sm.load(add(C, "r1", IP, 7, T0 + 6)), LoadOutcome::Duplicate);
    assert_eq!(
        sm.load(add(C, "r1", "10.0.0.2", 7, T0 + 7)),
        LoadOutcome::Duplicate
    );
    assert_eq!(
        sm.load(add("other", "r1", IP, 7, T0 + 8)),
        LoadOutcome::Duplicate
    );
    assert_eq!(
        sm.engine(C, IP),
        Some(before),
        "counters and time unchanged"
    );
    assert_eq!(sm.counts(C, "10.0.0.2"), None);
    assert_eq!(sm.counts("other", IP), None);
    // Its done still takes it off exactly once.
    assert_eq!(sm.load(done("r1", T0 + 9)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
}

#[test]
fn repeated_prompt_done_subtracts_once() {
    let mut sm = Sm::new();
    sm.load(add(C, "r1", IP, 100, T0));
    sm.load(add(C, "r2", IP, 30, T0));
    assert_eq!(sm.load(prompt_done("r1", T0 + 1)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((2, 30)));
    for i in 0..3 {
        assert_eq!(
            sm.load(prompt_done("r1", T0 + 2 + i)),
            LoadOutcome::Duplicate
        );
        assert_eq!(sm.counts(C, IP), Some((2, 30)), "r2's prompt is untouched");
    }
}

#[test]
fn done_after_prompt_done_does_not_subtract_the_prompt_twice() {
    let mut sm = Sm::new();
    sm.load(add(C, "r1", IP, 100, T0));
    sm.load(add(C, "r2", IP, 40, T0));
    sm.load(prompt_done("r1", T0 + 1));
    assert_eq!(sm.counts(C, IP), Some((2, 40)));
    assert_eq!(sm.load(done("r1", T0 + 2)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((1, 40)), "r2's 40 stays");
}

// ---------------------------------------------------------------- early finishes

#[test]
fn done_before_add_leaves_a_tombstone_that_cancels_the_late_add_once() {
    let mut sm = Sm::new();
    sm.load(add(C, "other", IP, 5, T0));
    let before = sm.engine(C, IP).unwrap();

    assert_eq!(sm.load(done("r1", T0 + 1)), LoadOutcome::Tombstoned);
    assert_eq!(sm.tombstones(), ids(&["r1"]));
    assert_eq!(
        sm.engine(C, IP),
        Some(before),
        "a tombstone touches no counters"
    );

    // A prompt-done or a second done for it changes nothing.
    assert_eq!(sm.load(prompt_done("r1", T0 + 2)), LoadOutcome::Duplicate);
    assert_eq!(sm.load(done("r1", T0 + 3)), LoadOutcome::Duplicate);
    assert_eq!(sm.tombstones(), ids(&["r1"]));

    // The late add is cancelled, on an existing engine and on a new one alike.
    assert_eq!(
        sm.load(add(C, "r1", IP, 100, T0 + 4)),
        LoadOutcome::Cancelled
    );
    assert_eq!(
        sm.engine(C, IP),
        Some(before),
        "cancelled add counts nothing"
    );
    assert!(sm.tombstones().is_empty(), "the tombstone is consumed");
    assert_eq!(
        sm.requests(),
        ids(&["other"]),
        "the cancelled add is not stored"
    );

    assert_eq!(sm.load(done("r2", T0 + 5)), LoadOutcome::Tombstoned);
    assert_eq!(
        sm.load(add(C, "r2", "10.0.0.9", 100, T0 + 6)),
        LoadOutcome::Cancelled
    );
    assert_eq!(
        sm.counts(C, "10.0.0.9"),
        None,
        "no engine made by a cancelled add"
    );

    // Consumed: the same id added again now counts.
    assert_eq!(sm.load(add(C, "r1", IP, 100, T0 + 7)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((2, 105)));
}

#[test]
fn prompt_done_before_add_counts_the_request_but_not_its_prompt() {
    let mut sm = Sm::new();
    assert_eq!(sm.load(prompt_done("r1", T0)), LoadOutcome::Tombstoned);
    assert_eq!(sm.load(prompt_done("r1", T0 + 1)), LoadOutcome::Duplicate);
    assert_eq!(sm.tombstones(), ids(&["r1"]));
    assert_eq!(sm.counts(C, IP), None);

    assert_eq!(sm.load(add(C, "r1", IP, 100, T0 + 2)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((1, 0)));
    assert!(sm.tombstones().is_empty(), "the tombstone is consumed");

    // Its first token already came: another prompt-done is a duplicate, and the
    // done takes only the queue slot.
    assert_eq!(sm.load(prompt_done("r1", T0 + 3)), LoadOutcome::Duplicate);
    sm.load(add(C, "r2", IP, 60, T0 + 4));
    assert_eq!(sm.load(done("r1", T0 + 5)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((1, 60)));
}

#[test]
fn prompt_done_then_done_before_add_cancels_the_late_add() {
    let mut sm = Sm::new();
    assert_eq!(sm.load(prompt_done("r1", T0)), LoadOutcome::Tombstoned);
    assert_eq!(sm.load(done("r1", T0 + 1)), LoadOutcome::Tombstoned);
    assert_eq!(sm.tombstones(), ids(&["r1"]), "one tombstone per id");
    assert_eq!(
        sm.load(add(C, "r1", IP, 100, T0 + 2)),
        LoadOutcome::Cancelled
    );
    assert_eq!(sm.counts(C, IP), None);
    assert!(sm.tombstones().is_empty());
    assert_eq!(
        sm.count_in(keys::KS_LOAD_TOMB_AGE),
        0,
        "age index cleaned too"
    );
}

// ---------------------------------------------------------------- floors

/// Puts request `id` (prompt `prompt`) on an engine that then expires while the
/// request stays (engine ttl shorter than request ttl), and re-creates the engine
/// with request `fresh` (prompt `fresh_prompt`): the old request's counters are no
/// longer on the engine, so finishing it must floor at zero.
fn stale_request(sm: &mut Sm, id: &str, prompt: u64, fresh: &str, fresh_prompt: u64) {
    sm.load(add(C, id, IP, prompt, T0));
    assert_eq!(
        sm.load(expire(T0 + 10 * S, 100 * S, 5 * S, 100 * S)),
        expired(0, 1, 0)
    );
    assert_eq!(sm.counts(C, IP), None);
    assert!(sm.requests().contains(id));
    sm.load(add(C, fresh, IP, fresh_prompt, T0 + 11 * S));
    assert_eq!(sm.counts(C, IP), Some((1, fresh_prompt)));
}

#[test]
fn counters_floor_at_zero_on_prompt_done_and_done() {
    let mut sm = Sm::new();
    stale_request(&mut sm, "old", 100, "new", 10);
    assert_eq!(
        sm.load(prompt_done("old", T0 + 12 * S)),
        LoadOutcome::Applied
    );
    assert_eq!(sm.counts(C, IP), Some((1, 0)), "10 - 100 floors at 0");
    assert_eq!(sm.load(done("old", T0 + 13 * S)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
    assert_eq!(sm.load(done("new", T0 + 14 * S)), LoadOutcome::Applied);
    assert_eq!(
        sm.counts(C, IP),
        Some((0, 0)),
        "0 - 1 and 0 - 10 floor at 0"
    );
}

#[test]
fn counters_floor_at_zero_on_done_without_prompt_done() {
    let mut sm = Sm::new();
    stale_request(&mut sm, "old", 100, "new", 10);
    assert_eq!(sm.load(done("old", T0 + 12 * S)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
    assert_eq!(
        sm.load(prompt_done("new", T0 + 13 * S)),
        LoadOutcome::Applied
    );
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
}

#[test]
fn counters_floor_at_zero_on_expiry() {
    let mut sm = Sm::new();
    stale_request(&mut sm, "old", 100, "new", 10);
    // "old" (T0) is past a 50 s request ttl at T0 + 60 s; "new" (T0 + 11 s) is not.
    assert_eq!(
        sm.load(expire(T0 + 60 * S, 50 * S, 1000 * S, 1000 * S)),
        expired(1, 0, 0)
    );
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
    assert_eq!(sm.requests(), ids(&["new"]));
}

#[test]
fn prompt_length_saturates_instead_of_wrapping() {
    let mut sm = Sm::new();
    sm.load(add(C, "r1", IP, u64::MAX, T0));
    sm.load(add(C, "r2", IP, u64::MAX, T0));
    assert_eq!(sm.counts(C, IP), Some((2, u64::MAX)));
    sm.load(done("r1", T0 + 1));
    sm.load(done("r2", T0 + 2));
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
}

// ---------------------------------------------------------------- independence

#[test]
fn engines_and_clusters_are_independent() {
    let mut sm = Sm::new();
    // "llama" is a prefix of "llama-7b": the 0x00 separator keeps them apart.
    sm.load(add("llama-7b", "a1", "10.0.0.1", 10, T0));
    sm.load(add("llama-7b", "a2", "10.0.0.2", 20, T0 + 1));
    sm.load(add("llama", "b1", "10.0.0.1", 40, T0 + 2));
    sm.load(add("llama", "b2", "10.0.0.1", 80, T0 + 3));

    assert_eq!(sm.counts("llama-7b", "10.0.0.1"), Some((1, 10)));
    assert_eq!(sm.counts("llama-7b", "10.0.0.2"), Some((1, 20)));
    assert_eq!(sm.counts("llama", "10.0.0.1"), Some((2, 120)));
    assert_eq!(sm.counts("llama", "10.0.0.2"), None);
    assert_eq!(sm.store.load_cluster("llama").unwrap().len(), 1);
    assert_eq!(sm.store.load_cluster("llama-7b").unwrap().len(), 2);
    assert!(sm.store.load_cluster("llama-").unwrap().is_empty());
    assert!(sm.store.load_cluster("unknown").unwrap().is_empty());

    let mut all: Vec<(String, String, u64, u64)> = sm
        .store
        .load_engines()
        .unwrap()
        .into_iter()
        .map(|(c, ip, e)| (c, ip, e.queued_req_num, e.prompt_length))
        .collect();
    all.sort();
    let want: Vec<(String, String, u64, u64)> = [
        ("llama", "10.0.0.1", 2, 120),
        ("llama-7b", "10.0.0.1", 1, 10),
        ("llama-7b", "10.0.0.2", 1, 20),
    ]
    .iter()
    .map(|(c, ip, q, p)| (c.to_string(), ip.to_string(), *q, *p))
    .collect();
    assert_eq!(all, want);

    // Finishing requests of one engine leaves the others alone.
    sm.load(prompt_done("b1", T0 + 4));
    sm.load(done("a1", T0 + 5));
    assert_eq!(sm.counts("llama-7b", "10.0.0.1"), Some((0, 0)));
    assert_eq!(sm.counts("llama-7b", "10.0.0.2"), Some((1, 20)));
    assert_eq!(sm.counts("llama", "10.0.0.1"), Some((2, 80)));
    assert_eq!(
        sm.engine("llama-7b", "10.0.0.2").unwrap().updated_ns,
        T0 + 1,
        "an untouched engine keeps its time"
    );
}

#[test]
fn invalid_commands_change_nothing() {
    let mut sm = Sm::new();
    sm.load(add(C, "r1", IP, 10, T0));
    let before = sm.export();
    let bad = [
        add("", "r2", IP, 1, T0),
        add(C, "", IP, 1, T0),
        add(C, "r2", "", 1, T0),
        add("a\0b", "r2", IP, 1, T0),
        prompt_done("", T0),
        done("", T0),
        done("r1\0", T0),
    ];
    for cmd in bad {
        let r = sm.entry(vec![cmd.clone()]).remove(0);
        assert!(
            matches!(r, Response::Invalid { .. }),
            "{cmd:?} must be invalid, got {r:?}"
        );
    }
    let after = sm.export();
    let strip = |b: &[u8]| -> Vec<(Vec<u8>, Vec<u8>)> {
        records(b)
            .into_iter()
            .filter(|(k, _)| k.first() != Some(&keys::KS_SYS))
            .collect()
    };
    assert_eq!(strip(&before), strip(&after));
}

// ---------------------------------------------------------------- expiry

#[test]
fn expiry_removes_old_requests_with_their_counters() {
    let mut sm = Sm::new();
    sm.load(add(C, "old", IP, 10, T0));
    sm.load(add(C, "old-started", IP, 20, T0 + S));
    sm.load(prompt_done("old-started", T0 + 2 * S));
    sm.load(add(C, "young", IP, 40, T0 + 20 * S));
    assert_eq!(sm.counts(C, IP), Some((3, 50)));

    // At T0 + 30 s with a 15 s ttl the cutoff is T0 + 15 s.
    assert!(sm.due(T0 + 30 * S, 15 * S, 1000 * S, 1000 * S));
    assert_eq!(
        sm.load(expire(T0 + 30 * S, 15 * S, 1000 * S, 1000 * S)),
        expired(2, 0, 0)
    );
    assert_eq!(
        sm.counts(C, IP),
        Some((1, 40)),
        "only the young request is left"
    );
    assert_eq!(sm.requests(), ids(&["young"]));
    assert_eq!(sm.count_in(keys::KS_LOAD_REQ_AGE), 1, "age index follows");
    assert!(sm.tombstones().is_empty(), "expiry leaves no tombstones");
    assert!(!sm.due(T0 + 30 * S, 15 * S, 1000 * S, 1000 * S));

    // Nothing more to do at the same time: a second run removes nothing.
    assert_eq!(
        sm.load(expire(T0 + 30 * S, 15 * S, 1000 * S, 1000 * S)),
        expired(0, 0, 0)
    );
    assert_eq!(sm.counts(C, IP), Some((1, 40)));

    // The young one still finishes normally.
    assert_eq!(sm.load(done("young", T0 + 31 * S)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), Some((0, 0)));
}

#[test]
fn expiry_removes_idle_engines_and_empties_their_cluster() {
    let mut sm = Sm::new();
    sm.load(add("idle", "i1", "10.0.0.1", 10, T0));
    sm.load(done("i1", T0 + S));
    sm.load(add("busy", "b1", "10.0.0.1", 10, T0));
    sm.load(add("busy", "b2", "10.0.0.2", 10, T0));
    sm.load(done("b2", T0 + 20 * S)); // touches 10.0.0.2 late
    assert!(!sm.due(T0 + 10 * S, 1000 * S, 15 * S, 1000 * S));
    assert!(sm.due(T0 + 30 * S, 1000 * S, 15 * S, 1000 * S));

    assert_eq!(
        sm.load(expire(T0 + 30 * S, 1000 * S, 15 * S, 1000 * S)),
        expired(0, 2, 0)
    );
    assert!(
        sm.store.load_cluster("idle").unwrap().is_empty(),
        "a cluster without engines reads as empty"
    );
    assert_eq!(sm.counts("busy", "10.0.0.1"), None);
    assert_eq!(sm.counts("busy", "10.0.0.2"), Some((0, 0)));
    assert_eq!(sm.store.load_engines().unwrap().len(), 1);
    assert!(!sm.due(T0 + 30 * S, 1000 * S, 15 * S, 1000 * S));
}

#[test]
fn expiry_removes_old_tombstones_and_keeps_young_ones() {
    let mut sm = Sm::new();
    assert_eq!(sm.load(done("old-done", T0)), LoadOutcome::Tombstoned);
    assert_eq!(
        sm.load(prompt_done("old-first", T0 + S)),
        LoadOutcome::Tombstoned
    );
    assert_eq!(
        sm.load(done("young-done", T0 + 20 * S)),
        LoadOutcome::Tombstoned
    );
    assert_eq!(
        sm.load(prompt_done("young-first", T0 + 21 * S)),
        LoadOutcome::Tombstoned
    );
    assert!(!sm.due(T0 + 10 * S, 1000 * S, 1000 * S, 15 * S));
    assert!(sm.due(T0 + 30 * S, 1000 * S, 1000 * S, 15 * S));

    assert_eq!(
        sm.load(expire(T0 + 30 * S, 1000 * S, 1000 * S, 15 * S)),
        expired(0, 0, 2)
    );
    assert_eq!(sm.tombstones(), ids(&["young-done", "young-first"]));
    assert_eq!(sm.count_in(keys::KS_LOAD_TOMB_AGE), 2);
    assert!(!sm.due(T0 + 30 * S, 1000 * S, 1000 * S, 15 * S));

    // Expired tombstones no longer act; young ones still do.
    let t = T0 + 31 * S;
    assert_eq!(sm.load(add(C, "old-done", IP, 10, t)), LoadOutcome::Applied);
    assert_eq!(
        sm.load(add(C, "old-first", IP, 20, t)),
        LoadOutcome::Applied
    );
    assert_eq!(
        sm.load(add(C, "young-done", IP, 40, t)),
        LoadOutcome::Cancelled
    );
    assert_eq!(
        sm.load(add(C, "young-first", IP, 80, t)),
        LoadOutcome::Applied
    );
    assert_eq!(sm.counts(C, IP), Some((3, 30)));
    assert!(sm.tombstones().is_empty());
}

#[test]
fn expiry_due_follows_each_age() {
    let mut sm = Sm::new();
    let big = 1000 * S;
    assert!(!sm.due(T0, 0, 0, 0), "an empty store has nothing to expire");
    sm.load(add(C, "r1", IP, 10, T0));
    assert!(!sm.due(T0 + 5 * S, 10 * S, big, big));
    assert!(
        sm.due(T0 + 11 * S, 10 * S, big, big),
        "request past its ttl"
    );
    assert!(!sm.due(T0 + 11 * S, big, big, big));
    assert!(
        sm.due(T0 + 11 * S, big, 10 * S, big),
        "engine idle past its ttl"
    );

    sm.load(done("r1", T0 + 20 * S));
    sm.load(done("ghost", T0 + 20 * S));
    assert!(!sm.due(T0 + 25 * S, big, 10 * S, 10 * S));
    assert!(
        sm.due(T0 + 31 * S, big, big, 10 * S),
        "tombstone past its ttl"
    );
    assert!(
        sm.due(T0 + 31 * S, big, 10 * S, big),
        "engine idle past its ttl"
    );
    assert!(!sm.due(T0 + 31 * S, big, big, big));

    sm.load(expire(T0 + 31 * S, 10 * S, 10 * S, 10 * S));
    assert!(sm.store.load_engines().unwrap().is_empty());
    assert!(sm.tombstones().is_empty());
    assert!(
        !sm.due(T0 + 1000 * S, 10 * S, 10 * S, 10 * S),
        "nothing left"
    );
}

#[test]
fn done_after_the_engine_expired_does_not_resurrect_it() {
    let mut sm = Sm::new();
    sm.load(add(C, "r1", IP, 100, T0));
    sm.load(add(C, "r2", IP, 100, T0));
    // Engine ttl shorter than request ttl: the engine goes, its requests stay.
    assert_eq!(
        sm.load(expire(T0 + 10 * S, 100 * S, 5 * S, 100 * S)),
        expired(0, 1, 0)
    );
    assert_eq!(sm.counts(C, IP), None);
    assert_eq!(sm.load(done("r1", T0 + 11 * S)), LoadOutcome::Applied);
    assert_eq!(sm.counts(C, IP), None, "done must not re-create the engine");
    assert!(sm.store.load_cluster(C).unwrap().is_empty());
    // Nor does the expiry of the other request.
    assert_eq!(
        sm.load(expire(T0 + 200 * S, 100 * S, 500 * S, 100 * S)),
        expired(1, 0, 1),
        "r2 expires, and r1's finish tombstone too"
    );
    assert!(sm.store.load_engines().unwrap().is_empty());
    assert!(sm.requests().is_empty());
}

#[test]
fn regression_prompt_done_after_the_engine_expired_resurrects_it() {
    let mut sm = Sm::new();
    sm.load(add(C, "r1", IP, 100, T0));
    assert_eq!(
        sm.load(expire(T0 + 10 * S, 100 * S, 5 * S, 100 * S)),
        expired(0, 1, 0)
    );
    assert_eq!(sm.counts(C, IP), None);
    assert_eq!(
        sm.load(prompt_done("r1", T0 + 11 * S)),
        LoadOutcome::Applied
    );
    assert_eq!(
        sm.counts(C, IP),
        None,
        "prompt-done must not re-create an expired engine (done does not)"
    );
}

#[test]
fn regression_an_older_stamp_moves_the_engine_time_back() {
    let mut sm = Sm::new();
    // Node A stamps the add at T0 + 10 s; node B, with a slower clock, stamps a
    // later add (and the first token) at T0 + 5 s.
    sm.load(add(C, "r1", IP, 100, T0 + 10 * S));
    sm.load(add(C, "r2", IP, 50, T0 + 5 * S));
    sm.load(prompt_done("r1", T0 + 5 * S));
    let updated = sm.engine(C, IP).unwrap().updated_ns;
    // The engine was changed by a command stamped T0 + 10 s, within 12 s of T0 + 20 s,
    // and both its requests are live: it must stay.
    sm.load(expire(T0 + 20 * S, 1000 * S, 12 * S, 1000 * S));
    assert_eq!(
        sm.counts(C, IP),
        Some((2, 50)),
        "engine expired; its updated_ns was {}s past T0 (newest stamp was T0 + 10 s)",
        updated.saturating_sub(T0) / S
    );
}

// ---------------------------------------------------------------- determinism

/// A workload touching every path, as entries of several commands.
fn workload() -> Vec<Vec<Command>> {
    let mut entries = Vec::new();
    for e in 0..6u64 {
        let mut cmds = Vec::new();
        for j in 0..8u64 {
            let n = e * 8 + j;
            let t = T0 + n * S;
            let id = format!("r{n}");
            let cluster = if n.is_multiple_of(3) { "a" } else { "b" };
            let ip = format!("10.0.0.{}", n % 4);
            cmds.push(match n % 5 {
                0 => done(&format!("early{n}"), t),
                1 => prompt_done(&format!("r{}", n - 1), t),
                _ => add(cluster, &id, &ip, n * 7, t),
            });
            if n % 4 == 3 {
                cmds.push(done(&format!("r{}", n - 2), t));
            }
            if n % 6 == 5 {
                cmds.push(add(cluster, &format!("early{}", n - 5), &ip, 3, t));
            }
        }
        if e % 2 == 1 {
            cmds.push(expire(T0 + (e * 8 + 8) * S, 20 * S, 15 * S, 10 * S));
        }
        entries.push(cmds);
    }
    entries
}

#[test]
fn same_commands_give_byte_equal_snapshots() {
    let entries = workload();
    let (mut one, mut two) = (Sm::new(), Sm::new());
    let mut responses = (Vec::new(), Vec::new());
    // One store applies entry by entry, the other all entries in one apply call.
    for cmds in &entries {
        responses.0.push(one.entry(cmds.clone()));
    }
    let batch: Vec<ApplyEntry> = entries
        .iter()
        .enumerate()
        .map(|(i, cmds)| ApplyEntry {
            index: i as u64 + 1,
            commands: cmds.clone(),
        })
        .collect();
    two.index = batch.len() as u64;
    responses.1 = two
        .store
        .apply(&batch, &two.index.to_be_bytes())
        .expect("apply");
    assert_eq!(responses.0, responses.1, "same responses");
    let (a, b) = (one.export(), two.export());
    assert!(
        records(&a)
            .iter()
            .any(|(k, _)| k[0] == keys::KS_LOAD_ENGINE),
        "the workload leaves engines to compare"
    );
    assert!(
        responses
            .0
            .iter()
            .flatten()
            .any(|r| matches!(r, Response::Load(LoadOutcome::Cancelled))),
        "the workload exercises tombstones"
    );
    assert_eq!(a, b, "byte-equal snapshot exports");
}

/// Engine rows of the tree, from the snapshot export: (cluster, ip, counters).
fn tree_engines(export: &[u8]) -> Vec<(String, String, EngineLoad)> {
    records(export)
        .into_iter()
        .filter(|(k, _)| k[0] == keys::KS_LOAD_ENGINE)
        .map(|(k, v)| {
            let rest = String::from_utf8(k[1..].to_vec()).expect("UTF-8 key");
            let (cluster, ip) = rest.split_once('\0').expect("cluster 0x00 ip");
            let e = metacenter_storage::codec::decode(&v).expect("engine value");
            (cluster.to_string(), ip.to_string(), e)
        })
        .collect()
}

#[test]
fn engine_reads_match_the_tree_after_every_entry_a_reopen_and_a_snapshot_install() {
    let mut sm = Sm::new();
    for cmds in workload() {
        sm.entry(cmds);
        let want = tree_engines(&sm.export());
        assert_eq!(
            sm.store.load_engines().unwrap(),
            want,
            "after entry {}",
            sm.index
        );
        for cluster in ["a", "b"] {
            let listed: Vec<(String, String, EngineLoad)> = (sm.store.load_cluster(cluster))
                .unwrap()
                .into_iter()
                .map(|(ip, e)| (cluster.to_string(), ip, e))
                .collect();
            let of_cluster: Vec<_> = want.iter().filter(|w| w.0 == cluster).cloned().collect();
            assert_eq!(
                listed, of_cluster,
                "cluster {cluster} after entry {}",
                sm.index
            );
        }
    }
    let export = sm.export();
    let want = tree_engines(&export);
    assert!(!want.is_empty(), "the workload leaves engines");

    // A snapshot install replaces the engines (the receiver had others).
    let mut other = Sm::new();
    other.entry(vec![add("elsewhere", "x", "10.9.9.9", 1, T0)]);
    other
        .store
        .import_snapshot(&mut export.as_slice())
        .expect("import");
    assert_eq!(
        other.store.load_engines().unwrap(),
        want,
        "after an install"
    );

    // A reopen reads them back from disk.
    let dir = sm._dir;
    drop(sm.store);
    let reopened = Store::open(dir.path()).expect("reopen");
    assert_eq!(reopened.load_engines().unwrap(), want, "after a reopen");
}
