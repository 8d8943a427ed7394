//! A database written before the WAL keeps its raft log in sled trees: opening the
//! log store moves entries, vote, committed and purged id into the WAL once, and
//! nothing of them is lost.

use metacenter_raft::log_store::LogStore;
use metacenter_raft::types::{Entry, LogId, Vote};
use metacenter_storage::{codec, Store};
use openraft::storage::RaftLogStorage;
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

#[tokio::test]
async fn an_old_database_log_moves_into_the_wal_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let old: Vec<(u64, Vec<u8>)> = (4..=9)
        .map(|i| {
            let e = Entry {
                log_id: log_id(2, i),
                payload: EntryPayload::Blank,
            };
            (i, codec::encode(&e).unwrap())
        })
        .collect();
    store.log_append(old).unwrap();
    let vote = Vote::new(2, 1);
    store
        .set_raft_value("vote", codec::encode(&vote).unwrap())
        .unwrap();
    let committed = Some(log_id(2, 8));
    store
        .set_raft_value("committed", codec::encode(&committed).unwrap())
        .unwrap();
    store
        .set_raft_value("last_purged", codec::encode(&log_id(1, 3)).unwrap())
        .unwrap();

    let wal_dir = dir.path().join("raft-log");
    let mut log = LogStore::open(store.clone(), &wal_dir).unwrap();
    let check = |state: openraft::LogState<_>| {
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(2, 9)));
    };
    check(log.get_log_state().await.unwrap());
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), committed);
    let ids: Vec<u64> = log
        .try_get_log_entries(0..)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(ids, (4..=9).collect::<Vec<_>>());
    // The sled trees are emptied, so a second open cannot move anything twice.
    assert!(store.log_range(0, None).unwrap().is_empty());
    assert_eq!(store.raft_value("vote").unwrap(), None);
    drop(log);

    let mut log = LogStore::open(store, &wal_dir).unwrap();
    check(log.get_log_state().await.unwrap());
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
}
