//! Disaster recovery at the raft level: the consistent source of an online backup,
//! and writing a data directory with a membership of the operator's choosing, either
//! from a backup (restore, as `etcdctl snapshot restore`) or from a survivor's own
//! data (recover, as etcd's `--force-new-cluster`).
//!
//! Both write the same shape of data directory: the state machine holds the state of
//! raft index I with the new membership as its applied state, the log is empty and
//! purged up to I, and the vote is at I's term (so the first election runs at a later
//! term than every entry the state came from). No snapshot file is written: openraft
//! builds one at start-up when the log is purged and none exists, with the membership
//! the state machine now holds.
//!
//! The backup's wire format (header, checksum) is the caller's; this module only
//! hands out the state machine export and the raft position it reflects.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use metacenter_storage::{codec, Export, Store, Wal};
use openraft::{CommittedLeaderId, EntryPayload, Membership};

use openraft::storage::RaftStateMachine;

use crate::error::{Error, Result};
use crate::state_machine::StateMachine;
use crate::types::{Entry, LogId, NodeAddr, NodeId, StoredMembership, Vote};

/// The raft position of a state: the last log id applied and its membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Index of the last applied entry.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The node that led that term.
    pub leader: NodeId,
    /// Voters of the membership then in force.
    pub voters: BTreeSet<NodeId>,
    /// Addresses of every member (voters and learners).
    pub nodes: BTreeMap<NodeId, NodeAddr>,
}

impl Position {
    fn log_id(&self) -> LogId {
        LogId::new(CommittedLeaderId::new(self.term, self.leader), self.index)
    }
}

/// A state fixed for an online backup, written while apply goes on. Dropping it
/// (a client that went away) ends the export and frees what it kept.
pub struct BackupSource {
    position: Position,
    export: Export,
}

impl BackupSource {
    /// Fixes the state of `store` as it is now (see `Store::begin_export`).
    pub fn begin(store: &Store) -> Result<BackupSource> {
        let export = store.begin_export()?;
        let nothing = || Error::Unavailable("this node has applied nothing yet".into());
        let Some(bytes) = export.applied_state() else {
            return Err(nothing());
        };
        let (last, membership): (Option<LogId>, StoredMembership) = codec::decode(bytes)?;
        let Some(last) = last else {
            return Err(nothing());
        };
        let m = membership.membership();
        let position = Position {
            index: last.index,
            term: last.leader_id.term,
            leader: last.leader_id.node_id,
            voters: m.voter_ids().collect(),
            nodes: m.nodes().map(|(id, a)| (*id, a.clone())).collect(),
        };
        Ok(BackupSource { position, export })
    }

    /// The raft position of the state this backup writes.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Writes the state (the snapshot export format of the storage crate) to `out`;
    /// returns the number of pairs.
    pub fn write_to(self, out: &mut impl Write) -> Result<u64> {
        Ok(self.export.write_to(out)?)
    }
}

/// Writes a new data directory `dir` for member `id` of a cluster of `members` (all
/// voters), holding the state read from `body` (a backup's export) at `at`. Refuses a
/// `dir` that exists and is not empty.
pub fn restore_data_dir(
    dir: &Path,
    id: NodeId,
    members: &BTreeMap<NodeId, NodeAddr>,
    at: &Position,
    body: &mut impl Read,
) -> Result<u64> {
    if !members.contains_key(&id) {
        return Err(Error::Invalid(format!(
            "node {id} is not among the members"
        )));
    }
    refuse_non_empty(dir)?;
    let store = Store::open(&dir.join("db"))?;
    let pairs = store.import_snapshot(body)?;
    let voters = members.keys().copied().collect();
    let membership = Membership::new(vec![voters], members.clone());
    seal(dir, &store, id, at.log_id(), membership, None)?;
    Ok(pairs)
}

/// What [`recover_data_dir`] made of a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The one member left.
    pub id: NodeId,
    /// Its addresses, as the old membership had them.
    pub addr: NodeAddr,
    /// The raft index the state holds.
    pub index: u64,
    /// Entries of the log past what the state machine had made durable, applied now.
    pub replayed: u64,
}

/// Turns the data directory of a stopped member into that of a one-member cluster.
/// The state keeps every entry of the member's log: those it had applied and, since
/// the survivor's log is the only record left, those past them (a crash may have cost
/// the state machine its last applies, which a restart would apply again; entries
/// never committed are writes whose clients got no answer). `id` names the member
/// when the old membership had several voters.
pub async fn recover_data_dir(dir: &Path, id: Option<NodeId>) -> Result<Recovered> {
    let db = dir.join("db");
    if !db.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: no database here",
            db.display()
        )));
    }
    let store = Store::open(&db)?;
    // Opening the state machine finishes an install a crash cut short.
    let snapshots = dir.join("snapshots");
    let mut sm = StateMachine::new(store.clone(), snapshots.clone()).map_err(storage)?;
    let wal = Wal::open(&dir.join("raft-log"))?;
    let (applied, membership) = sm.applied_state().await.map_err(storage)?;
    let tail = log_tail(&wal, applied)?;
    // Checked before anything changes.
    let membership = membership_after(&tail, membership.membership());
    let id = pick_member(&membership, id)?;
    let addr = (membership.get_node(&id).cloned())
        .ok_or_else(|| Error::Invalid(format!("node {id} has no address")))?;
    let replayed = tail.len() as u64;
    if !tail.is_empty() {
        sm.apply(tail).await.map_err(storage)?;
    }
    let (last, _) = sm.applied_state().await.map_err(storage)?;
    let last = last.ok_or_else(|| Error::Invalid("this data dir has applied nothing".into()))?;
    let old_vote = wal.vote().map(|b| codec::decode::<Vote>(&b)).transpose()?;
    drop(wal);
    let nodes = BTreeMap::from([(id, addr.clone())]);
    let alone = Membership::new(vec![BTreeSet::from([id])], nodes);
    seal(dir, &store, id, last, alone, old_vote)?;
    remove_snapshots(&snapshots)?;
    Ok(Recovered {
        id,
        addr,
        index: last.index,
        replayed,
    })
}

fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

/// The entries of `wal` past `applied`, which must follow it without a gap.
fn log_tail(wal: &Wal, applied: Option<LogId>) -> Result<Vec<Entry>> {
    let from = applied.map_or(1, |l| l.index + 1);
    let raw = wal.range(from, None)?;
    let entries = (raw.iter())
        .map(|b| codec::decode::<Entry>(b))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    match entries.first() {
        Some(first) if first.log_id.index != from => Err(Error::Storage(format!(
            "the raft log starts at {} where the state machine needs {from}",
            first.log_id.index
        ))),
        _ => Ok(entries),
    }
}

/// The membership in force once `tail` is applied over `applied`'s.
fn membership_after(
    tail: &[Entry],
    applied: &Membership<NodeId, NodeAddr>,
) -> Membership<NodeId, NodeAddr> {
    let last = tail.iter().rev().find_map(|e| match &e.payload {
        EntryPayload::Membership(m) => Some(m.clone()),
        _ => None,
    });
    last.unwrap_or_else(|| applied.clone())
}

/// The member `id` names, or the only voter of `m`.
fn pick_member(m: &Membership<NodeId, NodeAddr>, id: Option<NodeId>) -> Result<NodeId> {
    let voters: Vec<NodeId> = m.voter_ids().collect();
    match id {
        Some(id) if m.get_node(&id).is_some() => Ok(id),
        Some(id) => Err(Error::Invalid(format!(
            "node {id} is not a member of this data dir's cluster (voters {voters:?})"
        ))),
        None if voters.len() == 1 => Ok(voters[0]),
        None => Err(Error::Invalid(format!(
            "this data dir's cluster has voters {voters:?}: pass --id with this node's id"
        ))),
    }
}

/// Records `last` with `membership` as the applied state, durably, and leaves the log
/// of member `own` empty, purged up to `last`, with an uncommitted vote for itself at
/// the later of `last`'s term and the term of `vote` (the one already held).
fn seal(
    dir: &Path,
    store: &Store,
    own: NodeId,
    last: LogId,
    membership: Membership<NodeId, NodeAddr>,
    vote: Option<Vote>,
) -> Result<()> {
    let membership = StoredMembership::new(Some(last), membership);
    let applied = codec::encode(&(Some(last), &membership))?;
    store.apply(&[], &applied)?;
    store.flush_durable()?;
    let wal = Wal::open(&dir.join("raft-log"))?;
    wal.truncate_from(last.index + 1)?;
    wal.purge_upto(last.index, &codec::encode(&last)?)?;
    wal.set_committed(&codec::encode(&Some(last))?);
    // Not committed, so the first election runs at a later term than any seen here.
    let term = vote
        .map_or(0, |v| v.leader_id.term)
        .max(last.leader_id.term);
    let vote = Vote::new(term, own);
    wal.set_vote(&codec::encode(&vote)?)?;
    wal.sync()?;
    Ok(())
}

/// Refuses a `dir` that exists and holds anything; creates it when missing.
pub fn refuse_non_empty(dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Storage(format!("{}: {e}", dir.display()));
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(Error::Invalid(format!(
            "data dir {} is not empty: restore writes only into a new or empty directory",
            dir.display()
        ))),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

/// Removes the snapshot files of `dir`, which name the old membership.
fn remove_snapshots(dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Storage(format!("{}: {e}", dir.display()));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e.map_err(io)?;
        if e.file_name().to_string_lossy().starts_with("snapshot-") {
            std::fs::remove_file(e.path()).map_err(io)?;
        }
    }
    Ok(())
}
