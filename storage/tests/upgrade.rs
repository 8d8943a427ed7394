//! The upgrade steps convert a database in the layout of older versions once and then
//! change nothing: a database with a redo record left by a crash, no services'
//! deadline index, no metadata object count and its raft log in sled trees opens to
//! the state this version would have written, and reopening it twice more leaves the
//! data, the counts and the raft log exactly as they were.

use std::collections::BTreeMap;
use std::path::Path;

use metacenter_storage::{codec, keys, ApplyEntry, Command, Counts, Store, Wal};

fn merge(hash: &str, prop: &str, value: &str) -> Command {
    Command::MetaMerge {
        hash: hash.into(),
        fields: BTreeMap::from([(prop.to_string(), value.to_string())]),
        expect_version: None,
    }
}

fn register(name: &str, now_ms: u64, after: Option<u64>) -> Command {
    Command::ServiceRegister {
        name: name.into(),
        info_json: format!(r#"{{"api":"http://{name}:9000"}}"#),
        now_ms,
        deregister_after_ms: after,
    }
}

/// Metadata objects and services (two with a deadline), one apply call each.
fn populate(store: &Store) {
    let commands = [
        merge("h1", "title", "one"),
        merge("h2", "title", "two"),
        merge("h3", "poster", "cidA"),
        register("a", 1_000, Some(500)),
        register("b", 2_000, None),
        register("c", 1_200, Some(100)),
    ];
    for (i, c) in commands.into_iter().enumerate() {
        let e = ApplyEntry {
            index: i as u64 + 1,
            commands: vec![c],
        };
        store.apply(&[e], b"applied-state").expect("apply");
    }
}

/// A raft log as versions before the WAL kept it in the database.
fn write_legacy_log(store: &Store) {
    let entries = (4..=9).map(|i| (i, format!("entry {i}").into_bytes()));
    store.log_append(entries).expect("log append");
    store
        .set_raft_value("vote", b"vote".to_vec())
        .expect("vote");
    store
        .set_raft_value("committed", b"committed".to_vec())
        .expect("committed");
    let purged = codec::encode(&3u64).expect("encode");
    store.set_raft_value("last_purged", purged).expect("purged");
}

/// The sled database in `dir`, opened directly (as the store opens it: with the
/// segment size its `conf` records, retrying the lock a store just dropped holds).
fn open_sled(dir: &Path) -> sled::Db {
    let conf = std::fs::read(dir.join("conf")).expect("sled conf");
    let segment_size = String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size:")?.trim().parse().ok())
        .expect("segment size");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::Config::new()
            .path(dir)
            .segment_size(segment_size)
            .open()
        {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("lock"), "open sled: {e}");
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(e) => panic!("open sled: {e}"),
        }
    }
}

/// A redo record (see the storage crate's redo module) that writes `key` = `value`.
fn redo_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in [key, value] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// Turns the state machine in `dir` into an older layout: no deadline index, no object
/// count, and the first object written only to a redo record (a crash cut its apply
/// short after the record).
fn make_old(dir: &Path) {
    let db = open_sled(dir);
    let name = db.tree_names().into_iter().find(|n| n.starts_with(b"sm."));
    let sm = db
        .open_tree(name.expect("state-machine tree"))
        .expect("tree");
    for k in sm.scan_prefix([keys::KS_SERVICE_DUE]).keys() {
        sm.remove(k.expect("key")).expect("remove");
    }
    assert!(sm.remove(keys::sys_meta_count()).expect("remove").is_some());
    let first = sm.scan_prefix([keys::KS_META_OBJ]).next();
    let (k, v) = first.expect("an object").expect("read");
    sm.remove(&k).expect("remove");
    sm.insert(keys::sys_redo(), redo_record(&k, &v))
        .expect("insert");
    db.flush().expect("flush");
}

/// What the upgrade must get right and then keep.
#[derive(Debug, PartialEq)]
struct Seen {
    export: Vec<u8>,
    counts: Counts,
    reap_due: [bool; 3],
    /// The WAL's vote, committed and purged values.
    wal_values: [Option<Vec<u8>>; 3],
    wal_entries: Vec<Vec<u8>>,
    legacy_entries: Vec<(u64, Vec<u8>)>,
    legacy_vote: Option<Vec<u8>>,
}

fn seen(store: &Store, wal: &Wal) -> Seen {
    let mut export = Vec::new();
    store.export_snapshot(&mut export).expect("export");
    let due = |now| store.services_reap_due(now, 100).expect("reap due");
    Seen {
        export,
        counts: store.counts().expect("counts"),
        reap_due: [due(1_300), due(1_401), due(1_601)],
        wal_values: [wal.vote(), wal.committed(), wal.purged()],
        wal_entries: wal.range(0, None).expect("wal range"),
        legacy_entries: store.log_range(0, None).expect("log range"),
        legacy_vote: store.raft_value("vote").expect("raft value"),
    }
}

/// Opens the store and its raft log as a node does, running every upgrade step.
fn open(dir: &Path) -> (Store, Wal) {
    let store = Store::open(&dir.join("db")).expect("open store");
    let wal = Wal::open(&dir.join("raft-log")).expect("open wal");
    let purged_index = |id: &[u8]| codec::decode::<u64>(id);
    store
        .upgrade_raft_log(&wal, purged_index)
        .expect("upgrade raft log");
    (store, wal)
}

#[test]
fn an_old_database_is_converted_once_and_reopens_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let current = {
        let store = Store::open(&dir.path().join("db")).expect("open");
        populate(&store);
        let mut export = Vec::new();
        store.export_snapshot(&mut export).expect("export");
        write_legacy_log(&store);
        store.flush_durable().expect("flush");
        export
    };
    make_old(&dir.path().join("db"));

    let mut opens = Vec::new();
    for _ in 0..3 {
        let (store, wal) = open(dir.path());
        opens.push(seen(&store, &wal));
    }
    let first = &opens[0];
    assert_eq!(first.export, current, "the state this version writes");
    let want = Counts {
        metadata: 3,
        services: 3,
        engines: 0,
        metric_metadata: 0,
    };
    assert_eq!(first.counts, want);
    assert_eq!(first.reap_due, [false, true, true]);
    let purged = codec::encode(&3u64).expect("encode");
    let values = [
        Some(b"vote".to_vec()),
        Some(b"committed".to_vec()),
        Some(purged),
    ];
    assert_eq!(
        first.wal_values, values,
        "the raft values moved into the WAL"
    );
    let entries: Vec<Vec<u8>> = (4..=9).map(|i| format!("entry {i}").into_bytes()).collect();
    assert_eq!(first.wal_entries, entries, "the entries moved into the WAL");
    assert_eq!(
        first.legacy_entries,
        Vec::new(),
        "the legacy trees are gone"
    );
    assert_eq!(first.legacy_vote, None);
    assert_eq!(opens[1], opens[0], "the second open changes nothing");
    assert_eq!(opens[2], opens[0], "the third open changes nothing");
}

#[test]
fn a_new_database_gets_no_legacy_log_trees() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    let db = open_sled(&dir.path().join("db"));
    let names: Vec<String> = db
        .tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("raft_")),
        "trees: {names:?}"
    );
}
