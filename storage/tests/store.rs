//! Integration tests of `metacenter-storage`: the deterministic state machine
//! (`Store::apply`), the read side, the raft-log keyspace, snapshots and reopen.

use std::collections::BTreeMap;
use std::path::Path;

use metacenter_storage::{ApplyEntry, Command, Limits, MetaList, MetaObject, Response, Store};
use tempfile::TempDir;

// ---------------------------------------------------------------- helpers

fn open() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

/// Reopens a store whose previous `Store` was just dropped. sled releases its
/// exclusive file lock from background threads shortly after the last handle is
/// dropped, so an immediate in-process reopen can fail with "could not acquire lock"
/// (WouldBlock); retry that specific error for a while.
fn reopen(path: &Path) -> Store {
    let mut attempts = 0;
    loop {
        match Store::open(path) {
            Ok(s) => return s,
            Err(e) if e.to_string().contains("could not acquire lock") && attempts < 200 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(e) => panic!("reopen store after {attempts} retries: {e}"),
        }
    }
}

fn fields(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn merge(hash: &str, kv: &[(&str, &str)], expect: Option<u64>) -> Command {
    Command::MetaMerge {
        hash: hash.into(),
        fields: fields(kv),
        expect_version: expect,
    }
}

fn delete(hash: &str, expect: Option<u64>) -> Command {
    Command::MetaDelete {
        hash: hash.into(),
        expect_version: expect,
    }
}

fn delete_prop(hash: &str, prop: &str, expect: Option<u64>) -> Command {
    Command::MetaDeleteProp {
        hash: hash.into(),
        prop: prop.into(),
        expect_version: expect,
    }
}

fn set_add(hash: &str, prop: &str, member: &str, expect: Option<u64>) -> Command {
    Command::MetaSetAdd {
        hash: hash.into(),
        prop: prop.into(),
        member: member.into(),
        expect_version: expect,
    }
}

fn written(version: u64, updated: u32) -> Response {
    Response::MetaWritten { version, updated }
}

fn added(added: bool, version: u64) -> Response {
    Response::MetaAdded { added, version }
}

fn deleted(deleted: u32) -> Response {
    Response::MetaDeleted { deleted }
}

fn entry(index: u64, commands: Vec<Command>) -> ApplyEntry {
    ApplyEntry { index, commands }
}

/// Applies one command as its own entry and call; the applied state is `b"t"`.
fn apply1(store: &Store, cmd: Command) -> Response {
    let mut out = store
        .apply(&[entry(1, vec![cmd])], b"t")
        .expect("apply must not fail");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 1);
    out.remove(0).remove(0)
}

/// Applies several commands in one entry and returns their responses.
fn apply_entry(store: &Store, cmds: Vec<Command>) -> Vec<Response> {
    let mut out = store
        .apply(&[entry(1, cmds)], b"t")
        .expect("apply must not fail");
    out.remove(0)
}

/// Reads an object with `mod_index` zeroed (it is checked by its own test).
fn get(store: &Store, hash: &str) -> Option<MetaObject> {
    store.meta_get(hash).expect("meta_get").map(|mut o| {
        o.mod_index = 0;
        o
    })
}

fn obj(version: u64, kv: &[(&str, &str)]) -> MetaObject {
    MetaObject {
        version,
        mod_index: 0,
        fields: fields(kv),
    }
}

#[test]
fn mod_index_is_the_entry_index_and_deletions_advance_the_watch_index() {
    let (_d, s) = open();
    s.apply(&[entry(7, vec![merge("h", &[("a", "1")], None)])], b"t")
        .unwrap();
    assert_eq!(s.meta_get("h").unwrap().unwrap().mod_index, 7);
    assert_eq!(s.meta_watch_index("h").unwrap(), 7);
    assert_eq!(s.meta_watch_index("absent").unwrap(), 0);
    s.apply(&[entry(9, vec![delete("h", None)])], b"t").unwrap();
    assert_eq!(s.meta_watch_index("h").unwrap(), 9);
    assert_eq!(s.meta_watch_index("absent").unwrap(), 9);
}

fn list_all(store: &Store) -> Vec<String> {
    store
        .meta_list(None, usize::MAX)
        .expect("meta_list")
        .hash_ids
}

fn export(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    store.export_snapshot(&mut out).expect("export");
    out
}

fn version_of(r: &Response) -> u64 {
    match r {
        Response::MetaWritten { version, .. } | Response::MetaAdded { version, .. } => *version,
        other => panic!("expected a write response, got {other:?}"),
    }
}

fn assert_invalid(r: &Response) {
    assert!(
        matches!(r, Response::Invalid { .. }),
        "expected Invalid, got {r:?}"
    );
}

// ---------------------------------------------------------------- MetaMerge

#[test]
fn merge_creates_object() {
    let (_d, s) = open();
    assert_eq!(get(&s, "h"), None);
    assert_eq!(s.meta_count().unwrap(), 0);

    let r = apply1(&s, merge("h", &[("a", "1"), ("b", "2")], None));
    assert_eq!(r, written(1, 2));

    assert_eq!(get(&s, "h"), Some(obj(1, &[("a", "1"), ("b", "2")])));
    assert_eq!(s.meta_get_prop("h", "a").unwrap(), Some((1, "1".into())));
    assert_eq!(s.meta_get_prop("h", "b").unwrap(), Some((1, "2".into())));
    assert_eq!(s.meta_get_prop("h", "zz").unwrap(), None);
    assert_eq!(s.meta_get_prop("nope", "a").unwrap(), None);
    assert_eq!(s.meta_count().unwrap(), 1);
    assert_eq!(list_all(&s), vec!["h".to_string()]);
}

#[test]
fn merge_into_existing_counts_only_new_or_changed() {
    let (_d, s) = open();
    assert_eq!(
        apply1(&s, merge("h", &[("a", "1"), ("b", "2")], None)),
        written(1, 2)
    );
    // a unchanged, b changed, c new: two updated; a is kept (merge, not replace).
    let r = apply1(&s, merge("h", &[("a", "1"), ("b", "3"), ("c", "4")], None));
    assert_eq!(r, written(2, 2));
    assert_eq!(
        get(&s, "h"),
        Some(obj(2, &[("a", "1"), ("b", "3"), ("c", "4")]))
    );
    // A field absent from the merge is untouched.
    let r = apply1(&s, merge("h", &[("d", "")], None));
    assert_eq!(r, written(3, 1));
    assert_eq!(
        get(&s, "h"),
        Some(obj(3, &[("a", "1"), ("b", "3"), ("c", "4"), ("d", "")]))
    );
    assert_eq!(s.meta_count().unwrap(), 1);
}

#[test]
fn merge_unchanged_fields_reports_zero_updated_and_still_bumps_version() {
    // Current semantics: a merge that changes nothing is still a successful write
    // (MetaWritten), so it gets a new version from the revision counter.
    let (_d, s) = open();
    assert_eq!(apply1(&s, merge("h", &[("a", "1")], None)), written(1, 1));
    let r = apply1(&s, merge("h", &[("a", "1")], None));
    assert_eq!(r, written(2, 0));
    assert_eq!(get(&s, "h"), Some(obj(2, &[("a", "1")])));
}

#[test]
fn version_increases_on_every_mutation_across_calls() {
    let (_d, s) = open();
    let mut last = 0;
    for i in 0..20 {
        let v = version_of(&apply1(&s, merge("h", &[("k", &i.to_string())], None)));
        assert!(v > last, "version {v} not above {last}");
        last = v;
        assert_eq!(get(&s, "h").unwrap().version, v);
    }
    assert_eq!(last, 20);
}

#[test]
fn versions_unique_within_one_entry_and_one_call() {
    let (_d, s) = open();
    let entries = vec![
        entry(
            1,
            vec![
                merge("a", &[("x", "1")], None),
                merge("b", &[("x", "1")], None),
                merge("a", &[("y", "2")], None),
            ],
        ),
        entry(2, vec![]),
        entry(
            3,
            vec![
                set_add("c", "s", "m1", None),
                set_add("c", "s", "m2", None),
                merge("b", &[("x", "2")], None),
            ],
        ),
    ];
    let out = s.apply(&entries, b"state-3").unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], vec![written(1, 1), written(2, 1), written(3, 1)]);
    assert!(out[1].is_empty());
    assert_eq!(out[2], vec![added(true, 4), added(true, 5), written(6, 1)]);

    let versions: Vec<u64> = out.iter().flatten().map(version_of).collect();
    let mut dedup = versions.clone();
    dedup.sort_unstable();
    dedup.dedup();
    assert_eq!(
        dedup.len(),
        versions.len(),
        "duplicate versions: {versions:?}"
    );

    assert_eq!(get(&s, "a"), Some(obj(3, &[("x", "1"), ("y", "2")])));
    assert_eq!(get(&s, "b"), Some(obj(6, &[("x", "2")])));
    assert_eq!(get(&s, "c"), Some(obj(5, &[("s", "m1|m2")])));

    // The counter continues in the next call.
    assert_eq!(apply1(&s, merge("a", &[("z", "3")], None)), written(7, 1));
}

#[test]
fn revision_counter_skips_failed_commands_but_counts_deletes() {
    let (_d, s) = open();
    let out = apply_entry(
        &s,
        vec![
            merge("a", &[("x", "1")], None),       // rev 1
            merge("a", &[("x", "2")], Some(99)),   // mismatch: no rev
            delete("missing", None),               // not found: no rev
            delete_prop("a", "missing", None),     // not found: no rev
            merge("", &[("x", "1")], None),        // invalid: no rev
            set_add("a", "s", "bad|member", None), // invalid: no rev
            Command::Noop,                         // no rev
            merge("b", &[("x", "1")], None),       // rev 2
            delete("b", None),                     // rev 3 (not reported)
            set_add("a", "x", "1", None),          // already member: no rev
            merge("a", &[("y", "1")], None),       // rev 4
        ],
    );
    assert_eq!(
        out,
        vec![
            written(1, 1),
            Response::VersionMismatch { current: 1 },
            Response::NotFound,
            Response::NotFound,
            out[4].clone(),
            out[5].clone(),
            Response::Ok,
            written(2, 1),
            deleted(1),
            added(false, 1),
            written(4, 1),
        ]
    );
    assert_invalid(&out[4]);
    assert_invalid(&out[5]);
}

#[test]
fn commands_in_one_entry_read_their_own_writes() {
    let (_d, s) = open();
    let out = apply_entry(
        &s,
        vec![
            merge("h", &[("a", "1")], Some(0)),
            merge("h", &[("b", "2")], Some(1)),
            delete_prop("h", "a", Some(2)),
            set_add("h", "b", "3", Some(3)),
            delete("h", Some(4)),
            merge("h", &[("c", "1")], Some(0)),
        ],
    );
    assert_eq!(
        out,
        vec![
            written(1, 1),
            written(2, 1),
            deleted(1),
            added(true, 4),
            deleted(1),
            written(6, 1),
        ]
    );
    assert_eq!(get(&s, "h"), Some(obj(6, &[("c", "1")])));
}

#[test]
fn noop_and_blank_entries() {
    let (_d, s) = open();
    let out = s
        .apply(&[entry(1, vec![]), entry(2, vec![Command::Noop])], b"n")
        .unwrap();
    assert_eq!(out, vec![vec![], vec![Response::Ok]]);
    assert_eq!(s.meta_count().unwrap(), 0);
    assert_eq!(s.applied_state().unwrap(), Some(b"n".to_vec()));
    assert_eq!(s.apply(&[], b"empty").unwrap(), Vec::<Vec<Response>>::new());
    assert_eq!(s.applied_state().unwrap(), Some(b"empty".to_vec()));
    // Nothing consumed a revision.
    assert_eq!(apply1(&s, merge("h", &[("a", "1")], None)), written(1, 1));
}

// ---------------------------------------------------------------- expect_version

#[test]
fn expect_version_mismatch_writes_nothing() {
    let (_d, s) = open();
    assert_eq!(apply1(&s, merge("h", &[("a", "1")], None)), written(1, 1));
    let before = get(&s, "h");

    let cmds = vec![
        merge("h", &[("a", "2"), ("b", "2")], Some(7)),
        merge("h", &[("a", "2")], Some(0)),
        delete("h", Some(2)),
        delete_prop("h", "a", Some(5)),
        set_add("h", "a", "new", Some(3)),
        set_add("h", "a", "1", Some(3)), // mismatch wins even if already a member
    ];
    for c in cmds {
        assert_eq!(
            apply1(&s, c.clone()),
            Response::VersionMismatch { current: 1 },
            "{c:?}"
        );
        assert_eq!(get(&s, "h"), before, "{c:?} changed the object");
    }
    // No revision was consumed by the mismatches.
    assert_eq!(apply1(&s, merge("h", &[("a", "3")], None)), written(2, 1));
}

#[test]
fn expect_version_on_absent_object() {
    let (_d, s) = open();
    // Non-zero expectation on an absent object: mismatch, current 0, nothing created.
    assert_eq!(
        apply1(&s, merge("h", &[("a", "1")], Some(5))),
        Response::VersionMismatch { current: 0 }
    );
    assert_eq!(
        apply1(&s, set_add("h", "a", "1", Some(5))),
        Response::VersionMismatch { current: 0 }
    );
    assert_eq!(
        apply1(&s, delete("h", Some(5))),
        Response::VersionMismatch { current: 0 }
    );
    assert_eq!(
        apply1(&s, delete_prop("h", "a", Some(5))),
        Response::VersionMismatch { current: 0 }
    );
    assert_eq!(get(&s, "h"), None);
    assert_eq!(s.meta_count().unwrap(), 0);

    // Some(0) = create-if-absent.
    assert_eq!(
        apply1(&s, merge("h", &[("a", "1")], Some(0))),
        written(1, 1)
    );
    assert_eq!(get(&s, "h"), Some(obj(1, &[("a", "1")])));
    // A second create-if-absent now fails.
    assert_eq!(
        apply1(&s, merge("h", &[("a", "2")], Some(0))),
        Response::VersionMismatch { current: 1 }
    );
    assert_eq!(get(&s, "h"), Some(obj(1, &[("a", "1")])));

    // Some(0) for set-add on an absent object creates it too.
    assert_eq!(apply1(&s, set_add("g", "s", "m", Some(0))), added(true, 2));
    // Some(0) for a delete on an absent object matches, then reports NotFound.
    assert_eq!(apply1(&s, delete("zz", Some(0))), Response::NotFound);
    assert_eq!(
        apply1(&s, delete_prop("zz", "p", Some(0))),
        Response::NotFound
    );
}

#[test]
fn expect_version_correct_succeeds_for_every_command() {
    let (_d, s) = open();
    assert_eq!(apply1(&s, merge("h", &[("a", "1")], None)), written(1, 1));
    assert_eq!(
        apply1(&s, merge("h", &[("b", "2")], Some(1))),
        written(2, 1)
    );
    assert_eq!(apply1(&s, set_add("h", "s", "m", Some(2))), added(true, 3));
    assert_eq!(apply1(&s, set_add("h", "s", "m", Some(3))), added(false, 3));
    assert_eq!(apply1(&s, delete_prop("h", "a", Some(3))), deleted(1));
    assert_eq!(get(&s, "h"), Some(obj(4, &[("b", "2"), ("s", "m")])));
    assert_eq!(apply1(&s, delete("h", Some(4))), deleted(2));
    assert_eq!(get(&s, "h"), None);
}

// ---------------------------------------------------------------- MetaDelete

#[test]
fn delete_removes_object_and_all_properties() {
    let (_d, s) = open();
    apply1(&s, merge("h", &[("a", "1"), ("b", "2"), ("c", "3")], None));
    apply1(&s, merge("other", &[("a", "1")], None));
    assert_eq!(s.meta_count().unwrap(), 2);

    assert_eq!(apply1(&s, delete("h", None)), deleted(3));
    assert_eq!(get(&s, "h"), None);
    assert_eq!(s.meta_get_prop("h", "a").unwrap(), None);
    assert_eq!(list_all(&s), vec!["other".to_string()]);
    assert_eq!(s.meta_count().unwrap(), 1);
    assert_eq!(get(&s, "other"), Some(obj(2, &[("a", "1")])));

    // Deleting again, or an object that never existed: NotFound.
    assert_eq!(apply1(&s, delete("h", None)), Response::NotFound);
    assert_eq!(apply1(&s, delete("never", None)), Response::NotFound);
}

#[test]
fn delete_then_recreate_starts_fresh() {
    let (_d, s) = open();
    apply1(&s, merge("h", &[("a", "1"), ("b", "2")], None));
    assert_eq!(apply1(&s, delete("h", None)), deleted(2));
    // Revision 2 went to the delete; the new object gets 3 and only its own field.
    assert_eq!(apply1(&s, merge("h", &[("c", "3")], None)), written(3, 1));
    assert_eq!(get(&s, "h"), Some(obj(3, &[("c", "3")])));
    // Property count restarted: deleting the only property removes the object.
    assert_eq!(apply1(&s, delete_prop("h", "c", None)), deleted(1));
    assert_eq!(get(&s, "h"), None);
}

// ---------------------------------------------------------------- MetaDeleteProp

#[test]
fn delete_prop_removes_one_property() {
    let (_d, s) = open();
    apply1(&s, merge("h", &[("a", "1"), ("b", "2"), ("c", "3")], None));
    assert_eq!(apply1(&s, delete_prop("h", "b", None)), deleted(1));
    assert_eq!(get(&s, "h"), Some(obj(2, &[("a", "1"), ("c", "3")])));
    assert_eq!(s.meta_get_prop("h", "b").unwrap(), None);
    assert_eq!(s.meta_get_prop("h", "a").unwrap(), Some((2, "1".into())));
    assert_eq!(apply1(&s, delete_prop("h", "a", None)), deleted(1));
    assert_eq!(get(&s, "h"), Some(obj(3, &[("c", "3")])));
    assert_eq!(s.meta_count().unwrap(), 1);
}

#[test]
fn delete_last_prop_removes_object() {
    let (_d, s) = open();
    apply1(&s, merge("h", &[("a", "1"), ("b", "2")], None));
    assert_eq!(apply1(&s, delete_prop("h", "a", None)), deleted(1));
    assert_eq!(apply1(&s, delete_prop("h", "b", None)), deleted(1));
    assert_eq!(get(&s, "h"), None);
    assert!(list_all(&s).is_empty());
    assert_eq!(s.meta_count().unwrap(), 0);
    assert_eq!(apply1(&s, delete("h", None)), Response::NotFound);
    // The last-prop removal consumed revision 3; a new write gets 4.
    assert_eq!(apply1(&s, merge("x", &[("a", "1")], None)), written(4, 1));
}

#[test]
fn delete_prop_not_found() {
    let (_d, s) = open();
    assert_eq!(apply1(&s, delete_prop("h", "a", None)), Response::NotFound);
    apply1(&s, merge("h", &[("a", "1")], None));
    assert_eq!(apply1(&s, delete_prop("h", "b", None)), Response::NotFound);
    // Nothing changed, version included.
    assert_eq!(get(&s, "h"), Some(obj(1, &[("a", "1")])));
    assert_eq!(apply1(&s, merge("h", &[("a", "2")], None)), written(2, 1));
}

// ---------------------------------------------------------------- MetaSetAdd

#[test]
fn set_add_builds_pipe_delimited_set() {
    let (_d, s) = open();
    assert_eq!(apply1(&s, set_add("h", "tags", "a", None)), added(true, 1));
    assert_eq!(get(&s, "h"), Some(obj(1, &[("tags", "a")])));
    assert_eq!(apply1(&s, set_add("h", "tags", "b", None)), added(true, 2));
    assert_eq!(apply1(&s, set_add("h", "tags", "c", None)), added(true, 3));
    assert_eq!(get(&s, "h"), Some(obj(3, &[("tags", "a|b|c")])));

    // Existing member: added false, current version, no write.
    assert_eq!(apply1(&s, set_add("h", "tags", "b", None)), added(false, 3));
    assert_eq!(get(&s, "h"), Some(obj(3, &[("tags", "a|b|c")])));
    // Membership is exact, not substring: "ab" is new although "a" and "b" exist.
    assert_eq!(apply1(&s, set_add("h", "tags", "ab", None)), added(true, 4));
    assert_eq!(get(&s, "h"), Some(obj(4, &[("tags", "a|b|c|ab")])));

    // A second property of the same object.
    assert_eq!(apply1(&s, set_add("h", "other", "a", None)), added(true, 5));
    assert_eq!(
        get(&s, "h"),
        Some(obj(5, &[("other", "a"), ("tags", "a|b|c|ab")]))
    );
}

#[test]
fn set_add_onto_merged_values() {
    let (_d, s) = open();
    apply1(&s, merge("h", &[("s", "x"), ("e", "")], None));
    assert_eq!(apply1(&s, set_add("h", "s", "y", None)), added(true, 2));
    assert_eq!(apply1(&s, set_add("h", "e", "y", None)), added(true, 3));
    assert_eq!(get(&s, "h"), Some(obj(3, &[("e", "y"), ("s", "x|y")])));
    // The object still has exactly two properties: deleting both removes it.
    assert_eq!(apply1(&s, delete_prop("h", "s", None)), deleted(1));
    assert_eq!(apply1(&s, delete_prop("h", "e", None)), deleted(1));
    assert_eq!(get(&s, "h"), None);
}

#[test]
fn set_add_member_with_pipe_or_empty_is_invalid() {
    let (_d, s) = open();
    apply1(&s, set_add("h", "s", "a", None));
    for m in ["a|b", "|", "b|", "", "x\0y"] {
        let r = apply1(&s, set_add("h", "s", m, None));
        assert_invalid(&r);
        assert_eq!(get(&s, "h"), Some(obj(1, &[("s", "a")])), "member {m:?}");
    }
    // Invalid on an absent object creates nothing.
    assert_invalid(&apply1(&s, set_add("new", "s", "a|b", None)));
    assert_eq!(get(&s, "new"), None);
}

#[test]
fn set_add_over_max_value_is_invalid() {
    let (_d, s) = open();
    let big = "a".repeat(Limits::MAX_VALUE - 1);
    assert_eq!(
        apply1(&s, merge("h", &[("s", big.as_str())], None)),
        written(1, 1)
    );
    // "aaaa…a|b" would be MAX_VALUE + 1 bytes.
    assert_invalid(&apply1(&s, set_add("h", "s", "b", None)));
    assert_eq!(get(&s, "h").unwrap().fields["s"], big);
    assert_eq!(get(&s, "h").unwrap().version, 1);
    // Exactly MAX_VALUE is fine.
    let (_d2, s2) = open();
    let v = "a".repeat(Limits::MAX_VALUE - 2);
    apply1(&s2, merge("h", &[("s", v.as_str())], None));
    assert_eq!(apply1(&s2, set_add("h", "s", "b", None)), added(true, 2));
    assert_eq!(get(&s2, "h").unwrap().fields["s"].len(), Limits::MAX_VALUE);
}

// ---------------------------------------------------------------- Invalid commands

#[test]
fn invalid_commands_write_nothing() {
    let (_d, s) = open();
    let long_key = "k".repeat(Limits::MAX_KEY + 1);
    let long_value = "v".repeat(Limits::MAX_VALUE + 1);
    let cmds = vec![
        merge("", &[("a", "1")], None),
        merge("h\0x", &[("a", "1")], None),
        merge(&long_key, &[("a", "1")], None),
        merge("h", &[("", "1")], None),
        merge("h", &[("a\0", "1")], None),
        merge("h", &[(long_key.as_str(), "1")], None),
        merge("h", &[("a", long_value.as_str())], None),
        // One bad field spoils the whole command.
        merge("h", &[("good", "1"), ("bad", long_value.as_str())], None),
        merge("h", &[("good", "1"), ("", "1")], None),
        delete("", None),
        delete("h\0", None),
        delete(&long_key, None),
        delete_prop("", "a", None),
        delete_prop("h", "", None),
        delete_prop("h", "a\0b", None),
        delete_prop("h", &long_key, None),
        set_add("", "s", "m", None),
        set_add("h\0", "s", "m", None),
        set_add("h", "", "m", None),
        set_add("h", &long_key, "m", None),
        set_add("h", "s", &long_key, None),
        set_add("h", "s", "", None),
        set_add("h", "s", "a|b", None),
    ];
    let out = s
        .apply(&[entry(1, cmds.clone())], b"after-invalid")
        .unwrap();
    assert_eq!(out[0].len(), cmds.len());
    for (c, r) in cmds.iter().zip(&out[0]) {
        assert!(matches!(r, Response::Invalid { .. }), "{c:?} -> {r:?}");
    }
    assert_eq!(s.meta_count().unwrap(), 0);
    assert!(list_all(&s).is_empty());
    assert_eq!(get(&s, "h"), None);
    assert_eq!(get(&s, "h\0x"), None);
    // The applied state is still recorded, and no revision was consumed.
    assert_eq!(s.applied_state().unwrap(), Some(b"after-invalid".to_vec()));
    assert_eq!(apply1(&s, merge("h", &[("a", "1")], None)), written(1, 1));

    // Invalid commands against an existing object leave it untouched.
    let before = get(&s, "h");
    for c in [
        merge("h", &[("a", long_value.as_str())], None),
        merge("h", &[("b", "1"), ("", "1")], None),
        delete_prop("h", "", None),
        set_add("h", "a", "x|y", None),
    ] {
        assert_invalid(&apply1(&s, c));
        assert_eq!(get(&s, "h"), before);
    }
}

#[test]
fn limits_are_inclusive() {
    let (_d, s) = open();
    let key = "k".repeat(Limits::MAX_KEY);
    let value = "v".repeat(Limits::MAX_VALUE);
    assert_eq!(
        apply1(&s, merge(&key, &[(key.as_str(), value.as_str())], None)),
        written(1, 1)
    );
    let o = get(&s, &key).unwrap();
    assert_eq!(o.fields[&key], value);
    assert_eq!(apply1(&s, set_add(&key, "s", &key, None)), added(true, 2));
    assert_eq!(list_all(&s), vec![key.clone()]);
}

#[test]
fn max_props_enforced() {
    let (_d, s) = open();
    // More than MAX_PROPS fields in one command: invalid.
    let too_many: BTreeMap<String, String> = (0..=Limits::MAX_PROPS)
        .map(|i| (format!("p{i:05}"), "v".to_string()))
        .collect();
    assert_invalid(&apply1(
        &s,
        Command::MetaMerge {
            hash: "h".into(),
            fields: too_many,
            expect_version: None,
        },
    ));
    assert_eq!(get(&s, "h"), None);

    // Exactly MAX_PROPS: fine.
    let full: BTreeMap<String, String> = (0..Limits::MAX_PROPS)
        .map(|i| (format!("p{i:05}"), "v".to_string()))
        .collect();
    let r = apply1(
        &s,
        Command::MetaMerge {
            hash: "h".into(),
            fields: full,
            expect_version: None,
        },
    );
    assert_eq!(r, written(1, Limits::MAX_PROPS as u32));
    // One more property, by merge or set-add: invalid, nothing written.
    assert_invalid(&apply1(&s, merge("h", &[("extra", "1")], None)));
    assert_invalid(&apply1(&s, set_add("h", "extra", "m", None)));
    let o = get(&s, "h").unwrap();
    assert_eq!(o.version, 1);
    assert_eq!(o.fields.len(), Limits::MAX_PROPS);
    assert!(!o.fields.contains_key("extra"));
    // Changing existing properties is still allowed.
    assert_eq!(
        apply1(&s, merge("h", &[("p00000", "w")], None)),
        written(2, 1)
    );
    assert_eq!(
        apply1(&s, set_add("h", "p00001", "m", None)),
        added(true, 3)
    );
    // After deleting one, a new one fits again.
    assert_eq!(apply1(&s, delete_prop("h", "p00002", None)), deleted(1));
    assert_eq!(
        apply1(&s, merge("h", &[("extra", "1")], None)),
        written(5, 1)
    );
    assert_eq!(
        apply1(&s, delete("h", None)),
        deleted(Limits::MAX_PROPS as u32)
    );
}

// ---------------------------------------------------------------- meta_list

#[test]
fn meta_list_pagination() {
    let (_d, s) = open();
    let ids = ["d", "b", "abc", "a", "ab", "c", "a/b", "B", "é"];
    for id in ids {
        apply1(&s, merge(id, &[("k", id)], None));
    }
    let mut sorted: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    sorted.sort(); // String order is byte order.
    assert_eq!(list_all(&s), sorted);
    assert_eq!(
        s.meta_list(None, sorted.len()).unwrap(),
        MetaList {
            hash_ids: sorted.clone(),
            next: None
        }
    );

    // Walk with pages of 2.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s.meta_list(after.as_deref(), 2).unwrap();
        assert!(page.hash_ids.len() <= 2);
        pages += 1;
        seen.extend(page.hash_ids.iter().cloned());
        match page.next {
            Some(n) => {
                assert_eq!(Some(&n), page.hash_ids.last());
                after = Some(n);
            }
            None => break,
        }
        assert!(pages < 100);
    }
    assert_eq!(seen, sorted);
    assert_eq!(pages, sorted.len().div_ceil(2));

    // First page.
    let p = s.meta_list(None, 3).unwrap();
    assert_eq!(p.hash_ids, sorted[..3].to_vec());
    assert_eq!(p.next.as_deref(), Some(sorted[2].as_str()));

    // `after` is exclusive; "ab" is followed by "abc", not by itself.
    let p = s.meta_list(Some("ab"), 1).unwrap();
    assert_eq!(p.hash_ids, vec!["abc".to_string()]);
    assert_eq!(p.next.as_deref(), Some("abc"));
    // `after` need not exist.
    let p = s.meta_list(Some("aa"), 100).unwrap();
    assert_eq!(p.hash_ids, vec!["ab", "abc", "b", "c", "d", "é"]);
    assert_eq!(p.next, None);
    // After the last id: empty.
    let p = s.meta_list(Some("é"), 10).unwrap();
    assert_eq!(
        p,
        MetaList {
            hash_ids: vec![],
            next: None
        }
    );
    // Byte order: "é" (0xC3 0xA9) sorts after "zzz".
    let p = s.meta_list(Some("zzz"), 10).unwrap();
    assert_eq!(p.hash_ids, vec!["é"]);
    assert!(s
        .meta_list(Some("\u{10FFFF}"), 10)
        .unwrap()
        .hash_ids
        .is_empty());
    // Exactly filling the page: no next.
    let p = s.meta_list(Some("c"), 2).unwrap();
    assert_eq!(p.hash_ids, vec!["d", "é"]);
    assert_eq!(p.next, None);
    // Limit 0 is taken as 1, so `next` still tells that more ids follow.
    let p = s.meta_list(None, 0).unwrap();
    assert_eq!(p.hash_ids.len(), 1);
    assert!(p.next.is_some());

    // Deleted objects disappear from the listing.
    apply1(&s, delete("ab", None));
    apply1(&s, delete_prop("c", "k", None));
    let p = s.meta_list(Some("a/b"), 3).unwrap();
    assert_eq!(p.hash_ids, vec!["abc", "b", "d"]);
    assert_eq!(p.next.as_deref(), Some("d"));
    assert_eq!(s.meta_count().unwrap() as usize, sorted.len() - 2);
}

#[test]
fn meta_list_empty_store() {
    let (_d, s) = open();
    assert_eq!(
        s.meta_list(None, 10).unwrap(),
        MetaList {
            hash_ids: vec![],
            next: None
        }
    );
    assert_eq!(s.meta_list(Some("x"), 10).unwrap().hash_ids.len(), 0);
}

#[test]
fn prefix_hashes_do_not_leak_properties() {
    let (_d, s) = open();
    apply1(&s, merge("ab", &[("x", "1")], None));
    apply1(&s, merge("abc", &[("y", "2"), ("x", "3")], None));
    apply1(&s, merge("a", &[("z", "4")], None));

    assert_eq!(get(&s, "ab"), Some(obj(1, &[("x", "1")])));
    assert_eq!(get(&s, "abc"), Some(obj(2, &[("x", "3"), ("y", "2")])));
    assert_eq!(get(&s, "a"), Some(obj(3, &[("z", "4")])));
    assert_eq!(s.meta_get_prop("ab", "y").unwrap(), None);
    assert_eq!(s.meta_get_prop("a", "x").unwrap(), None);
    assert_eq!(list_all(&s), vec!["a", "ab", "abc"]);

    // Deleting "ab" counts and removes only its own property.
    assert_eq!(apply1(&s, delete("ab", None)), deleted(1));
    assert_eq!(get(&s, "abc"), Some(obj(2, &[("x", "3"), ("y", "2")])));
    assert_eq!(get(&s, "a"), Some(obj(3, &[("z", "4")])));
    // "ab" has no property y even though "abc" does.
    apply1(&s, merge("ab", &[("q", "1")], None));
    assert_eq!(apply1(&s, delete_prop("ab", "y", None)), Response::NotFound);
    assert_eq!(apply1(&s, delete("a", None)), deleted(1));
    assert_eq!(get(&s, "ab"), Some(obj(5, &[("q", "1")])));
    assert_eq!(get(&s, "abc"), Some(obj(2, &[("x", "3"), ("y", "2")])));
}

#[test]
fn property_names_with_separator_like_bytes() {
    let (_d, s) = open();
    // Property names may contain '/', '|', high bytes and control chars other than NUL.
    apply1(
        &s,
        merge(
            "h",
            &[("a/b", "1"), ("x|y", "2"), ("\u{1}", "3"), ("ü", "4")],
            None,
        ),
    );
    apply1(&s, merge("h\u{1}", &[("a", "5")], None));
    assert_eq!(
        get(&s, "h"),
        Some(obj(
            1,
            &[("a/b", "1"), ("x|y", "2"), ("\u{1}", "3"), ("ü", "4")]
        ))
    );
    assert_eq!(get(&s, "h\u{1}"), Some(obj(2, &[("a", "5")])));
    assert_eq!(apply1(&s, delete("h", None)), deleted(4));
    assert_eq!(get(&s, "h\u{1}"), Some(obj(2, &[("a", "5")])));
}

// ---------------------------------------------------------------- applied_state

#[test]
fn applied_state_written_with_data() {
    let (_d, s) = open();
    assert_eq!(s.applied_state().unwrap(), None);
    let out = s
        .apply(&[entry(1, vec![merge("h", &[("a", "1")], None)])], b"x")
        .unwrap();
    assert_eq!(out, vec![vec![written(1, 1)]]);
    assert_eq!(s.applied_state().unwrap(), Some(b"x".to_vec()));
    assert!(get(&s, "h").is_some());

    // Even an apply whose commands all fail records the applied state.
    s.apply(&[entry(2, vec![delete("missing", None)])], b"y")
        .unwrap();
    assert_eq!(s.applied_state().unwrap(), Some(b"y".to_vec()));
    // Arbitrary (binary, empty) bytes round-trip.
    s.apply(&[], &[0, 255, 0]).unwrap();
    assert_eq!(s.applied_state().unwrap(), Some(vec![0, 255, 0]));
    s.apply(&[], b"").unwrap();
    assert_eq!(s.applied_state().unwrap(), Some(vec![]));
}

#[test]
fn clones_share_state() {
    let (_d, s) = open();
    let c = s.clone();
    apply1(&s, merge("h", &[("a", "1")], None));
    assert_eq!(get(&c, "h"), Some(obj(1, &[("a", "1")])));
    assert_eq!(apply1(&c, merge("h", &[("b", "2")], None)), written(2, 1));
    assert_eq!(get(&s, "h"), Some(obj(2, &[("a", "1"), ("b", "2")])));
}

// ---------------------------------------------------------------- reopen

#[test]
fn reopen_preserves_data_applied_state_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        s.apply(
            &[
                entry(1, vec![merge("h", &[("a", "1"), ("b", "2")], None)]),
                entry(2, vec![set_add("g", "s", "m", None)]),
            ],
            b"applied-2",
        )
        .unwrap();
        s.log_append([(1, b"e1".to_vec()), (2, b"e2".to_vec())])
            .unwrap();
        s.set_raft_value("vote", b"v".to_vec()).unwrap();
        // Small applies stay in sled's buffer until a flush (the raft log is what
        // makes them durable); dropping the store flushes too.
        s.flush_durable().unwrap();
        assert!(s.size_on_disk() > 0);
    }
    let s = reopen(dir.path());
    assert_eq!(get(&s, "h"), Some(obj(1, &[("a", "1"), ("b", "2")])));
    assert_eq!(get(&s, "g"), Some(obj(2, &[("s", "m")])));
    assert_eq!(s.applied_state().unwrap(), Some(b"applied-2".to_vec()));
    assert_eq!(list_all(&s), vec!["g", "h"]);
    assert_eq!(
        s.log_range(0, None).unwrap(),
        vec![(1, b"e1".to_vec()), (2, b"e2".to_vec())]
    );
    assert_eq!(s.raft_value("vote").unwrap(), Some(b"v".to_vec()));
    // The revision counter survives: the next version is 3, not 1.
    assert_eq!(apply1(&s, merge("h", &[("c", "3")], None)), written(3, 1));
    drop(s);

    let s = reopen(dir.path());
    assert_eq!(
        get(&s, "h"),
        Some(obj(3, &[("a", "1"), ("b", "2"), ("c", "3")]))
    );
    assert_eq!(s.applied_state().unwrap(), Some(b"t".to_vec()));
}

#[test]
fn reopen_after_snapshot_import_uses_new_generation() {
    let (_da, a) = open();
    a.apply(
        &[entry(1, vec![merge("from-a", &[("k", "a")], None)])],
        b"a-state",
    )
    .unwrap();
    let snap = export(&a);

    let dir = tempfile::tempdir().unwrap();
    {
        let b = Store::open(dir.path()).unwrap();
        b.apply(
            &[entry(1, vec![merge("from-b", &[("k", "b")], None)])],
            b"b-state",
        )
        .unwrap();
        b.import_snapshot(&mut snap.as_slice()).unwrap();
        assert_eq!(list_all(&b), vec!["from-a"]);
    }
    let b = reopen(dir.path());
    assert_eq!(list_all(&b), vec!["from-a"]);
    assert_eq!(get(&b, "from-b"), None);
    assert_eq!(b.applied_state().unwrap(), Some(b"a-state".to_vec()));
    assert_eq!(export(&b), snap);
    // Writes after reopen land in the imported generation and survive another reopen.
    assert_eq!(
        apply1(&b, merge("after", &[("k", "1")], None)),
        written(2, 1)
    );
    drop(b);
    let b = reopen(dir.path());
    assert_eq!(list_all(&b), vec!["after", "from-a"]);
}

// ---------------------------------------------------------------- snapshots

fn populate(s: &Store) {
    s.apply(
        &[
            entry(
                1,
                vec![
                    merge("obj1", &[("a", "1"), ("b", "2")], None),
                    merge("obj2", &[("x", "y")], None),
                ],
            ),
            entry(
                2,
                vec![
                    set_add("obj3", "tags", "t1", None),
                    set_add("obj3", "tags", "t2", None),
                    merge("ab", &[("p", "q")], None),
                    merge("abc", &[("p", "r")], None),
                ],
            ),
            entry(
                3,
                vec![
                    delete_prop("obj1", "b", None),
                    merge("gone", &[("z", "z")], None),
                ],
            ),
            entry(4, vec![delete("gone", None)]),
        ],
        b"applied-4",
    )
    .unwrap();
}

fn assert_same_state(a: &Store, b: &Store) {
    let ids = list_all(a);
    assert_eq!(list_all(b), ids);
    for id in &ids {
        assert_eq!(get(a, id), get(b, id), "object {id}");
    }
    assert_eq!(a.meta_count().unwrap(), b.meta_count().unwrap());
    assert_eq!(a.applied_state().unwrap(), b.applied_state().unwrap());
    assert_eq!(export(a), export(b));
}

#[test]
fn snapshot_round_trip() {
    let (_da, a) = open();
    populate(&a);
    let mut snap = Vec::new();
    let n_out = a.export_snapshot(&mut snap).unwrap();
    assert!(snap.starts_with(b"MCSNAP1\n"));
    assert!(n_out > 0);

    // B has unrelated state that the import must replace entirely.
    let (_db, b) = open();
    b.apply(
        &[entry(
            9,
            vec![
                merge("obj1", &[("stale", "1")], None),
                merge("only-in-b", &[("k", "v")], None),
            ],
        )],
        b"b-state",
    )
    .unwrap();
    let n_in = b.import_snapshot(&mut snap.as_slice()).unwrap();
    assert_eq!(n_in, n_out);

    assert_same_state(&a, &b);
    assert_eq!(get(&b, "only-in-b"), None);
    // obj1 lost "b" in entry 3 (revision 7); B's stale field is gone.
    assert_eq!(get(&b, "obj1"), Some(obj(7, &[("a", "1")])));
    assert_eq!(get(&b, "gone"), None);
    assert_eq!(b.applied_state().unwrap(), Some(b"applied-4".to_vec()));
    assert_eq!(list_all(&b), vec!["ab", "abc", "obj1", "obj2", "obj3"]);

    // Both continue identically: the revision counter is part of the snapshot.
    let cmds = vec![
        merge("obj2", &[("x", "z")], None),
        set_add("obj3", "tags", "t3", None),
        delete("ab", None),
    ];
    let ra = a.apply(&[entry(5, cmds.clone())], b"applied-5").unwrap();
    let rb = b.apply(&[entry(5, cmds)], b"applied-5").unwrap();
    assert_eq!(ra, rb);
    assert_same_state(&a, &b);
}

#[test]
fn snapshot_of_empty_store() {
    let (_da, a) = open();
    let snap = export(&a);
    assert_eq!(snap, [b"MCSNAP1\n".as_slice(), &[0, 0, 0, 0]].concat());

    let (_db, b) = open();
    populate(&b);
    assert_eq!(b.import_snapshot(&mut snap.as_slice()).unwrap(), 0);
    assert!(list_all(&b).is_empty());
    assert_eq!(b.meta_count().unwrap(), 0);
    assert_eq!(b.applied_state().unwrap(), None);
    assert_eq!(apply1(&b, merge("h", &[("a", "1")], None)), written(1, 1));
}

#[test]
fn snapshot_import_into_clone_is_visible_to_all_clones() {
    let (_da, a) = open();
    populate(&a);
    let snap = export(&a);
    let (_db, b) = open();
    let b2 = b.clone();
    b.import_snapshot(&mut snap.as_slice()).unwrap();
    assert_same_state(&a, &b2);
}

#[test]
fn snapshot_import_repeated() {
    let (_da, a) = open();
    populate(&a);
    let snap = export(&a);
    let (_db, b) = open();
    for _ in 0..3 {
        b.import_snapshot(&mut snap.as_slice()).unwrap();
        assert_same_state(&a, &b);
        apply1(&b, merge("local", &[("x", "1")], None));
    }
}

#[test]
fn snapshot_import_garbage_leaves_state_untouched() {
    let (_da, a) = open();
    populate(&a);
    let good = export(&a);

    let (_db, b) = open();
    b.apply(
        &[entry(1, vec![merge("mine", &[("k", "v")], None)])],
        b"b-state",
    )
    .unwrap();
    let before = export(&b);

    let mut oversize = b"MCSNAP1\n".to_vec();
    oversize.extend_from_slice(&u32::MAX.to_be_bytes());
    let mut no_terminator = good.clone();
    no_terminator.truncate(good.len() - 4);
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';

    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"this is not a snapshot at all".to_vec()),
        ("short magic", b"MCSNAP".to_vec()),
        ("bad magic", bad_magic),
        ("magic only", b"MCSNAP1\n".to_vec()),
        ("truncated half", good[..good.len() / 2].to_vec()),
        ("truncated key len", good[..10].to_vec()),
        ("no terminator", no_terminator),
        ("oversize record", oversize),
    ];
    for (what, bytes) in garbage {
        let r = b.import_snapshot(&mut bytes.as_slice());
        assert!(r.is_err(), "{what}: import succeeded: {r:?}");
        assert_eq!(export(&b), before, "{what}: state changed");
        assert_eq!(get(&b, "mine"), Some(obj(1, &[("k", "v")])), "{what}");
        assert_eq!(b.applied_state().unwrap(), Some(b"b-state".to_vec()));
    }
    // B still works and still applies on top of its own state.
    assert_eq!(
        apply1(&b, merge("mine", &[("k", "w")], None)),
        written(2, 1)
    );
}

#[test]
fn snapshot_import_after_failed_import_has_no_leftovers() {
    // A failed (truncated) import fills a new generation partially; the next good
    // import must not see any of those partial pairs.
    let (_dg, ghost) = open();
    ghost
        .apply(
            &[entry(
                1,
                vec![
                    merge("aaa-ghost", &[("boo", "1")], None),
                    merge("zzz", &[("k", "v")], None),
                ],
            )],
            b"ghost",
        )
        .unwrap();
    let ghost_snap = export(&ghost);
    // Cut after the first records so some pairs were read before the error.
    let cut = ghost_snap[..ghost_snap.len() - 6].to_vec();

    let (_da, a) = open();
    populate(&a);
    let good = export(&a);

    let dir = tempfile::tempdir().unwrap();
    {
        let b = Store::open(dir.path()).unwrap();
        assert!(b.import_snapshot(&mut cut.as_slice()).is_err());
        assert!(list_all(&b).is_empty());
        b.import_snapshot(&mut good.as_slice()).unwrap();
        assert_same_state(&a, &b);
        assert_eq!(get(&b, "aaa-ghost"), None);
        // And again after a failure on top of an imported generation.
        assert!(b.import_snapshot(&mut cut.as_slice()).is_err());
        assert_same_state(&a, &b);
    }
    let b = reopen(dir.path());
    assert_same_state(&a, &b);
    b.import_snapshot(&mut good.as_slice()).unwrap();
    assert_same_state(&a, &b);
    assert_eq!(get(&b, "aaa-ghost"), None);
}

#[test]
fn snapshot_excludes_raft_log_and_values() {
    let (_da, a) = open();
    populate(&a);
    a.log_append([(1, b"entry".to_vec())]).unwrap();
    a.set_raft_value("vote", b"a-vote".to_vec()).unwrap();
    let snap = export(&a);

    let (_db, b) = open();
    b.log_append([(7, b"b-entry".to_vec())]).unwrap();
    b.set_raft_value("vote", b"b-vote".to_vec()).unwrap();
    b.import_snapshot(&mut snap.as_slice()).unwrap();
    // The import replaced the state machine only.
    assert_eq!(
        b.log_range(0, None).unwrap(),
        vec![(7, b"b-entry".to_vec())]
    );
    assert_eq!(b.raft_value("vote").unwrap(), Some(b"b-vote".to_vec()));
    assert_same_state(&a, &b);
}

// ---------------------------------------------------------------- raft log keyspace

#[test]
fn log_append_range_last() {
    let (_d, s) = open();
    assert!(s.log_range(0, None).unwrap().is_empty());

    s.log_append((1..=10).map(|i| (i, format!("e{i}").into_bytes())))
        .unwrap();
    let all = s.log_range(0, None).unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(
        all.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(all[4], (5, b"e5".to_vec()));

    // [start, end)
    let r = s.log_range(3, Some(6)).unwrap();
    assert_eq!(
        r,
        vec![
            (3, b"e3".to_vec()),
            (4, b"e4".to_vec()),
            (5, b"e5".to_vec())
        ]
    );
    assert_eq!(s.log_range(8, None).unwrap().len(), 3);
    assert_eq!(s.log_range(0, Some(2)).unwrap(), vec![(1, b"e1".to_vec())]);
    assert_eq!(
        s.log_range(10, Some(11)).unwrap(),
        vec![(10, b"e10".to_vec())]
    );
    assert!(s.log_range(11, None).unwrap().is_empty());
    assert!(s.log_range(5, Some(5)).unwrap().is_empty());
    assert!(s.log_range(6, Some(3)).unwrap().is_empty());
    assert_eq!(s.log_range(0, Some(u64::MAX)).unwrap().len(), 10);
    // Ordering is numeric, not lexicographic on decimal strings.
    s.log_append([(256, b"e256".to_vec()), (65536, b"e65536".to_vec())])
        .unwrap();
    let idx: Vec<u64> = s
        .log_range(9, None)
        .unwrap()
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(idx, vec![9, 10, 256, 65536]);
    // Empty append is fine.
    s.log_append(std::iter::empty()).unwrap();
    assert_eq!(s.log_range(0, None).unwrap().len(), 12);
}

#[test]
fn log_append_overwrites_same_index() {
    let (_d, s) = open();
    s.log_append([(1, b"a".to_vec()), (2, b"b".to_vec())])
        .unwrap();
    s.log_append([(2, b"B".to_vec()), (3, b"C".to_vec())])
        .unwrap();
    assert_eq!(
        s.log_range(0, None).unwrap(),
        vec![(1, b"a".to_vec()), (2, b"B".to_vec()), (3, b"C".to_vec())]
    );
}

#[test]
fn legacy_log_operations_do_not_touch_state_machine() {
    let (_d, s) = open();
    populate(&s);
    let before = export(&s);
    s.log_append((1..=5).map(|i| (i, vec![0; 100]))).unwrap();
    s.set_raft_value("committed", vec![1, 2]).unwrap();
    assert_eq!(export(&s), before);
    s.clear_legacy_log().unwrap();
    assert!(s.log_range(0, None).unwrap().is_empty());
    assert_eq!(s.raft_value("committed").unwrap(), None);
    assert_eq!(export(&s), before);
}

#[test]
fn raft_value_round_trip() {
    let (_d, s) = open();
    for name in ["vote", "committed", "last_purged"] {
        assert_eq!(s.raft_value(name).unwrap(), None);
    }
    s.set_raft_value("vote", b"v1".to_vec()).unwrap();
    s.set_raft_value("committed", vec![0, 1, 2, 255]).unwrap();
    assert_eq!(s.raft_value("vote").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(s.raft_value("committed").unwrap(), Some(vec![0, 1, 2, 255]));
    assert_eq!(s.raft_value("last_purged").unwrap(), None);
    s.set_raft_value("vote", b"v2".to_vec()).unwrap();
    assert_eq!(s.raft_value("vote").unwrap(), Some(b"v2".to_vec()));
    s.set_raft_value("last_purged", vec![]).unwrap();
    assert_eq!(s.raft_value("last_purged").unwrap(), Some(vec![]));
    // Raft values are not part of the state machine.
    assert_eq!(s.applied_state().unwrap(), None);
    assert_eq!(s.meta_count().unwrap(), 0);
}

// ---------------------------------------------------------------- determinism

/// A mixed workload covering every command and outcome.
fn workload() -> Vec<Vec<ApplyEntry>> {
    let mut calls = Vec::new();
    let mut index = 0;
    let mut next = |cmds: Vec<Command>| {
        index += 1;
        entry(index, cmds)
    };
    calls.push(vec![
        next(vec![
            merge("obj-a", &[("name", "a"), ("size", "1")], None),
            merge("obj-b", &[("name", "b")], Some(0)),
            set_add("obj-c", "tags", "x", None),
        ]),
        next(vec![]),
        next(vec![
            Command::Noop,
            merge("obj-a", &[("size", "2")], Some(1)),
        ]),
    ]);
    calls.push(vec![next(vec![
        merge("obj-a", &[("size", "3")], Some(1)), // mismatch
        set_add("obj-c", "tags", "y", None),
        set_add("obj-c", "tags", "x", None),     // not added
        set_add("obj-c", "tags", "bad|m", None), // invalid
        delete_prop("obj-b", "name", None),      // removes obj-b
        delete("obj-b", None),                   // not found
        merge("", &[("a", "b")], None),          // invalid
    ])]);
    for i in 0..30u32 {
        let h = format!("bulk-{:02}", i % 7);
        calls.push(vec![next(vec![
            merge(&h, &[("i", &i.to_string()), ("const", "c")], None),
            set_add(&h, "members", &format!("m{}", i % 4), None),
            if i % 5 == 0 {
                delete(&h, None)
            } else {
                delete_prop(&h, "i", None)
            },
        ])]);
    }
    calls
}

fn run_workload(s: &Store) -> Vec<Vec<Vec<Response>>> {
    workload()
        .iter()
        .map(|call| {
            let last = call.last().map_or(0, |e| e.index);
            s.apply(call, format!("applied-{last}").as_bytes()).unwrap()
        })
        .collect()
}

#[test]
fn determinism_same_entries_same_state() {
    let (_da, a) = open();
    let (_db, b) = open();
    let ra = run_workload(&a);
    let rb = run_workload(&b);
    assert_eq!(ra, rb);
    let sa = export(&a);
    let sb = export(&b);
    assert_eq!(sa, sb, "exported snapshots differ");
    assert_same_state(&a, &b);

    // Sanity: the workload exercised the interesting outcomes.
    let flat: Vec<&Response> = ra.iter().flatten().flatten().collect();
    assert!(flat
        .iter()
        .any(|r| matches!(r, Response::VersionMismatch { .. })));
    assert!(flat.iter().any(|r| matches!(r, Response::Invalid { .. })));
    assert!(flat.iter().any(|r| matches!(r, Response::NotFound)));
    assert!(flat
        .iter()
        .any(|r| matches!(r, Response::MetaAdded { added: false, .. })));
    assert!(flat
        .iter()
        .any(|r| matches!(r, Response::MetaDeleted { .. })));
    assert!(a.meta_count().unwrap() > 0);
}

#[test]
fn determinism_independent_of_call_batching_and_snapshots() {
    let calls = workload();

    // A: one call per original call.
    let (_da, a) = open();
    let ra = run_workload(&a);

    // B: everything in a single apply call.
    let (_db, b) = open();
    let all: Vec<ApplyEntry> = calls.iter().flatten().cloned().collect();
    let last = all.last().unwrap().index;
    let rb = b.apply(&all, format!("applied-{last}").as_bytes()).unwrap();
    let ra_flat: Vec<Vec<Response>> = ra.iter().flatten().cloned().collect();
    assert_eq!(ra_flat, rb);
    assert_eq!(export(&a), export(&b));

    // C: first half applied, then snapshot into D, D applies the rest.
    let (_dc, c) = open();
    let half = calls.len() / 2;
    for call in &calls[..half] {
        let last = call.last().unwrap().index;
        c.apply(call, format!("applied-{last}").as_bytes()).unwrap();
    }
    let (_dd, d) = open();
    d.import_snapshot(&mut export(&c).as_slice()).unwrap();
    let mut rd = Vec::new();
    for call in &calls[half..] {
        let last = call.last().unwrap().index;
        rd.push(d.apply(call, format!("applied-{last}").as_bytes()).unwrap());
    }
    assert_eq!(rd, ra[half..].to_vec());
    assert_same_state(&a, &d);
}

// ---------------------------------------------------------------- regressions

/// An empty merge must not create an object without properties (an object lives
/// only while it has at least one property).
#[test]
fn empty_merge_creates_no_object() {
    let (_d, s) = open();
    let r = apply1(&s, merge("h", &[], None));
    assert_eq!(
        get(&s, "h"),
        None,
        "empty merge answered {r:?} and created an object"
    );
    assert!(list_all(&s).is_empty());
    assert_eq!(s.meta_count().unwrap(), 0);
}
