//! Integration tests of the metric metadata catalog: upserts (added / updated /
//! unchanged counts, label merge and replace, bounds), full-sync removal of unseen
//! metrics (points-derived documents stay), sync status and state across completed
//! and failed syncs, metric names noted from points, per-tenant counts and isolation,
//! the change index the search index checks, and settings validation.

use std::collections::BTreeMap;

use metacenter_storage::{
    ApplyEntry, Command, MetricDocIn, PointIn, Response, Store, SyncOutcome, SyncSettings,
    MAX_LABEL_VALUES,
};
use tempfile::TempDir;

struct Fixture {
    _dir: TempDir,
    store: Store,
    next: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path()).unwrap();
        Fixture {
            _dir: dir,
            store,
            next: 1,
        }
    }

    fn apply(&mut self, cmd: Command) -> Response {
        let e = ApplyEntry {
            index: self.next,
            commands: vec![cmd],
        };
        self.next += 1;
        let mut out = self.store.apply(&[e], b"applied").unwrap();
        out.remove(0).remove(0)
    }

    fn start(&mut self, tenant: &str) -> u64 {
        match self.apply(Command::CatalogSyncStart {
            tenant: tenant.into(),
            strategy: "full".into(),
            now_ns: 10,
        }) {
            Response::SyncStarted { gen } => gen,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn upsert(
        &mut self,
        tenant: &str,
        gen: u64,
        replace: bool,
        docs: Vec<MetricDocIn>,
    ) -> (u32, u32) {
        match self.apply(Command::CatalogUpsert {
            tenant: tenant.into(),
            gen,
            now_ns: 20 + gen as i64,
            replace_labels: replace,
            docs,
        }) {
            Response::CatalogUpserted { added, updated } => (added, updated),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn finish(&mut self, tenant: &str, gen: u64, full: bool, outcome: SyncOutcome) -> u64 {
        match self.apply(Command::CatalogSyncFinish {
            tenant: tenant.into(),
            gen,
            full,
            now_ns: 100,
            outcome,
        }) {
            Response::SyncFinished { removed } => removed,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn doc(name: &str, help: &str, labels: &[(&str, &[&str])]) -> MetricDocIn {
    MetricDocIn {
        name: name.into(),
        kind: "counter".into(),
        help: help.into(),
        unit: String::new(),
        labels: labels
            .iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect(),
    }
}

fn doc_names(store: &Store, tenant: &str) -> Vec<String> {
    let docs = store.catalog_docs(tenant).unwrap();
    docs.into_iter().map(|d| d.name).collect()
}

fn completed() -> SyncOutcome {
    SyncOutcome::Completed {
        processed: 0,
        added: 0,
        updated: 0,
        duration_ns: 5,
        errors: vec![],
    }
}

#[test]
fn upsert_counts_added_updated_and_unchanged() {
    let mut f = Fixture::new();
    let g = f.start("t");
    let docs = vec![doc("a_total", "A", &[("job", &["x"])]), doc("b", "B", &[])];
    assert_eq!(f.upsert("t", g, false, docs.clone()), (2, 0));
    assert_eq!(
        f.upsert("t", g, false, docs),
        (0, 0),
        "unchanged counts nowhere"
    );
    let changed = vec![doc("a_total", "A2", &[]), doc("c", "", &[])];
    assert_eq!(f.upsert("t", g, false, changed), (1, 1));
    let a = f.store.catalog_doc("t", "a_total").unwrap().unwrap();
    assert_eq!(a.help, "A2");
    assert_eq!(a.labels["job"], vec!["x"], "a merge keeps earlier labels");
    assert_eq!(f.store.catalog_counts().unwrap()["t"], 3);
}

#[test]
fn labels_merge_replace_and_stay_bounded() {
    let mut f = Fixture::new();
    let g = f.start("t");
    f.upsert("t", g, false, vec![doc("m", "", &[("job", &["b", "a"])])]);
    f.upsert(
        "t",
        g,
        false,
        vec![doc("m", "", &[("job", &["c", "a"]), ("pod", &["p"])])],
    );
    let m = f.store.catalog_doc("t", "m").unwrap().unwrap();
    assert_eq!(m.labels["job"], vec!["a", "b", "c"]);
    f.upsert("t", g, true, vec![doc("m", "", &[("pod", &["q"])])]);
    let m = f.store.catalog_doc("t", "m").unwrap().unwrap();
    assert_eq!(m.labels, BTreeMap::from([("pod".into(), vec!["q".into()])]));
    let many: Vec<String> = (0..100).map(|i| format!("v{i:03}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    f.upsert("t", g, false, vec![doc("m", "", &[("pod", &refs)])]);
    let m = f.store.catalog_doc("t", "m").unwrap().unwrap();
    assert_eq!(m.labels["pod"].len(), MAX_LABEL_VALUES);
}

#[test]
fn full_sync_removes_unseen_but_keeps_points_metrics() {
    let mut f = Fixture::new();
    let g1 = f.start("t");
    f.upsert(
        "t",
        g1,
        true,
        vec![
            doc("keep", "", &[]),
            doc("gone", "", &[]),
            doc("loss", "", &[]),
        ],
    );
    assert_eq!(f.finish("t", g1, true, completed()), 0);
    f.apply(Command::PointsWrite {
        tenant: "t".into(),
        points: vec![PointIn {
            run_id: [1; 16],
            metric: "loss".into(),
            step: Some(1),
            value: 0.5,
            time_ns: 7,
            metadata_json: None,
        }],
    });
    let g2 = f.start("t");
    f.upsert("t", g2, true, vec![doc("keep", "", &[])]);
    // An incremental finish never removes.
    assert_eq!(f.finish("t", g2, false, completed()), 0);
    let g3 = f.start("t");
    f.upsert("t", g3, true, vec![doc("keep", "", &[])]);
    assert_eq!(f.finish("t", g3, true, completed()), 1);
    let names = doc_names(&f.store, "t");
    assert_eq!(names, vec!["keep", "loss"]);
    assert_eq!(f.store.catalog_counts().unwrap()["t"], 2);
    let rec = f.store.sync_record("t").unwrap();
    assert_eq!(
        (rec.status.as_str(), rec.removed, rec.total_syncs),
        ("completed", 1, 3)
    );
    assert_eq!(rec.last_full_sync_ns, Some(100));
}

#[test]
fn failed_sync_records_the_error_and_removes_nothing() {
    let mut f = Fixture::new();
    let g = f.start("t");
    f.upsert("t", g, true, vec![doc("a", "", &[])]);
    assert_eq!(f.store.sync_record("t").unwrap().status, "running");
    let failed = SyncOutcome::Failed {
        error: "connection refused".into(),
        duration_ns: 9,
    };
    let g2 = f.start("t");
    assert_eq!(f.finish("t", g2, true, failed), 0);
    let rec = f.store.sync_record("t").unwrap();
    assert_eq!(rec.status, "failed");
    assert_eq!(rec.last_error.as_deref(), Some("connection refused"));
    assert_eq!((rec.failed_syncs, rec.successful_syncs), (1, 0));
    assert_eq!(f.store.catalog_docs("t").unwrap().len(), 1);
    assert_eq!(
        f.store.sync_record("other").unwrap().status,
        "",
        "never run"
    );
}

#[test]
fn points_note_new_names_once_and_tenants_stay_apart() {
    let mut f = Fixture::new();
    let before = f.store.catalog_changed_at().unwrap();
    let pt = |m: &str, t: i64| PointIn {
        run_id: [2; 16],
        metric: m.into(),
        step: None,
        value: 1.0,
        time_ns: t,
        metadata_json: None,
    };
    f.apply(Command::PointsWrite {
        tenant: "a".into(),
        points: vec![pt("loss", 5), pt("loss", 9), pt("acc", 3)],
    });
    let changed = f.store.catalog_changed_at().unwrap();
    assert!(changed > before);
    let loss = f.store.catalog_doc("a", "loss").unwrap().unwrap();
    assert!(loss.from_points);
    assert_eq!((loss.kind.as_str(), loss.created_ns), ("gauge", 9));
    f.apply(Command::PointsWrite {
        tenant: "a".into(),
        points: vec![pt("loss", 11)],
    });
    assert_eq!(
        f.store.catalog_changed_at().unwrap(),
        changed,
        "known name: no change"
    );
    assert!(f.store.catalog_docs("b").unwrap().is_empty());
    assert_eq!(f.store.catalog_counts().unwrap()["a"], 2);
}

#[test]
fn settings_replicate_and_a_zero_interval_is_refused() {
    let mut f = Fixture::new();
    let mut s = SyncSettings {
        enabled: true,
        strategy: "hybrid".into(),
        interval_ns: 60_000_000_000,
        full_sync_interval_ns: 3_600_000_000_000,
        batch_size: 1000,
        max_retries: 3,
        retry_delay_ns: 1_000_000_000,
        lookback_ns: 3_600_000_000_000,
    };
    assert_eq!(
        f.apply(Command::CatalogSettings {
            settings: s.clone()
        }),
        Response::Ok
    );
    assert_eq!(f.store.sync_settings().unwrap(), Some(s.clone()));
    s.interval_ns = 0;
    assert!(matches!(
        f.apply(Command::CatalogSettings { settings: s }),
        Response::Invalid { .. }
    ));
    assert_eq!(
        f.store.sync_settings().unwrap().unwrap().interval_ns,
        60_000_000_000
    );
}

/// `n` documents named `m00000`.. for `tenant`, in one upsert.
fn many(f: &mut Fixture, tenant: &str, n: usize) {
    let gen = f.start(tenant);
    let docs = (0..n).map(|i| doc(&format!("m{i:05}"), "h", &[])).collect();
    assert_eq!(f.upsert(tenant, gen, false, docs), (n as u32, 0));
}

#[test]
fn listings_cross_scan_pages_whole_and_in_order() {
    let mut f = Fixture::new();
    // More than two pages of the paged scan, between tenants whose keys border them.
    many(&mut f, "t", 2_500);
    many(&mut f, "s", 3);
    many(&mut f, "t2", 3);
    let names = doc_names(&f.store, "t");
    let want: Vec<String> = (0..2_500).map(|i| format!("m{i:05}")).collect();
    assert_eq!(names, want);
    for n in [0, 1, 1_024, 1_025, 2_500, 9_999] {
        let first = f.store.catalog_docs_first("t", n).unwrap();
        assert_eq!(first.len(), n.min(2_500), "first {n}");
        assert!(first.iter().zip(&want).all(|(d, w)| &d.name == w));
    }
    let mut per_tenant = BTreeMap::new();
    f.store
        .catalog_for_each(|t, _| *per_tenant.entry(t.to_string()).or_insert(0) += 1)
        .unwrap();
    assert_eq!(
        per_tenant,
        BTreeMap::from([("s".into(), 3), ("t".into(), 2_500), ("t2".into(), 3)])
    );
}

#[test]
fn a_long_listing_lets_apply_commit_between_pages() {
    let mut f = Fixture::new();
    many(&mut f, "t", 2_100);
    let (store, next) = (f.store.clone(), f.next);
    let mut seen = 0;
    f.store
        .catalog_for_each(|_, _| {
            seen += 1;
            if seen != 1_500 {
                return;
            }
            // An apply from another thread must commit while the listing is under way.
            let (tx, rx) = std::sync::mpsc::channel();
            let store = store.clone();
            std::thread::spawn(move || {
                let e = ApplyEntry {
                    index: next,
                    commands: vec![Command::Noop],
                };
                tx.send(store.apply(&[e], b"applied").is_ok()).ok();
            });
            let done = rx.recv_timeout(std::time::Duration::from_secs(20));
            assert_eq!(done, Ok(true), "apply held off by the listing");
        })
        .unwrap();
    assert_eq!(seen, 2_100);
    assert_eq!(f.store.applied_index(), next);
}
