//! Restore and recover at the raft level: a data dir written from a backup holds the
//! backed-up state with the new membership, an empty log purged at the backup's index
//! and a vote at its term; recover keeps every entry of a survivor's log, leaves it the
//! only member, and refuses to guess which member it is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use metacenter_raft::log_store::LogStore;
use metacenter_raft::recovery::{self, BackupSource};
use metacenter_raft::state_machine::StateMachine;
use metacenter_raft::types::{Entry, LogId, Request, StoredMembership, Vote};
use metacenter_raft::{NodeAddr, NodeId};
use metacenter_storage::{codec, ApplyEntry, Command, Store, Wal};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, Membership};

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 2), index)
}

fn addr(id: NodeId) -> NodeAddr {
    NodeAddr {
        peer: format!("10.0.0.{id}:8090"),
        api: format!("10.0.0.{id}:8080"),
    }
}

fn members(ids: &[NodeId]) -> BTreeMap<NodeId, NodeAddr> {
    ids.iter().map(|id| (*id, addr(*id))).collect()
}

fn stored(ids: &[NodeId]) -> StoredMembership {
    let voters: BTreeSet<NodeId> = ids.iter().copied().collect();
    StoredMembership::new(
        Some(log_id(1, 1)),
        Membership::new(vec![voters], members(ids)),
    )
}

fn put(key: &str) -> Command {
    Command::MetaMerge {
        hash: key.to_string(),
        fields: BTreeMap::from([("v".to_string(), key.to_string())]),
        expect_version: None,
    }
}

/// A store in `dir/db` that applied entries 1..=`last` (term 3) of cluster {1,2,3}, one
/// object each.
fn applied_store(dir: &Path, last: u64) -> Store {
    let store = Store::open(&dir.join("db")).unwrap();
    for i in 1..=last {
        let state = codec::encode(&(Some(log_id(3, i)), &stored(&[1, 2, 3]))).unwrap();
        let entry = ApplyEntry {
            index: i,
            commands: vec![put(&format!("obj-{i}"))],
        };
        store.apply(&[entry], &state).unwrap();
    }
    store
}

/// What a node opening `dir` would find: applied state, log state and vote.
async fn opened(
    dir: &Path,
) -> (
    Option<LogId>,
    StoredMembership,
    Option<LogId>,
    Option<Vote>,
    u64,
) {
    let store = Store::open(&dir.join("db")).unwrap();
    let mut sm = StateMachine::new(store.clone(), dir.join("snapshots")).unwrap();
    let (applied, membership) = sm.applied_state().await.unwrap();
    let mut log = LogStore::open(store.clone(), &dir.join("raft-log")).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(
        state.last_log_id, state.last_purged_log_id,
        "entries left in the log"
    );
    let vote = log.read_vote().await.unwrap();
    let objects = store.counts().unwrap().metadata;
    (applied, membership, state.last_purged_log_id, vote, objects)
}

#[tokio::test]
async fn a_restored_data_dir_holds_the_backup_with_the_new_membership() {
    let src = tempfile::tempdir().unwrap();
    let store = applied_store(src.path(), 10);
    let source = BackupSource::begin(&store).unwrap();
    let at = source.position().clone();
    assert_eq!((at.index, at.term, at.leader), (10, 3, 2));
    assert_eq!(at.voters, BTreeSet::from([1, 2, 3]));
    let mut body = Vec::new();
    source.write_to(&mut body).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let dir = dst.path().join("node2");
    let new = members(&[4, 2]);
    let err = recovery::restore_data_dir(&dir, 7, &new, &at, &mut body.as_slice());
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("not among the members"));
    recovery::restore_data_dir(&dir, 2, &new, &at, &mut body.as_slice()).unwrap();
    let (applied, membership, purged, vote, objects) = opened(&dir).await;
    assert_eq!(applied, Some(log_id(3, 10)));
    assert_eq!(purged, Some(log_id(3, 10)));
    assert_eq!(vote, Some(Vote::new(3, 2)));
    let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
    assert_eq!(voters, BTreeSet::from([2, 4]));
    assert_eq!(objects, 10);

    let again = recovery::restore_data_dir(&dir, 2, &new, &at, &mut body.as_slice());
    assert!(again.unwrap_err().to_string().contains("is not empty"));
}

/// Appends entries `from..=to` (term 4, one object each) to the log of `dir`.
fn log_entries(dir: &Path, from: u64, to: u64) {
    let wal = Wal::open(&dir.join("raft-log")).unwrap();
    let entries = (from..=to).map(|i| {
        let e = Entry {
            log_id: LogId::new(CommittedLeaderId::new(4, 1), i),
            payload: EntryPayload::Normal(Request {
                commands: vec![put(&format!("logged-{i}"))],
            }),
        };
        (i, codec::encode(&e).unwrap())
    });
    wal.append(entries.collect::<Vec<_>>()).unwrap();
    wal.set_vote(&codec::encode(&Vote::new_committed(4, 1)).unwrap())
        .unwrap();
    wal.sync().unwrap();
}

#[tokio::test]
async fn recover_keeps_the_whole_log_and_leaves_one_member() {
    let dir = tempfile::tempdir().unwrap();
    drop(applied_store(dir.path(), 5));
    log_entries(dir.path(), 6, 8);
    let err = recovery::recover_data_dir(dir.path(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pass --id"), "{err}");
    let err = recovery::recover_data_dir(dir.path(), Some(9))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a member"), "{err}");

    let r = recovery::recover_data_dir(dir.path(), Some(1))
        .await
        .unwrap();
    assert_eq!((r.id, r.index, r.replayed), (1, 8, 3));
    assert_eq!(r.addr, addr(1));
    let (applied, membership, purged, vote, objects) = opened(dir.path()).await;
    let last = LogId::new(CommittedLeaderId::new(4, 1), 8);
    assert_eq!((applied, purged), (Some(last), Some(last)));
    assert_eq!(
        vote,
        Some(Vote::new(4, 1)),
        "the term of the vote held is kept"
    );
    let voters: Vec<NodeId> = membership.membership().voter_ids().collect();
    assert_eq!(voters, [1]);
    assert_eq!(objects, 8);
}
