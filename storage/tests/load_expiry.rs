//! `Command::LoadExpireNamed`: the leader names load state to remove, each item with the
//! version it saw, and apply removes only what is still that version. `Store::load_items`
//! lists what a leader tracks and `Store::load_versions` gives the versions it names.

use metacenter_storage::{ApplyEntry, Command, LoadExpiry, LoadOutcome, Response, Store};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;
const C: &str = "llama";

struct Sm {
    store: Store,
    index: u64,
    _dir: tempfile::TempDir,
}

impl Sm {
    fn new() -> Sm {
        let dir = tempfile::tempdir().unwrap();
        Sm {
            store: Store::open(dir.path()).unwrap(),
            index: 0,
            _dir: dir,
        }
    }

    fn apply(&mut self, cmd: Command) -> Response {
        self.index += 1;
        let entry = ApplyEntry {
            index: self.index,
            commands: vec![cmd],
        };
        let mut out = self.store.apply(&[entry], b"m").unwrap();
        out.remove(0).remove(0)
    }

    fn queued(&self, ip: &str) -> Option<u64> {
        let engines = self.store.load_cluster(C).unwrap();
        engines
            .iter()
            .find(|(i, _)| i == ip)
            .map(|(_, e)| e.queued_req_num)
    }
}

fn add(id: &str, ip: &str, now: u64) -> Command {
    Command::LoadAdd {
        cluster: C.into(),
        request_id: id.into(),
        ip: ip.into(),
        prompt_length: 10,
        now_ns: now,
    }
}

fn done(id: &str, now: u64) -> Command {
    Command::LoadDone {
        request_id: id.into(),
        now_ns: now,
    }
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn named_items_go_only_while_they_are_the_version_named() {
    let mut sm = Sm::new();
    sm.apply(add("r1", "e1", T0));
    sm.apply(add("r2", "e1", T0 + S));
    sm.apply(add("r4", "e2", T0 + 2 * S));
    sm.apply(done("r3", T0 + 3 * S)); // a finish before its add: a tombstone

    let items = sm.store.load_items().unwrap();
    let req_ids: Vec<&str> = items.requests.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(req_ids, ["r1", "r2", "r4"]);
    assert_eq!(items.requests[2], ("r4".into(), C.into(), "e2".into()));
    assert_eq!(items.tombstones, strings(&["r3"]));
    assert_eq!(items.engines.len(), 2);

    let engines = [(C.to_string(), "e2".to_string())];
    let mut e = (sm.store)
        .load_versions(
            &strings(&["r1", "gone"]),
            &strings(&["r3"]),
            &engines,
            T0 + 9 * S,
        )
        .unwrap();
    assert_eq!(e.requests, [("r1".to_string(), T0)]);
    assert_eq!(e.tombstones, [("r3".to_string(), T0 + 3 * S)]);
    assert_eq!(e.engines.len(), 1);
    // Named with a version it no longer has: kept.
    e.requests.push(("r2".into(), T0 + 5 * S));
    // Engine e2 changes after the leader read its version: kept.
    sm.apply(add("r5", "e2", T0 + 4 * S));

    let r = sm.apply(Command::LoadExpireNamed(e));
    let want = LoadOutcome::Expired {
        requests: 1,
        engines: 0,
        tombstones: 1,
    };
    assert_eq!(r, Response::Load(want));
    assert_eq!(sm.queued("e1"), Some(1), "r2 still counts");
    assert_eq!(sm.queued("e2"), Some(2), "e2 and its requests stay");
    let items = sm.store.load_items().unwrap();
    let req_ids: Vec<&str> = items.requests.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(req_ids, ["r2", "r4", "r5"]);
    assert!(items.tombstones.is_empty());
}

#[test]
fn an_engine_named_with_its_requests_goes() {
    let mut sm = Sm::new();
    sm.apply(add("r1", "e1", T0));
    let engines = [(C.to_string(), "e1".to_string())];
    let e = (sm
        .store
        .load_versions(&strings(&["r1"]), &[], &engines, T0 + S))
    .unwrap();
    let r = sm.apply(Command::LoadExpireNamed(e));
    let want = LoadOutcome::Expired {
        requests: 1,
        engines: 1,
        tombstones: 0,
    };
    assert_eq!(r, Response::Load(want));
    assert_eq!(sm.queued("e1"), None);
    assert_eq!(sm.store.load_items().unwrap(), Default::default());
    assert!(LoadExpiry::default().is_empty());
}
