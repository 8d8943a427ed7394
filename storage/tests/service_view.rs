//! The in-memory service list (`Store::services`) against the tree it copies: after
//! every apply, after a reopen, after a snapshot install or a failed one, it holds
//! exactly what `Store::service` reads from sled; and a list once taken is a snapshot
//! that later applies do not change.

use std::collections::BTreeSet;

use metacenter_storage::{ApplyEntry, Command, Response, ServiceList, Store};
use tempfile::TempDir;

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path()).expect("open store")
}

fn apply(store: &Store, index: u64, commands: Vec<Command>) -> Vec<Response> {
    let entry = ApplyEntry { index, commands };
    let mut out = store.apply(&[entry], b"applied-state").expect("apply");
    out.pop().expect("one response list")
}

fn name(i: u64) -> String {
    format!("svc-{i:02}")
}

/// A deterministic mix of registrations, heartbeats, deregistrations and reaps over
/// 40 names, `n` commands per entry; `step` seeds it.
fn commands(step: u64, n: u64) -> Vec<Command> {
    (0..n)
        .map(|j| {
            let x = (step * 7 + j * 13) * 2_654_435_761 % 1_000_003;
            let (who, now_ms) = (name(x % 40), 1_000 * step + j);
            match x % 10 {
                0..=3 => Command::ServiceRegister {
                    name: who.clone(),
                    info_json: format!(r#"{{"name":"{who}","version":"{step}"}}"#),
                    now_ms,
                    deregister_after_ms: x.is_multiple_of(3).then_some(500),
                },
                4..=7 => Command::ServiceHeartbeat { name: who, now_ms },
                8 => Command::ServiceDeregister { name: who },
                _ => Command::ServiceReap {
                    now_ms,
                    stale_threshold_ms: 1_500,
                },
            }
        })
        .collect()
}

/// The list holds exactly the services the tree holds, with the same registrations.
fn assert_matches_tree(store: &Store, what: &str) {
    let list = store.services();
    for i in 0..40 {
        let n = name(i);
        let stored = store.service(&n).expect("read service");
        assert_eq!(list.get(&n), stored.as_ref(), "{what}: service {n}");
    }
    let names: Vec<&str> = list.iter().map(|(n, _)| n).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "{what}: in name order");
    assert!(
        names.iter().all(|n| n.starts_with("svc-")),
        "{what}: {names:?}"
    );
    assert_eq!(list.len(), names.len());
}

fn names(list: &ServiceList) -> BTreeSet<String> {
    list.iter().map(|(n, _)| n.to_string()).collect()
}

#[test]
fn the_list_follows_every_apply_a_reopen_and_a_snapshot_install() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(&dir);
    assert!(store.services().is_empty());
    let mut index = 0;
    let mut seen_removal = false;
    for step in 1..=120 {
        index += 1;
        let before = store.services().len();
        apply(&store, index, commands(step, 1 + step % 5));
        seen_removal |= store.services().len() < before;
        assert_matches_tree(&store, &format!("entry {index}"));
    }
    assert!(seen_removal, "the mix never removed a service");
    assert!(!store.services().is_empty(), "the mix left no service");

    drop(store);
    store = open(&dir);
    assert_matches_tree(&store, "reopened");

    let mut snap = Vec::new();
    store.export_snapshot(&mut snap).expect("export");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = open(&other_dir);
    apply(&other, 1, commands(999, 5));
    other.import_snapshot(&mut snap.as_slice()).expect("import");
    assert_matches_tree(&other, "installed");
    assert_eq!(names(&other.services()), names(&store.services()));

    // A failed install (a cut snapshot) leaves the list with the tree it keeps.
    apply(&other, index + 1, commands(1_000, 5));
    let kept = names(&other.services());
    let cut = &snap[..snap.len() / 2];
    assert!(other.import_snapshot(&mut &cut[..]).is_err());
    assert_matches_tree(&other, "after a failed install");
    assert_eq!(names(&other.services()), kept);
}

#[test]
fn a_list_once_taken_does_not_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let register = |n: &str, now_ms| Command::ServiceRegister {
        name: n.into(),
        info_json: format!(r#"{{"name":"{n}"}}"#),
        now_ms,
        deregister_after_ms: None,
    };
    apply(&store, 1, vec![register("a", 10), register("b", 10)]);
    let taken = store.services();
    let a_before = taken.get("a").cloned().expect("a");

    let later = vec![
        Command::ServiceHeartbeat {
            name: "a".into(),
            now_ms: 20,
        },
        Command::ServiceDeregister { name: "b".into() },
        register("c", 20),
    ];
    assert_eq!(apply(&store, 2, later), vec![Response::Ok; 3]);

    assert_eq!(names(&taken), BTreeSet::from(["a".into(), "b".into()]));
    assert_eq!(taken.get("a"), Some(&a_before));
    let now = store.services();
    assert_eq!(names(&now), BTreeSet::from(["a".into(), "c".into()]));
    assert_eq!(now.get("a").map(|e| e.last_heartbeat_ms), Some(20));
    assert_eq!(now.get("a").map(|e| e.mod_index), Some(2));
}
