//! Storage-level tests of service discovery and of the CID secondary index.
//!
//! Services: register / heartbeat / deregister through [`Store::apply`], the reap rule
//! (`now - last_heartbeat > stale_threshold + deregister_after`), and the watch indexes
//! (`services_index`, `mod_index`). All time is the `now_ms` carried by the commands:
//! nothing here depends on the wall clock.
//!
//! CID index: `poster` / `backdrop` values are found by `meta_by_cid` after merges,
//! follow changes, disappear with the property or the object, cope with two objects
//! sharing a CID, and survive a snapshot export / import.

use std::collections::BTreeMap;

use metacenter_storage::{keys, ApplyEntry, Command, Response, ServiceEntry, Store, CID_PROPS};
use tempfile::TempDir;

/// A store in a temporary directory and the raft index of the next entry.
struct Sm {
    store: Store,
    next_index: u64,
    _dir: TempDir,
}

impl Sm {
    fn new() -> Sm {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        Sm {
            store,
            next_index: 1,
            _dir: dir,
        }
    }

    /// Closes the store and opens it again from its directory.
    fn reopen(self) -> Sm {
        let Sm {
            store,
            next_index,
            _dir,
        } = self;
        drop(store);
        Sm {
            store: Store::open(_dir.path()).expect("reopen store"),
            next_index,
            _dir,
        }
    }

    /// Applies `commands` as one log entry; returns the entry's index and responses.
    fn entry(&mut self, commands: Vec<Command>) -> (u64, Vec<Response>) {
        let index = self.next_index;
        self.next_index += 1;
        let mut out = self
            .store
            .apply(&[ApplyEntry { index, commands }], b"applied-state")
            .expect("apply");
        assert_eq!(out.len(), 1, "one response list per entry");
        (index, out.pop().expect("responses"))
    }

    /// Applies one command as its own entry; returns the entry's index and response.
    fn one(&mut self, command: Command) -> (u64, Response) {
        let (index, mut rs) = self.entry(vec![command]);
        assert_eq!(rs.len(), 1, "one response per command");
        (index, rs.pop().expect("response"))
    }

    fn service(&self, name: &str) -> Option<ServiceEntry> {
        self.store.service(name).expect("read service")
    }

    fn names(&self) -> Vec<String> {
        self.store
            .services()
            .iter()
            .map(|(n, _)| n.to_string())
            .collect()
    }

    fn services_index(&self) -> u64 {
        self.store.services_index().expect("services index")
    }

    fn by_cid(&self, cid: &str) -> Option<(String, String)> {
        self.store.meta_by_cid(cid).expect("cid lookup")
    }
}

fn register(name: &str, now_ms: u64, after: Option<u64>) -> Command {
    Command::ServiceRegister {
        name: name.into(),
        info_json: format!(r#"{{"version":"1.0","api":"http://{name}:9000"}}"#),
        now_ms,
        deregister_after_ms: after,
    }
}

fn heartbeat(name: &str, now_ms: u64) -> Command {
    Command::ServiceHeartbeat {
        name: name.into(),
        now_ms,
    }
}

fn deregister(name: &str) -> Command {
    Command::ServiceDeregister { name: name.into() }
}

fn reap(now_ms: u64, stale_threshold_ms: u64) -> Command {
    Command::ServiceReap {
        now_ms,
        stale_threshold_ms,
    }
}

fn reaped(names: &[&str]) -> Response {
    Response::Reaped {
        removed: names.iter().map(|s| s.to_string()).collect(),
    }
}

fn merge(hash: &str, kv: &[(&str, &str)]) -> Command {
    Command::MetaMerge {
        hash: hash.into(),
        fields: kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        expect_version: None,
    }
}

fn delete_prop(hash: &str, prop: &str) -> Command {
    Command::MetaDeleteProp {
        hash: hash.into(),
        prop: prop.into(),
        expect_version: None,
    }
}

fn delete(hash: &str) -> Command {
    Command::MetaDelete {
        hash: hash.into(),
        expect_version: None,
    }
}

fn hit(hash: &str, prop: &str) -> Option<(String, String)> {
    Some((hash.to_string(), prop.to_string()))
}

// ------------------------------------------------------------------ services

#[test]
fn register_stamps_the_command_time_and_indexes() {
    let mut sm = Sm::new();
    assert_eq!(sm.services_index(), 0, "no service change yet");
    assert_eq!(sm.service("svc"), None);

    let (i1, r) = sm.one(register("svc", 1_000, Some(250)));
    assert_eq!(r, Response::Ok);
    let e = sm.service("svc").expect("registered");
    assert_eq!(
        e.last_heartbeat_ms, 1_000,
        "heartbeat is the command's now_ms"
    );
    assert_eq!(e.deregister_after_ms, Some(250));
    assert_eq!(e.mod_index, i1);
    assert_eq!(
        e.info_json, r#"{"version":"1.0","api":"http://svc:9000"}"#,
        "ServiceInfo kept verbatim"
    );
    assert_eq!(sm.services_index(), i1);

    // Re-registering replaces the entry.
    let (i2, r) = sm.one(Command::ServiceRegister {
        name: "svc".into(),
        info_json: r#"{"version":"2.0"}"#.into(),
        now_ms: 5_000,
        deregister_after_ms: None,
    });
    assert_eq!(r, Response::Ok);
    let e = sm.service("svc").expect("still registered");
    assert_eq!(
        (
            e.info_json.as_str(),
            e.last_heartbeat_ms,
            e.deregister_after_ms,
            e.mod_index
        ),
        (r#"{"version":"2.0"}"#, 5_000, None, i2)
    );
    assert_eq!(sm.services_index(), i2);
    assert_eq!(sm.names(), vec!["svc".to_string()]);
}

#[test]
fn heartbeat_refreshes_and_never_goes_backwards() {
    let mut sm = Sm::new();
    sm.one(register("svc", 1_000, None));

    let (i, r) = sm.one(heartbeat("svc", 2_000));
    assert_eq!(r, Response::Ok);
    let e = sm.service("svc").unwrap();
    assert_eq!((e.last_heartbeat_ms, e.mod_index), (2_000, i));
    assert_eq!(sm.services_index(), i);

    // A heartbeat stamped earlier (another node's clock, reordered) keeps the later time.
    let (_, r) = sm.one(heartbeat("svc", 1_500));
    assert_eq!(r, Response::Ok);
    assert_eq!(sm.service("svc").unwrap().last_heartbeat_ms, 2_000);

    // Two heartbeats in one entry, out of order: the maximum wins.
    let (_, rs) = sm.entry(vec![heartbeat("svc", 4_000), heartbeat("svc", 3_000)]);
    assert_eq!(rs, vec![Response::Ok, Response::Ok]);
    assert_eq!(sm.service("svc").unwrap().last_heartbeat_ms, 4_000);
}

#[test]
fn unknown_service_is_not_found_and_changes_nothing() {
    let mut sm = Sm::new();
    let (i, _) = sm.one(register("known", 1_000, None));

    assert_eq!(sm.one(heartbeat("ghost", 2_000)).1, Response::NotFound);
    assert_eq!(sm.one(deregister("ghost")).1, Response::NotFound);
    assert_eq!(sm.service("ghost"), None, "a heartbeat does not register");
    assert_eq!(
        sm.services_index(),
        i,
        "failed commands do not advance the index"
    );
    assert_eq!(sm.service("known").unwrap().mod_index, i);
}

#[test]
fn deregister_removes_and_advances_the_index() {
    let mut sm = Sm::new();
    sm.one(register("a", 1_000, None));
    sm.one(register("b", 1_000, None));

    let (i, r) = sm.one(deregister("a"));
    assert_eq!(r, Response::Ok);
    assert_eq!(sm.service("a"), None);
    assert_eq!(sm.names(), vec!["b".to_string()]);
    assert_eq!(sm.services_index(), i);

    // Gone means gone: a second deregister and a heartbeat are NotFound.
    assert_eq!(sm.one(deregister("a")).1, Response::NotFound);
    assert_eq!(sm.one(heartbeat("a", 2_000)).1, Response::NotFound);
}

#[test]
fn expired_is_strictly_past_threshold_plus_deregister_after() {
    let e = ServiceEntry {
        info_json: "{}".into(),
        last_heartbeat_ms: 10_000,
        deregister_after_ms: Some(500),
        mod_index: 1,
    };
    // threshold 1000 + after 500: expired only when now - 10000 > 1500.
    assert!(!e.expired(11_500, 1_000), "exactly at the bound is kept");
    assert!(e.expired(11_501, 1_000), "one ms past the bound is removed");
    assert!(
        !e.expired(5_000, 1_000),
        "a clock behind the heartbeat never expires"
    );

    let keep = ServiceEntry {
        deregister_after_ms: None,
        ..e
    };
    assert!(
        !keep.expired(u64::MAX, 0),
        "without deregisterAfterMs a service is never removed"
    );
}

#[test]
fn reap_removes_exactly_the_expired_services() {
    let mut sm = Sm::new();
    const THRESHOLD: u64 = 1_000;
    sm.one(register("a", 1_000, Some(500))); // removable after now > 2500
    sm.one(register("forever", 1_000, None)); // never removed
    sm.one(register("c", 1_000, Some(2_000))); // removable after now > 4000
    sm.one(register("d", 1_400, Some(500))); // removable after now > 2900
    let (before, _) = sm.one(register("e", 1_000, Some(500)));
    sm.one(heartbeat("e", 2_600)); // refreshed: removable after now > 4100
    let idx = sm.services_index();
    assert!(idx > before);

    // At the bound nothing goes, and a reap that removes nothing touches nothing.
    let (_, r) = sm.one(reap(2_500, THRESHOLD));
    assert_eq!(r, reaped(&[]));
    assert_eq!(sm.services_index(), idx, "an empty reap leaves the index");
    assert_eq!(sm.names(), ["a", "c", "d", "e", "forever"]);

    let (i, r) = sm.one(reap(2_501, THRESHOLD));
    assert_eq!(r, reaped(&["a"]));
    assert_eq!(
        sm.services_index(),
        i,
        "a reap that removes advances the index"
    );
    assert_eq!(sm.names(), ["c", "d", "e", "forever"]);

    let (_, r) = sm.one(reap(2_901, THRESHOLD));
    assert_eq!(r, reaped(&["d"]));

    let (_, r) = sm.one(reap(4_101, THRESHOLD));
    assert_eq!(r, reaped(&["c", "e"]));

    // Far in the future only the service without deregisterAfterMs remains.
    let (_, r) = sm.one(reap(u64::MAX / 2, THRESHOLD));
    assert_eq!(r, reaped(&[]));
    assert_eq!(sm.names(), ["forever"]);
    assert_eq!(
        sm.service("forever").unwrap().last_heartbeat_ms,
        1_000,
        "a reap does not touch kept services"
    );
}

/// An expiry removes a named service only if nothing was applied to it since the
/// revision the leader saw, and never one without `deregisterAfterMs`; it reads no time.
#[test]
fn expire_removes_only_services_unchanged_since_the_leader_looked() {
    let mut sm = Sm::new();
    let (a, _) = sm.one(register("a", u64::MAX, Some(500)));
    let (b, _) = sm.one(register("b", 0, Some(500)));
    sm.one(heartbeat("b", 1));
    let (f, _) = sm.one(register("forever", 0, None));
    let expire = |names: &[(&str, u64)]| Command::ServiceExpire {
        services: names.iter().map(|(n, i)| (n.to_string(), *i)).collect(),
    };
    let idx = sm.services_index();
    let (_, r) = sm.one(expire(&[("b", b), ("forever", f), ("missing", 1)]));
    assert_eq!(
        r,
        reaped(&[]),
        "b heartbeated since; forever has no deadline"
    );
    assert_eq!(sm.services_index(), idx, "an empty expiry leaves the index");
    let (i, r) = sm.one(expire(&[("a", a)]));
    assert_eq!(
        r,
        reaped(&["a"]),
        "a wall-clock stamp far ahead does not matter"
    );
    assert_eq!(sm.services_index(), i);
    assert_eq!(sm.names(), ["b", "forever"]);
}

#[test]
fn reap_uses_the_threshold_carried_by_the_command() {
    let mut sm = Sm::new();
    sm.one(register("s", 0, Some(100)));
    // Same now, different thresholds: the command's threshold decides.
    assert_eq!(sm.one(reap(1_000, 900)).1, reaped(&[]));
    assert_eq!(sm.one(reap(1_000, 899)).1, reaped(&["s"]));
}

#[test]
fn reap_sees_writes_of_the_same_entry() {
    let mut sm = Sm::new();
    // Register then reap in one entry: the reap reads the registration it follows.
    let (i, rs) = sm.entry(vec![register("x", 0, Some(0)), reap(11, 10)]);
    assert_eq!(rs, vec![Response::Ok, reaped(&["x"])]);
    assert_eq!(sm.service("x"), None);
    assert_eq!(sm.services_index(), i);

    // A heartbeat earlier in the entry saves the service from the reap that follows.
    sm.one(register("y", 0, Some(0)));
    let (_, rs) = sm.entry(vec![heartbeat("y", 100), reap(105, 10)]);
    assert_eq!(rs, vec![Response::Ok, reaped(&[])]);
    assert!(sm.service("y").is_some());
}

/// The leader's reaper asks [`Store::services_reap_due`] (the deadline index) instead of
/// reading every service: it must agree with the rule applied to what is stored, at every
/// time.
fn assert_due_agrees(sm: &Sm, threshold: u64, what: &str) {
    let services = sm.store.services();
    for now in (0..6_000).step_by(25).chain([u64::MAX / 2, u64::MAX]) {
        let want = services.iter().any(|(_, e)| e.expired(now, threshold));
        assert_eq!(
            sm.store
                .services_reap_due(now, threshold)
                .expect("reap due"),
            want,
            "{what}: now {now} threshold {threshold}"
        );
    }
}

#[test]
fn reap_due_agrees_with_the_stored_services() {
    let mut sm = Sm::new();
    let check = |sm: &Sm, what: &str| {
        for threshold in [0, 100, 1_000] {
            assert_due_agrees(sm, threshold, what);
        }
    };
    check(&sm, "empty");
    sm.one(register("forever", 0, None));
    check(&sm, "no deadline");
    sm.one(register("a", 1_000, Some(500)));
    sm.one(register("b", 2_000, Some(100)));
    check(&sm, "registered");
    sm.one(heartbeat("a", 3_000));
    check(&sm, "heartbeat moves a's deadline");
    sm.one(register("a", 3_100, None));
    check(&sm, "re-registered without deregisterAfterMs");
    sm.entry(vec![register("c", 100, Some(0)), heartbeat("c", 4_000)]);
    check(&sm, "register and heartbeat in one entry");
    sm.one(deregister("b"));
    check(&sm, "deregistered");
    assert_eq!(sm.one(reap(5_000, 100)).1, reaped(&["c"]));
    assert!(
        !sm.store.services_reap_due(u64::MAX, 0).unwrap(),
        "only `forever` and `a`, no deadline"
    );

    // The index survives a reopen.
    sm.one(register("d", 1_000, Some(10)));
    let sm = sm.reopen();
    check(&sm, "reopened");
    assert!(sm.store.services_reap_due(1_011, 0).unwrap());

    // A snapshot install replaces it with the snapshot's.
    let mut snap = Vec::new();
    sm.store.export_snapshot(&mut snap).expect("export");
    let mut other = Sm::new();
    other.one(register("gone", 0, Some(0)));
    other
        .store
        .import_snapshot(&mut snap.as_slice())
        .expect("import");
    check(&other, "after a snapshot install");
    assert!(
        !other.store.services_reap_due(1_010, 0).unwrap(),
        "`gone` went with its tree"
    );
}

/// A snapshot without the deadline index (as written before it): the records of
/// `snap` other than the index's keys.
fn without_deadline_index(snap: &[u8]) -> Vec<u8> {
    let (magic, mut rest) = snap.split_at(8);
    let mut out = magic.to_vec();
    let chunk = |rest: &mut &[u8]| {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        let c = rest[4..4 + len].to_vec();
        *rest = &rest[4 + len..];
        c
    };
    loop {
        let key = chunk(&mut rest);
        if key.is_empty() {
            break;
        }
        let value = chunk(&mut rest);
        if key[0] == keys::KS_SERVICE_DUE {
            continue;
        }
        for c in [&key, &value] {
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(c);
        }
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

#[test]
fn a_store_from_before_the_deadline_index_gets_it_built() {
    let mut sm = Sm::new();
    sm.one(register("a", 1_000, Some(500)));
    sm.one(register("b", 2_000, None));
    sm.one(register("c", 1_200, Some(100)));
    let mut snap = Vec::new();
    sm.store.export_snapshot(&mut snap).expect("export");
    let old = without_deadline_index(&snap);
    assert!(old.len() < snap.len(), "the export holds the index");

    let mut other = Sm::new();
    other.next_index = sm.next_index;
    other
        .store
        .import_snapshot(&mut old.as_slice())
        .expect("import");
    for threshold in [0, 100, 1_000] {
        assert_due_agrees(&other, threshold, "installed from an old snapshot");
    }
    assert_eq!(other.one(reap(1_401, 100)).1, reaped(&["c"]));
    assert_eq!(other.one(reap(1_601, 100)).1, reaped(&["a"]));
    assert_eq!(other.store.services().len(), 1);
}

// ----------------------------------------------------------------- CID index

#[test]
fn cid_props_are_poster_and_backdrop() {
    assert_eq!(CID_PROPS, ["poster", "backdrop"]);
}

#[test]
fn merge_indexes_poster_and_backdrop_only() {
    let mut sm = Sm::new();
    assert_eq!(sm.by_cid("cidA"), None);
    sm.one(merge(
        "h1",
        &[
            ("poster", "cidA"),
            ("backdrop", "cidB"),
            ("posterPath", "a.png"),
            ("title", "cidC"),
        ],
    ));
    assert_eq!(sm.by_cid("cidA"), hit("h1", "poster"));
    assert_eq!(sm.by_cid("cidB"), hit("h1", "backdrop"));
    assert_eq!(sm.by_cid("cidC"), None, "other properties are not indexed");
    assert_eq!(sm.by_cid("a.png"), None);
    // Lookups are exact, not prefix matches.
    assert_eq!(sm.by_cid("cid"), None);
    assert_eq!(sm.by_cid("cidA2"), None);
}

#[test]
fn changing_the_poster_moves_the_index() {
    let mut sm = Sm::new();
    sm.one(merge("h1", &[("poster", "old"), ("backdrop", "bd")]));
    sm.one(merge("h1", &[("poster", "new")]));
    assert_eq!(
        sm.by_cid("old"),
        None,
        "the old CID no longer leads anywhere"
    );
    assert_eq!(sm.by_cid("new"), hit("h1", "poster"));
    assert_eq!(sm.by_cid("bd"), hit("h1", "backdrop"), "untouched");

    // A one-field merge (what PUT /meta/{hash}/backdrop proposes) moves it as well.
    sm.one(merge("h1", &[("backdrop", "bd2")]));
    assert_eq!(sm.by_cid("bd"), None);
    assert_eq!(sm.by_cid("bd2"), hit("h1", "backdrop"));
}

#[test]
fn failed_conditional_merge_leaves_the_index() {
    let mut sm = Sm::new();
    sm.one(merge("h1", &[("poster", "p1")]));
    let (_, r) = sm.one(Command::MetaMerge {
        hash: "h1".into(),
        fields: BTreeMap::from([("poster".to_string(), "p2".to_string())]),
        expect_version: Some(999),
    });
    assert!(matches!(r, Response::VersionMismatch { .. }), "{r:?}");
    assert_eq!(sm.by_cid("p1"), hit("h1", "poster"));
    assert_eq!(sm.by_cid("p2"), None);
}

#[test]
fn deleting_the_property_or_object_removes_it() {
    let mut sm = Sm::new();
    sm.one(merge(
        "h1",
        &[("poster", "p1"), ("backdrop", "b1"), ("x", "y")],
    ));

    assert_eq!(
        sm.one(delete_prop("h1", "poster")).1,
        Response::MetaDeleted { deleted: 1 }
    );
    assert_eq!(sm.by_cid("p1"), None);
    assert_eq!(sm.by_cid("b1"), hit("h1", "backdrop"));

    assert_eq!(sm.one(delete("h1")).1, Response::MetaDeleted { deleted: 2 });
    assert_eq!(sm.by_cid("b1"), None);

    // An object whose last property is its poster goes with the property.
    sm.one(merge("h2", &[("poster", "p2")]));
    sm.one(delete_prop("h2", "poster"));
    assert_eq!(sm.store.meta_get("h2").unwrap(), None);
    assert_eq!(sm.by_cid("p2"), None);
}

#[test]
fn two_objects_with_the_same_cid() {
    let mut sm = Sm::new();
    sm.one(merge("h1", &[("poster", "shared")]));
    sm.one(merge("h2", &[("backdrop", "shared")]));

    let first = sm.by_cid("shared").expect("found");
    assert!(
        first == ("h1".into(), "poster".into()) || first == ("h2".into(), "backdrop".into()),
        "either holder, with its own property: {first:?}"
    );

    // Removing one holder leaves the other findable, with the right property.
    sm.one(delete("h1"));
    assert_eq!(sm.by_cid("shared"), hit("h2", "backdrop"));

    sm.one(merge("h1", &[("poster", "shared")]));
    sm.one(merge("h2", &[("backdrop", "elsewhere")]));
    assert_eq!(sm.by_cid("shared"), hit("h1", "poster"));
    assert_eq!(sm.by_cid("elsewhere"), hit("h2", "backdrop"));

    sm.one(delete_prop("h1", "poster"));
    assert_eq!(sm.by_cid("shared"), None, "no holder left");
}

#[test]
fn watch_index_follows_changes_and_deletions() {
    let mut sm = Sm::new();
    assert_eq!(sm.store.meta_watch_index("h1").unwrap(), 0);
    let (i1, _) = sm.one(merge("h1", &[("poster", "p")]));
    assert_eq!(sm.store.meta_watch_index("h1").unwrap(), i1);
    assert_eq!(sm.store.meta_get("h1").unwrap().unwrap().mod_index, i1);
    // Other objects do not move it.
    sm.one(merge("h2", &[("a", "b")]));
    assert_eq!(sm.store.meta_watch_index("h1").unwrap(), i1);
    let (i3, _) = sm.one(merge("h1", &[("poster", "q")]));
    assert_eq!(sm.store.meta_watch_index("h1").unwrap(), i3);
    let (i4, _) = sm.one(delete("h1"));
    assert_eq!(
        sm.store.meta_watch_index("h1").unwrap(),
        i4,
        "an absent object's watch index is the last deletion"
    );
}

#[test]
fn the_index_and_services_survive_a_snapshot() {
    let mut sm = Sm::new();
    sm.one(merge("h1", &[("poster", "p1"), ("backdrop", "b1")]));
    sm.one(merge("h2", &[("poster", "p2")]));
    sm.one(register("svc", 7_000, Some(100)));
    let services_index = sm.services_index();

    let mut snap = Vec::new();
    let pairs = sm.store.export_snapshot(&mut snap).expect("export");
    assert!(pairs > 0);

    // Into a fresh store.
    let mut other = Sm::new();
    other.next_index = sm.next_index;
    assert_eq!(
        other
            .store
            .import_snapshot(&mut snap.as_slice())
            .expect("import"),
        pairs
    );
    assert_eq!(other.by_cid("p1"), hit("h1", "poster"));
    assert_eq!(other.by_cid("b1"), hit("h1", "backdrop"));
    assert_eq!(other.by_cid("p2"), hit("h2", "poster"));
    assert_eq!(other.service("svc"), sm.service("svc"));
    assert_eq!(other.services_index(), services_index);

    // Apply keeps maintaining the imported index.
    other.one(merge("h1", &[("poster", "p1b")]));
    assert_eq!(other.by_cid("p1"), None);
    assert_eq!(other.by_cid("p1b"), hit("h1", "poster"));
    assert_eq!(
        other.one(reap(7_000 + 60_000 + 101, 60_000)).1,
        reaped(&["svc"])
    );

    // Into the store it came from, after it moved on: the later index entries go.
    sm.one(merge("h3", &[("poster", "p3")]));
    sm.one(delete("h2"));
    sm.store
        .import_snapshot(&mut snap.as_slice())
        .expect("re-import");
    assert_eq!(sm.by_cid("p3"), None, "written after the snapshot");
    assert_eq!(sm.by_cid("p2"), hit("h2", "poster"), "restored");
}

// ------------------------------------------------------------- regressions

#[test]
fn regression_same_cid_in_poster_and_backdrop_lost_on_delete() {
    let mut sm = Sm::new();
    sm.one(merge("h1", &[("poster", "same"), ("backdrop", "same")]));
    assert!(sm.by_cid("same").is_some());
    sm.one(delete_prop("h1", "poster"));
    assert_eq!(
        sm.store
            .meta_get_prop("h1", "backdrop")
            .unwrap()
            .map(|(_, v)| v),
        Some("same".to_string())
    );
    assert_eq!(
        sm.by_cid("same"),
        hit("h1", "backdrop"),
        "backdrop still holds the CID, so /file/{{cid}} must still find it"
    );
}

#[test]
fn regression_swapping_poster_and_backdrop_loses_a_cid() {
    let mut sm = Sm::new();
    sm.one(merge("h1", &[("poster", "A"), ("backdrop", "B")]));
    sm.one(merge("h1", &[("poster", "B"), ("backdrop", "A")]));
    assert_eq!(sm.by_cid("B"), hit("h1", "poster"));
    assert_eq!(sm.by_cid("A"), hit("h1", "backdrop"));
}
