//! Harnesses of the binary formats: peer RPC bodies (what `metacenter_raft::peer`
//! decodes from other members and `network` decodes from their answers), storage's
//! codec over commands, raft log entries and stored values, and the state machine's
//! apply of any command that decodes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use metacenter_raft::node::{PeerOp, PeerReply};
use metacenter_raft::types::{Entry, LogId, Request, SnapshotMeta, TypeConfig, Vote};
use metacenter_raft::{peer, NodeId};
use metacenter_storage::{
    codec, ApplyEntry, Command, EngineLoad, MetricDoc, PointQuery, ServiceEntry, Store, SyncRecord,
    SyncSettings,
};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{pick, scratch_dir};

/// A decoded value must encode, and what it encodes to must decode to a value that
/// encodes the same: a type whose serde impls disagree fails here.
fn round_trip<T: Serialize + DeserializeOwned>(v: &T) {
    let once = codec::encode(v).expect("a decoded value encodes");
    let back: T = codec::decode(&once).expect("an encoded value decodes");
    let twice = codec::encode(&back).expect("a decoded value encodes");
    assert_eq!(once, twice, "decode(encode(v)) encodes differently from v");
}

fn accepted<T: Serialize + DeserializeOwned, E>(r: Result<T, E>) -> bool {
    r.map(|v| round_trip(&v)).is_ok()
}

/// Decodes with the peer listener's decoder, as each route does.
fn request<T: Serialize + DeserializeOwned>(body: &[u8]) -> bool {
    accepted(peer::decode::<T>(body))
}

/// Decodes with storage's codec, as the peer client decodes answers and the stores
/// decode their values.
fn value<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> bool {
    accepted(codec::decode::<T>(bytes))
}

/// Peer RPC bodies: 0 append, 1 vote, 2 install-snapshot, 3 forwarded operation
/// (requests a member receives); 4-7 the answers to each (what the sender decodes).
pub fn peer_rpc(data: &[u8]) -> bool {
    let (variant, body) = pick(data, 8);
    match variant {
        0 => request::<AppendEntriesRequest<TypeConfig>>(body),
        1 => request::<VoteRequest<NodeId>>(body),
        2 => request::<InstallSnapshotRequest<TypeConfig>>(body),
        3 => request::<PeerOp>(body),
        4 => value::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(body),
        5 => value::<Result<VoteResponse<NodeId>, RaftError<NodeId>>>(body),
        6 => value::<
            Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
        >(body),
        _ => value::<Result<PeerReply, metacenter_raft::Error>>(body),
    }
}

/// A stored point chunk (no selector byte): garbage is an error, never a panic or an
/// allocation beyond the decoder's bound; what decodes round-trips.
pub fn chunk_decode(data: &[u8]) -> bool {
    metacenter_storage::fuzz_point_chunk(data)
}

/// Storage's codec: 0 one command, 1 a log entry's batch of commands, 2 a raft log
/// entry, 3 the vote, 4 a log id (`committed`, `last_purged`), 5 a snapshot's meta,
/// 6-10 the state machine's stored values.
pub fn command_decode(data: &[u8]) -> bool {
    let (variant, bytes) = pick(data, 11);
    match variant {
        0 => value::<Command>(bytes),
        1 => value::<Request>(bytes),
        2 => value::<Entry>(bytes),
        3 => value::<Vote>(bytes),
        4 => value::<Option<LogId>>(bytes),
        5 => value::<SnapshotMeta>(bytes),
        6 => value::<ServiceEntry>(bytes),
        7 => value::<MetricDoc>(bytes),
        8 => value::<SyncRecord>(bytes),
        9 => value::<SyncSettings>(bytes),
        _ => value::<EngineLoad>(bytes),
    }
}

/// Inputs applied to one store before a fresh one is opened: apply's cost grows with
/// the state (expiry and retention scan it), and a fresh store keeps the fuzzer fast.
const INPUTS_PER_STORE: u64 = 1000;

/// The store `command_apply` applies to, with how many inputs it has seen.
struct Scratch {
    store: Store,
    inputs: u64,
}

/// A log entry's payload (codec-encoded batch of commands, no selector byte) applied
/// to a store: apply must answer every decodable command with a response, never fail
/// or panic (an apply error stops the node on every member alike), and what it wrote
/// must read back.
pub fn command_apply(data: &[u8]) -> bool {
    static SCRATCH: Mutex<Option<Scratch>> = Mutex::new(None);
    static STORES: AtomicU64 = AtomicU64::new(0);
    let Ok(req) = codec::decode::<Request>(data) else {
        return false;
    };
    // A panic of an earlier input (replayed by the regression test) may poison it.
    let mut scratch = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
    if scratch
        .as_ref()
        .is_none_or(|s| s.inputs >= INPUTS_PER_STORE)
    {
        // The old store's files stay until the scratch directory goes: sled may
        // still be writing them from its own threads.
        *scratch = None;
        let n = STORES.fetch_add(1, Ordering::Relaxed);
        let dir = scratch_dir().join(format!("store-{n}"));
        let store = Store::open(&dir).expect("open scratch store");
        *scratch = Some(Scratch { store, inputs: 0 });
    }
    let s = scratch.as_mut().expect("opened above");
    s.inputs += 1;
    let n = req.commands.len();
    let entry = ApplyEntry {
        index: s.inputs,
        commands: req.commands,
    };
    let out = s
        .store
        .apply(std::slice::from_ref(&entry), b"fuzz")
        .expect("apply of a decodable command must not fail");
    assert_eq!(out.len(), 1, "one response list per entry");
    assert_eq!(out[0].len(), n, "one response per command");
    for c in &entry.commands {
        read_back(&s.store, c).unwrap_or_else(|e| panic!("reading back {c:?}: {e}"));
    }
    true
}

/// Reads what `c` touched through the store's read API, as the HTTP handlers do.
fn read_back(st: &Store, c: &Command) -> metacenter_storage::Result<()> {
    let q = PointQuery {
        limit: 10,
        ..Default::default()
    };
    match c {
        Command::Noop => {}
        Command::MetaMerge { hash, fields, .. } => {
            st.meta_get(hash)?;
            for prop in fields.keys() {
                st.meta_get_prop(hash, prop)?;
            }
            st.meta_list(None, 10)?;
        }
        Command::MetaDelete { hash, .. } => _ = st.meta_watch_index(hash)?,
        Command::MetaDeleteProp { hash, prop, .. } | Command::MetaSetAdd { hash, prop, .. } => {
            st.meta_get_prop(hash, prop)?;
        }
        Command::ServiceRegister { name, .. }
        | Command::ServiceHeartbeat { name, .. }
        | Command::ServiceDeregister { name } => _ = st.service(name)?,
        Command::ServiceReap { .. } => _ = st.services(),
        Command::ServiceExpire { services } => {
            for (name, _) in services {
                st.service(name)?;
            }
        }
        Command::LoadAdd { cluster, .. } => _ = st.load_cluster(cluster)?,
        Command::LoadPromptDone { .. } | Command::LoadDone { .. } | Command::LoadExpire { .. } => {
            st.load_engines()?;
        }
        Command::LoadExpireNamed(_) => _ = st.load_items()?,
        Command::PointsWrite { tenant, points } => {
            for p in points {
                st.series_points(tenant, &p.run_id, &p.metric, &q)?;
                st.series_agg(tenant, &p.run_id, &p.metric)?;
                st.run_points(tenant, &p.run_id, &q)?;
            }
            st.tenant_series(tenant)?;
        }
        Command::SystemPointsWrite { tenant, points } => {
            for p in points {
                st.system_points(tenant, &p.run_id, (i64::MIN, i64::MAX), None, 10)?;
            }
        }
        Command::PointsRetain { tenant, .. } => _ = st.tenant_series(tenant)?,
        Command::CatalogSyncStart { tenant, .. }
        | Command::CatalogUpsert { tenant, .. }
        | Command::CatalogSyncFinish { tenant, .. } => {
            st.catalog_docs(tenant)?;
            st.sync_record(tenant)?;
        }
        Command::CatalogSettings { .. } => _ = st.sync_settings()?,
    }
    Ok(())
}
