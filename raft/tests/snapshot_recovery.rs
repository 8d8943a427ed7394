//! A snapshot and the state machine it was taken from after a crash: the snapshot is
//! published only once the state it covers is durable, and a database that a crash
//! left behind its own snapshot (as older versions could) is brought up to it at open
//! instead of leaving openraft to refuse the node (snapshot past the commit index). A
//! log purge (which a follower is asked for while it still installs the snapshot that
//! covers it) waits for the state machine to reach it.
//!
//! Building a snapshot does not hold up apply: the state is fixed when openraft asks
//! for a builder, entries keep applying while the builder writes it, and the snapshot
//! holds exactly the state of its meta. A snapshot install waits for a running build,
//! so the two cannot publish out of order.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use metacenter_raft::log_store::LogStore;
use metacenter_raft::state_machine::StateMachine;
use metacenter_raft::types::{Entry, LogId, Request};
use metacenter_storage::{Command, Store};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

/// Entry `index` writes object `h<index>` and rewrites object `shared`.
fn entry(index: u64) -> Entry {
    let fields = BTreeMap::from([("n".to_string(), index.to_string())]);
    let merge = |hash: &str| Command::MetaMerge {
        hash: hash.to_string(),
        fields: fields.clone(),
        expect_version: None,
    };
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Request {
            commands: vec![merge(&format!("h{index}")), merge("shared")],
        }),
    }
}

fn open(dir: &Path) -> (Store, StateMachine) {
    let store = Store::open(&dir.join("db")).expect("open store");
    let sm = StateMachine::new(store.clone(), dir.join("snapshots")).expect("state machine");
    (store, sm)
}

async fn apply(sm: &mut StateMachine, indexes: std::ops::RangeInclusive<u64>) {
    sm.apply(indexes.map(entry)).await.expect("apply");
}

#[tokio::test]
async fn a_snapshot_is_published_only_once_its_state_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut sm) = open(dir.path());
    apply(&mut sm, 1..=10).await;
    assert_eq!(store.durable_index(), 0, "nothing flushed yet");
    let snap = sm.get_snapshot_builder().await.build_snapshot().await;
    let snap = snap.expect("build snapshot");
    assert_eq!(snap.meta.last_log_id, Some(log_id(10)));
    assert!(
        store.durable_index() >= 10,
        "snapshot at 10 published with the state machine durable only to {}",
        store.durable_index()
    );
}

#[tokio::test]
async fn a_state_machine_behind_its_own_snapshot_is_restored_from_it_at_open() {
    // `ahead` takes a snapshot at 10; `behind` is the same node's database as a crash
    // left it, at 5, beside that snapshot.
    let (ahead, behind) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    {
        let (_store, mut sm) = open(ahead.path());
        apply(&mut sm, 1..=10).await;
        let snap = sm.get_snapshot_builder().await.build_snapshot().await;
        snap.expect("build snapshot");
    }
    {
        let (store, mut sm) = open(behind.path());
        apply(&mut sm, 1..=5).await;
        store.flush_durable().expect("flush");
    }
    for f in std::fs::read_dir(ahead.path().join("snapshots")).unwrap() {
        let f = f.unwrap();
        let to = behind.path().join("snapshots").join(f.file_name());
        std::fs::copy(f.path(), to).unwrap();
    }

    let (store, mut sm) = open(behind.path());
    let (applied, _) = sm.applied_state().await.expect("applied state");
    assert_eq!(applied, Some(log_id(10)));
    assert_eq!(store.applied_index(), 10);
    let obj = store
        .meta_get("h8")
        .expect("read")
        .expect("h8 from the snapshot");
    assert_eq!(
        (obj.mod_index, obj.fields["n"].as_str()),
        (8, "8"),
        "{obj:?}"
    );
    // Restored durably: a second open finds the state machine at the snapshot.
    drop((store, sm));
    let (store, _sm) = open(behind.path());
    assert_eq!(store.applied_index(), 10);
}

#[tokio::test]
async fn a_purge_waits_until_the_state_machine_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut sm) = open(dir.path());
    let mut log = LogStore::open(store.clone(), &dir.path().join("raft-log")).expect("log");
    apply(&mut sm, 1..=5).await;
    let mut purging = log.clone();
    let mut purge = tokio::spawn(async move { purging.purge(log_id(10)).await });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut purge).await;
    assert!(
        early.is_err(),
        "purged up to 10 with only 5 applied: {early:?}"
    );
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, None);

    apply(&mut sm, 6..=10).await;
    let done = tokio::time::timeout(Duration::from_secs(30), purge).await;
    done.expect("purge done once applied")
        .unwrap()
        .expect("purge");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(log_id(10)));
    assert!(
        store.durable_index() >= 10,
        "purged before the state was durable"
    );
}

fn shared_n(store: &Store) -> String {
    let obj = store.meta_get("shared").expect("read").expect("shared");
    obj.fields["n"].clone()
}

#[tokio::test]
async fn entries_apply_while_a_snapshot_is_built_and_it_holds_the_state_of_its_meta() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut sm) = open(dir.path());
    apply(&mut sm, 1..=10).await;
    let mut builder = sm.get_snapshot_builder().await;
    // The builder holds its state but not the state machine.
    for i in 11..=30 {
        apply(&mut sm, i..=i).await;
    }
    assert_eq!(store.applied_index(), 30);
    let snap = builder.build_snapshot().await.expect("build");
    assert_eq!(snap.meta.last_log_id, Some(log_id(10)));

    let other = tempfile::tempdir().unwrap();
    let (copy, mut copy_sm) = open(other.path());
    copy_sm
        .install_snapshot(&snap.meta, snap.snapshot)
        .await
        .expect("install");
    assert_eq!(copy.applied_index(), 10);
    assert!(copy.meta_get("h10").expect("read").is_some());
    assert!(copy.meta_get("h11").expect("read").is_none());
    assert_eq!(shared_n(&copy), "10");
    assert_eq!(shared_n(&store), "30");
}

#[tokio::test]
async fn an_install_waits_for_a_running_build() {
    let newer = tempfile::tempdir().unwrap();
    let (_s, mut newer_sm) = open(newer.path());
    apply(&mut newer_sm, 1..=50).await;
    newer_sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build at 50");
    let incoming = newer_sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("a snapshot at 50");

    let dir = tempfile::tempdir().unwrap();
    let (store, mut sm) = open(dir.path());
    apply(&mut sm, 1..=10).await;
    let mut builder = sm.get_snapshot_builder().await;
    let mut installing = sm.clone();
    let mut install = tokio::spawn(async move {
        installing
            .install_snapshot(&incoming.meta, incoming.snapshot)
            .await
    });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut install).await;
    assert!(early.is_err(), "installed during a build: {early:?}");

    let built = builder.build_snapshot().await.expect("build at 10");
    assert_eq!(built.meta.last_log_id, Some(log_id(10)));
    install.await.expect("join").expect("install");
    assert_eq!(store.applied_index(), 50);
    let current = sm.get_current_snapshot().await.expect("read").expect("one");
    assert_eq!(current.meta.last_log_id, Some(log_id(50)));
}
