//! The per-area counts `/status` shows (`Store::counts`): the metadata object count
//! that apply keeps equals the objects a full listing finds after every apply of a
//! random mix of merges, deletes, property deletes, set adds and version mismatches,
//! and survives a reopen (`meta_exists` is checked against a full read too); services,
//! engines and metric metadata are counted too.

use std::collections::BTreeMap;

use metacenter_storage::{ApplyEntry, Command, Counts, MetricDocIn, Store};

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn random_meta(rng: &mut Rng) -> Command {
    let hash = format!("h{}", rng.below(12));
    let prop = format!("p{}", rng.below(3));
    // Now and then a stale version, which must change nothing.
    let expect = (rng.below(8) == 0).then_some(rng.below(3));
    match rng.below(5) {
        0 => Command::MetaDelete {
            hash,
            expect_version: expect,
        },
        1 => Command::MetaDeleteProp {
            hash,
            prop,
            expect_version: expect,
        },
        2 => Command::MetaSetAdd {
            hash,
            prop,
            member: format!("m{}", rng.below(4)),
            expect_version: expect,
        },
        n => Command::MetaMerge {
            hash,
            // An empty merge (n == 3 at times) creates nothing.
            fields: (0..rng.below(n))
                .map(|i| (format!("p{i}"), format!("v{}", rng.below(3))))
                .collect(),
            expect_version: expect,
        },
    }
}

fn listed(store: &Store) -> u64 {
    let (mut n, mut after) = (0, None);
    loop {
        let page = store.meta_list(after.as_deref(), 5).unwrap();
        n += page.hash_ids.len() as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => return n,
        }
    }
}

#[test]
fn the_kept_object_count_matches_a_listing_after_every_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut index = 0;
    let mut seen = BTreeMap::new();
    for call in 0..400 {
        // One to three entries of one to four commands per apply call.
        let entries: Vec<ApplyEntry> = (0..=rng.below(3))
            .map(|_| {
                index += 1;
                let commands = (0..=rng.below(4)).map(|_| random_meta(&mut rng)).collect();
                ApplyEntry { index, commands }
            })
            .collect();
        store.apply(&entries, b"t").unwrap();
        let n = listed(&store);
        assert_eq!(store.meta_count().unwrap(), n, "after apply call {call}");
        for h in (0..12).map(|i| format!("h{i}")) {
            let exists = store.meta_get(&h).unwrap().is_some();
            assert_eq!(store.meta_exists(&h).unwrap(), exists, "{h}");
        }
        *seen.entry(n).or_insert(0) += 1;
        if call == 200 {
            drop(store);
            store = reopen(dir.path());
            assert_eq!(store.meta_count().unwrap(), n, "after a reopen");
        }
    }
    assert!(
        seen.len() > 5,
        "the mix must move the count around: {seen:?}"
    );
}

#[test]
fn counts_cover_services_engines_and_metric_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.counts().unwrap(), Counts::default());
    let doc = |name: &str| MetricDocIn {
        name: name.into(),
        kind: "gauge".into(),
        ..MetricDocIn::default()
    };
    let commands = vec![
        Command::MetaMerge {
            hash: "a".into(),
            fields: BTreeMap::from([("k".into(), "v".into())]),
            expect_version: None,
        },
        Command::ServiceRegister {
            name: "svc".into(),
            info_json: "{}".into(),
            now_ms: 1,
            deregister_after_ms: None,
        },
        Command::LoadAdd {
            cluster: "c".into(),
            request_id: "r1".into(),
            ip: "10.0.0.1".into(),
            prompt_length: 5,
            now_ns: 1,
        },
        Command::LoadAdd {
            cluster: "c".into(),
            request_id: "r2".into(),
            ip: "10.0.0.2".into(),
            prompt_length: 5,
            now_ns: 1,
        },
        Command::CatalogUpsert {
            tenant: "t".into(),
            gen: 0,
            now_ns: 1,
            replace_labels: false,
            docs: vec![doc("x"), doc("y"), doc("z")],
        },
    ];
    store
        .apply(&[ApplyEntry { index: 1, commands }], b"t")
        .unwrap();
    let want = Counts {
        metadata: 1,
        services: 1,
        engines: 2,
        metric_metadata: 3,
    };
    assert_eq!(store.counts().unwrap(), want);
}

/// Reopens a store just dropped; sled lets go of its file lock from background
/// threads, so the first attempts may find it still held.
fn reopen(path: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(path) {
            Ok(s) => return s,
            Err(e) if e.to_string().contains("could not acquire lock") => {
                assert!(std::time::Instant::now() < deadline, "{e}");
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}
