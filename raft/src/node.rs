//! [`RaftNode`]: one cluster member. It owns the raft instance, the store, the
//! batcher and the forwarder (which packs a follower's concurrent writes into one
//! request to the leader), and offers the node's API what it needs: writes that reach
//! the leader from any node, linearizable read barriers, membership administration.
//!
//! Retries: a write is retried (with backoff, up to `forward_timeout`) only when it
//! certainly was not committed: no leader known, the target is not the leader, or
//! the peer could not be connected to. A write whose outcome is unknown (timeout
//! after sending) is answered `Unavailable` and never retried blindly; so is one whose
//! leader this node sees replaced (a new term or another leader) while it is on its
//! way, so that a paused or cut-off leader does not hold the follower's forwarding
//! slots, and the writes queued behind them, for the whole `forward_timeout`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::FutureExt;

use metacenter_storage::{Command, Response, Store};
use openraft::error::{CheckIsLeaderError, InitializeError, RaftError};
use openraft::{ChangeMembers, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::batcher::{map_write_error, BatchLimits, Batcher};
use crate::coalesce::{Coalescer, Work};
use crate::error::{Error, Result};
use crate::log_store::LogStore;
use crate::network::{Faults, NetworkFactory, PeerClient, TransportError};
use crate::state_machine::{Applied, StateMachine};
use crate::types::{NodeAddr, NodeId, Raft, RaftMetrics};
use crate::watermark::Watermark;

/// How long adding a member waits for the new learner to catch up before it is
/// promoted to voter; past it the add fails and the node stays a learner.
/// The answer of a node that is in no cluster yet.
pub const NOT_INITIALISED: &str = "this node is not part of an initialised cluster: run \
    `metacenter cluster init --node API` against it, or start it with --bootstrap, or with \
    --join API-OF-A-MEMBER (a joining node waits until that member adds it)";

pub const LEARNER_CATCH_UP: Duration = Duration::from_secs(60);

/// Everything a node needs to start its raft side.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Directory holding the database and snapshots.
    pub data_dir: PathBuf,
    /// The addresses other members and clients use to reach this node.
    pub addr: NodeAddr,
    /// Cluster secret sent and required on every peer request.
    pub secret: String,
    /// Serve peers without a secret when `secret` is empty; otherwise an empty secret
    /// refuses every peer request (fail closed).
    pub insecure: bool,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot after this many applied entries at the latest.
    pub snapshot_every: u64,
    /// Build one once the log since the last is this many times the last one's size...
    pub snapshot_log_ratio: f64,
    /// ...and at least this many bytes.
    pub snapshot_min_log_bytes: u64,
    /// zstd-pack log entries of 4 KiB and more.
    pub pack_log: bool,
    /// Entries kept in the log behind a snapshot (for slow followers).
    pub keep_logs: u64,
    /// Most bytes of entries kept behind a snapshot (0: only `keep_logs` bounds them).
    pub keep_log_bytes: u64,
    /// Size of one preallocated raft log segment file.
    pub log_segment_bytes: u64,
    /// How long a write or read barrier may wait for a leader.
    pub forward_timeout: Duration,
    pub batch: BatchLimits,
    /// The largest single write (one client request's commands, estimated): larger ones
    /// are refused, so that a log entry, and so a peer request, stays bounded.
    pub max_write_bytes: usize,
    /// A follower's packs of forwarded writes on their way to the leader at once.
    pub forward_in_flight: usize,
    /// Injected faults (tests); empty in production.
    pub faults: Arc<Faults>,
}

impl NodeConfig {
    /// Defaults tuned for HTTP + fsync on small machines.
    pub fn new(id: NodeId, data_dir: PathBuf, addr: NodeAddr, secret: String) -> NodeConfig {
        NodeConfig {
            id,
            data_dir,
            addr,
            secret,
            insecure: false,
            heartbeat_ms: 100,
            election_min_ms: 1000,
            election_max_ms: 2000,
            snapshot_every: 1_000_000,
            snapshot_log_ratio: 0.5,
            snapshot_min_log_bytes: 64 << 20,
            pack_log: false,
            keep_logs: 5_000,
            keep_log_bytes: 64 << 20,
            log_segment_bytes: metacenter_storage::wal::SEGMENT_BYTES,
            forward_timeout: Duration::from_secs(10),
            batch: BatchLimits::default(),
            max_write_bytes: 4 << 20,
            forward_in_flight: 2,
            faults: Arc::new(Faults::default()),
        }
    }
}

/// Sends one pack of writes to the leader for the node behind `me`.
async fn forward_pack(me: Weak<RaftNode>, commands: Vec<Command>) -> Result<Vec<Response>> {
    let node = me
        .upgrade()
        .ok_or_else(|| Error::Fatal("node stopped".into()))?;
    node.write_via_leader(commands).await
}

/// Operations a node asks of the leader over the peer network.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerOp {
    Write(Vec<Command>),
    ReadIndex,
    AddMember { id: NodeId, addr: NodeAddr },
    RemoveMember { id: NodeId },
}

/// Answers to [`PeerOp`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerReply {
    Written(Vec<Response>),
    ReadIndex(u64),
    Done,
}

/// Bytes on disk per area of a node's data directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskBytes {
    pub db: u64,
    pub raft_log: u64,
    pub snapshots: u64,
}

/// One running cluster member.
pub struct RaftNode {
    pub(crate) cfg: NodeConfig,
    watermark: Arc<Watermark>,
    pub(crate) raft: Raft,
    store: Store,
    /// The raft log (a handle: raft owns its own clone).
    log: LogStore,
    sm: StateMachine,
    batcher: Batcher,
    /// Packs the writes this node forwards to the leader.
    forwarder: Coalescer,
    peers: PeerClient,
    leader_changes: Arc<std::sync::atomic::AtomicU64>,
    /// Bounds of the peer listener's request bodies.
    pub(crate) peer_limits: crate::peer_body::PeerLimits,
    pub(crate) peer_in_flight: crate::peer_body::InFlight,
    /// When a leader's append request last arrived (fast failover, health) and when
    /// this node, as leader, last heard from a quorum (health).
    pub(crate) touch: Arc<crate::quorum::Touch>,
    /// Whether this node knows it was removed from the cluster.
    pub(crate) removal: Arc<crate::removal::Removal>,
}

/// Opens the database and the snapshot directory under `dir`, with errors that name
/// the path and what to do about it.
async fn open_data_dir(
    dir: &std::path::Path,
    pack_log: bool,
    segment_bytes: u64,
) -> Result<(Store, LogStore, StateMachine, Arc<Watermark>)> {
    let fail = |what: String, e: &dyn std::fmt::Display| {
        Error::Storage(format!("data dir {}: {what}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("cannot create it".into(), &e))?;
    let db = dir.join("db");
    let store = Store::open(&db).map_err(|e| {
        let what = format!(
            "cannot open the database {} (if it is corrupted, move the data dir away \
             and let the node rejoin its cluster, which sends it a snapshot)",
            db.display()
        );
        fail(what, &e)
    })?;
    let snapshots = dir.join("snapshots");
    let sm = StateMachine::new(store.clone(), snapshots.clone())
        .map_err(|e| fail(format!("cannot use {}", snapshots.display()), &e))?;
    let watermark = Watermark::open(dir)?;
    let log_dir = dir.join("raft-log");
    let mut log = LogStore::open_with(store.clone(), &log_dir, segment_bytes)
        .map_err(|e| {
            fail(
                format!("cannot open the raft log {}", log_dir.display()),
                &e,
            )
        })?
        .with_packing(pack_log);
    let log_state = openraft::storage::RaftLogStorage::get_log_state(&mut log)
        .await
        .map_err(|e| fail("cannot read the raft log".into(), &e))?;
    let logged = log_state.last_log_id.map_or(0, |l| l.index);
    watermark.check(logged.max(store.applied_index()))?;
    Ok((store, log, sm, Arc::new(watermark)))
}

/// Runs blocking `f` on a thread of its own and waits at most `within` for it.
/// Not `spawn_blocking`: a stuck blocking task would also hold up the runtime's (and
/// so the process's) exit, while a detached thread dies with the process.
async fn bounded<F>(within: Duration, f: F) -> std::result::Result<(), String>
where
    F: FnOnce() -> std::result::Result<(), String> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("final-flush".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(within, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("the flush thread panicked".into()),
        Err(_) => Err(format!(
            "not finished within {within:?} (disk full or failing?)"
        )),
    }
}

/// Follows the applied index with the watermark until raft stops.
async fn follow_watermark(store: Store, watermark: Arc<Watermark>, raft: Raft) {
    let mut metrics = raft.metrics();
    drop(raft);
    loop {
        // Ends as soon as raft does, so the store (and sled's lock) is let go.
        let stopped = async { while metrics.changed().await.is_ok() {} };
        tokio::select! {
            _ = stopped => return,
            _ = tokio::time::sleep(crate::watermark::EVERY) => {}
        }
        let (s, w) = (store.clone(), watermark.clone());
        let r = tokio::task::spawn_blocking(move || w.record(s.applied_index())).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "cannot record the durable watermark");
        }
    }
}

impl RaftNode {
    /// Opens the store in `cfg.data_dir` and starts raft (not initialised: see
    /// [`RaftNode::initialize`]).
    pub async fn start(cfg: NodeConfig) -> Result<Arc<RaftNode>> {
        let removal = crate::removal::Removal::open(cfg.id, &cfg.data_dir)?;
        let (store, log, sm, watermark) =
            open_data_dir(&cfg.data_dir, cfg.pack_log, cfg.log_segment_bytes).await?;
        let config = openraft::Config {
            cluster_name: "metacenter".into(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_min_ms,
            election_timeout_max: cfg.election_max_ms,
            install_snapshot_timeout: 10_000,
            // Paced by `crate::pacer` instead.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: cfg.keep_logs,
            max_payload_entries: crate::peer_body::MAX_PAYLOAD_ENTRIES,
            snapshot_max_chunk_size: crate::peer_body::SNAPSHOT_CHUNK,
            ..Default::default()
        }
        .validate()
        .map_err(|e| Error::Invalid(e.to_string()))?;
        let peers = PeerClient::new(cfg.id, &cfg.secret, cfg.faults.clone());
        let net = NetworkFactory {
            client: peers.clone(),
            removal: removal.clone(),
            reach: Arc::default(),
        };
        let raft = Raft::new(cfg.id, Arc::new(config), net, log.clone(), sm.clone())
            .await
            .map_err(|e| Error::Fatal(e.to_string()))?;
        let batcher = Batcher::spawn(raft.clone(), cfg.batch);
        let pace = crate::pacer::Pace {
            log_ratio: cfg.snapshot_log_ratio,
            min_log_bytes: cfg.snapshot_min_log_bytes,
            max_entries: cfg.snapshot_every,
            keep_bytes: cfg.keep_log_bytes,
        };
        tokio::spawn(crate::pacer::run(
            raft.clone(),
            log.clone(),
            sm.clone(),
            pace,
        ));
        tokio::spawn(follow_watermark(
            store.clone(),
            watermark.clone(),
            raft.clone(),
        ));
        tokio::spawn(removal.clone().follow(raft.clone()));
        let leader_changes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(count_leader_changes(raft.metrics(), leader_changes.clone()));
        let touch = Arc::new(crate::quorum::Touch::default());
        let timing = crate::watchdog::Timing {
            heartbeat: Duration::from_millis(cfg.heartbeat_ms),
            lease: Duration::from_millis(cfg.election_max_ms),
        };
        tokio::spawn(crate::quorum::probe(
            raft.clone(),
            touch.clone(),
            timing.heartbeat * 2,
            timing.lease,
        ));
        tokio::spawn(crate::watchdog::run(
            raft.clone(),
            cfg.id,
            touch.clone(),
            timing,
        ));
        let forward_limits = BatchLimits {
            max_in_flight: cfg.forward_in_flight,
            ..cfg.batch
        };
        Ok(Arc::new_cyclic(|me: &Weak<RaftNode>| {
            let me = me.clone();
            let work: Work = Arc::new(move |commands| forward_pack(me.clone(), commands).boxed());
            let peer_limits = crate::peer_body::PeerLimits::of(&cfg);
            RaftNode {
                peer_in_flight: crate::peer_body::InFlight::new(&peer_limits),
                peer_limits,
                touch,
                cfg,
                raft,
                store,
                log,
                sm,
                batcher,
                forwarder: Coalescer::spawn(forward_limits, work),
                peers,
                leader_changes,
                watermark,
                removal,
            }
        }))
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Whether this node knows a cluster membership: false until `cluster init`,
    /// `--bootstrap`, or a member adding it (`--join`).
    pub fn has_membership(&self) -> bool {
        let m = self.raft.metrics();
        let known = m.borrow().membership_config.nodes().next().is_some();
        known
    }

    /// Why this node stood down, once it knows it was removed from the cluster.
    pub fn removed(&self) -> Option<String> {
        self.removal.reason()
    }

    /// Whether this node knows it was removed from the cluster (cheap: per request).
    pub fn is_removed(&self) -> bool {
        self.removal.is_removed()
    }

    pub fn addr(&self) -> &NodeAddr {
        &self.cfg.addr
    }

    /// Read access to the local state machine.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The openraft handle (metrics, low-level control in tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Subscribes to the applied-event bus.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Applied>> {
        self.sm.subscribe()
    }

    /// A copy of the current raft metrics.
    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// The current leader and its addresses, if one is known.
    pub fn leader(&self) -> Option<(NodeId, NodeAddr)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, addr))
    }

    /// Index of the last entry applied to the local state machine.
    pub fn applied_index(&self) -> u64 {
        self.sm.applied_index()
    }

    /// Commits `commands` through the leader (wherever it is) and returns their responses.
    /// On a follower, concurrent writes travel to the leader packed into one request.
    pub async fn write(&self, commands: Vec<Command>) -> Result<Vec<Response>> {
        let size: usize = commands.iter().map(Command::size_hint).sum();
        if size > self.cfg.max_write_bytes {
            return Err(Error::Invalid(format!(
                "a write of about {size} bytes is over the {}-byte limit of one write",
                self.cfg.max_write_bytes
            )));
        }
        match self.leader() {
            Some((id, _)) if id == self.cfg.id => self.write_via_leader(commands).await,
            _ => self.forwarder.submit(commands).await,
        }
    }

    async fn write_via_leader(&self, commands: Vec<Command>) -> Result<Vec<Response>> {
        match self.on_leader(PeerOp::Write(commands)).await? {
            PeerReply::Written(r) => Ok(r),
            other => Err(Error::Fatal(format!("unexpected peer reply {other:?}"))),
        }
    }

    /// Commits one command and returns its response.
    pub async fn write_one(&self, command: Command) -> Result<Response> {
        let mut r = self.write(vec![command]).await?;
        r.pop()
            .ok_or_else(|| Error::Fatal("missing response".into()))
    }

    /// Linearizable read barrier: returns once this node's state machine reflects every
    /// write committed before the call (ReadIndex through the leader).
    pub async fn read_barrier(&self) -> Result<u64> {
        let index = match self.on_leader(PeerOp::ReadIndex).await? {
            PeerReply::ReadIndex(i) => i,
            other => return Err(Error::Fatal(format!("unexpected peer reply {other:?}"))),
        };
        self.raft
            .wait(Some(self.cfg.forward_timeout))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map_err(|e| Error::Unavailable(format!("waiting to apply index {index}: {e}")))?;
        Ok(index)
    }

    /// Initialises a new cluster with `members` (call on one node, once).
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeAddr>) -> Result<()> {
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                Err(Error::Invalid("cluster is already initialized".into()))
            }
            Err(RaftError::APIError(e)) => Err(Error::Invalid(e.to_string())),
            Err(RaftError::Fatal(f)) => Err(Error::from(f)),
        }
    }

    /// Whether this node has been initialised or joined (has a membership).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Adds a node: first as a learner that catches up, then as a voter.
    pub async fn add_member(&self, id: NodeId, addr: NodeAddr) -> Result<()> {
        self.on_leader(PeerOp::AddMember { id, addr })
            .await
            .map(|_| ())
    }

    /// Removes a node (voter or learner) from the cluster.
    pub async fn remove_member(&self, id: NodeId) -> Result<()> {
        self.on_leader(PeerOp::RemoveMember { id })
            .await
            .map(|_| ())
    }

    /// Stops raft. The store is flushed.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        let (store, watermark) = (self.store.clone(), self.watermark.clone());
        let flush = move || {
            store.flush_durable().map_err(|e| e.to_string())?;
            watermark
                .record(store.applied_index())
                .map_err(|e| e.to_string())
        };
        // Bounded: after a disk failure sled may never finish it.
        if let Err(e) = bounded(Duration::from_secs(10), flush).await {
            tracing::error!(error = %e, "final flush failed; stopping anyway");
        }
    }

    /// Runs `op` on the leader: locally if this node leads, else over the peer network,
    /// retrying only while the op certainly did not take effect.
    async fn on_leader(&self, op: PeerOp) -> Result<PeerReply> {
        let deadline = Instant::now() + self.cfg.forward_timeout;
        let mut backoff = Duration::from_millis(10);
        let op = Arc::new(op);
        loop {
            let attempt = match self.leader() {
                Some((id, _)) if id == self.cfg.id => self.handle_local(&op).await,
                Some((id, addr)) => self.forward(id, &addr.peer, &op, deadline).await,
                None if !self.has_membership() => {
                    return Err(Error::Unavailable(NOT_INITIALISED.into()))
                }
                None => Err(Error::NotLeader { leader: None }),
            };
            match attempt {
                Err(Error::NotLeader { .. }) if Instant::now() + backoff < deadline => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(300));
                }
                Err(Error::NotLeader { .. }) => {
                    return Err(Error::Unavailable(format!(
                        "no leader available within {:?}",
                        self.cfg.forward_timeout
                    )))
                }
                other => return other,
            }
        }
    }

    async fn forward(
        &self,
        to: NodeId,
        addr: &str,
        op: &PeerOp,
        deadline: Instant,
    ) -> Result<PeerReply> {
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(50));
        let term = self.raft.metrics().borrow().current_term;
        let call = self.peers.call(to, addr, "/forward", op, timeout);
        let r: std::result::Result<Result<PeerReply>, TransportError> = tokio::select! {
            r = call => r,
            () = self.leader_moves_from(to, term) => {
                return Err(Error::Unavailable(format!(
                    "leader {to} was replaced while the request was on its way; outcome unknown"
                )));
            }
        };
        match r {
            Ok(reply) => reply,
            // Never sent: safe to retry once a leader is reachable.
            Err(TransportError::Unreachable(_)) => Err(Error::NotLeader { leader: None }),
            Err(TransportError::Network(m)) => Err(Error::Unavailable(format!(
                "leader {to} did not answer: {m}; outcome unknown"
            ))),
            Err(TransportError::Refused(m)) => Err(Error::Unavailable(format!(
                "leader refused the request (cluster secret?): {m}"
            ))),
            Err(TransportError::LeftOut(at)) => {
                self.removal.left_out_by(to, at);
                Err(Error::Unavailable(format!(
                    "leader {to} refused the request: this node is not in its configuration"
                )))
            }
        }
    }

    /// Returns once this node sees a term after `term` or a leader other than `to`. A
    /// request on its way to a leader that was paused or cut off would otherwise hold
    /// its forwarding slot, and the writes queued behind it, until `forward_timeout`.
    async fn leader_moves_from(&self, to: NodeId, term: u64) {
        let mut m = self.raft.metrics();
        let moved =
            |m: &RaftMetrics| m.current_term > term || m.current_leader.is_some_and(|l| l != to);
        while !moved(&m.borrow_and_update()) {
            if m.changed().await.is_err() {
                // raft stopped: the call fails on its own.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Executes `op` assuming this node leads; `NotLeader` if it does not.
    pub(crate) async fn handle_local(&self, op: &PeerOp) -> Result<PeerReply> {
        let limit = self.cfg.forward_timeout;
        let timed_out =
            || Error::Unavailable(format!("not committed within {limit:?}; outcome unknown"));
        match op {
            PeerOp::Write(cmds) => {
                let fut = self.batcher.submit(cmds.clone());
                let r = tokio::time::timeout(limit, fut)
                    .await
                    .map_err(|_| timed_out())??;
                Ok(PeerReply::Written(r))
            }
            PeerOp::ReadIndex => {
                let r = tokio::time::timeout(limit, self.raft.ensure_linearizable())
                    .await
                    .map_err(|_| timed_out())?;
                match r {
                    Ok(log_id) => Ok(PeerReply::ReadIndex(log_id.map_or(0, |l| l.index))),
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                        Err(Error::NotLeader {
                            leader: f.leader_id,
                        })
                    }
                    Err(RaftError::APIError(e)) => Err(Error::Unavailable(e.to_string())),
                    Err(RaftError::Fatal(f)) => Err(Error::from(f)),
                }
            }
            PeerOp::AddMember { id, addr } => self.add_local(*id, addr.clone()).await,
            PeerOp::RemoveMember { id } => self.remove_local(*id).await,
        }
    }

    async fn add_local(&self, id: NodeId, addr: NodeAddr) -> Result<PeerReply> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        if membership.voter_ids().any(|v| v == id) {
            if membership.membership().get_node(&id) == Some(&addr) {
                return Ok(PeerReply::Done);
            }
            return Err(Error::Invalid(format!(
                "node {id} is already a voter with other addresses"
            )));
        }
        let added = self
            .raft
            .add_learner(id, addr, false)
            .await
            .map_err(map_write_error)?;
        // openraft's blocking add_learner gives up waiting after 500 ms and returns Ok;
        // promoting a learner that cannot be replicated to (unreachable, another
        // cluster secret) would make it a voter no quorum can include.
        self.wait_caught_up(id, added.log_id.index).await?;
        let voters = BTreeSet::from([id]);
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
            .map_err(map_write_error)?;
        Ok(PeerReply::Done)
    }

    /// Waits until the leader has replicated up to `index` to `id`.
    async fn wait_caught_up(&self, id: NodeId, index: u64) -> Result<()> {
        let limit = LEARNER_CATCH_UP;
        let caught_up = |m: &RaftMetrics| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .is_some_and(|matched| matched.index >= index)
        };
        self.raft
            .wait(Some(limit))
            .metrics(caught_up, "learner caught up")
            .await
            .map(|_| ())
            .map_err(|_| {
                Error::Unavailable(format!(
                    "node {id} did not catch up within {limit:?} (unreachable, or another \
                     cluster secret?); it stays a learner until a retried add finds it caught up"
                ))
            })
    }

    async fn remove_local(&self, id: NodeId) -> Result<PeerReply> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let change = if membership.voter_ids().any(|v| v == id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else if membership.membership().get_node(&id).is_some() {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Err(Error::Invalid(format!("node {id} is not a member")));
        };
        let gone = membership.membership().get_node(&id).cloned();
        let changed = self
            .raft
            .change_membership(change, false)
            .await
            .map_err(map_write_error)?;
        if let Some(addr) = gone {
            // Tell it at once: on its own it learns only when it next campaigns.
            let (peers, at) = (self.peers.clone(), changed.log_id.index);
            tokio::spawn(async move {
                let timeout = Duration::from_secs(2);
                let sent: std::result::Result<(), _> = peers
                    .call(id, &addr.peer, "/raft/removed", &at, timeout)
                    .await;
                if let Err(e) = sent {
                    tracing::info!(node = id, error = %e, "could not tell the removed node");
                }
            });
        }
        Ok(PeerReply::Done)
    }
}

/// Counts how often the known leader changes (to another known leader).
async fn count_leader_changes(
    mut rx: tokio::sync::watch::Receiver<RaftMetrics>,
    count: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut last = rx.borrow().current_leader;
    while rx.changed().await.is_ok() {
        let now = rx.borrow().current_leader;
        if now.is_some() && now != last {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if now.is_some() {
            last = now;
        }
    }
}

impl RaftNode {
    /// How many times this node has seen the leader change.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The commit index this node knows (persisted by raft).
    /// Bytes this node's database and raft log hold on disk.
    /// The snapshots this node built since it started.
    pub fn snapshot_stats(&self) -> crate::state_machine::SnapshotStats {
        self.sm.snapshot_stats()
    }

    /// Bytes of entries appended to this node's log since it started.
    pub fn log_appended_bytes(&self) -> u64 {
        self.log.appended_bytes()
    }

    pub fn storage_bytes(&self) -> u64 {
        self.store.size_on_disk() + self.log.size_on_disk()
    }

    /// Bytes on disk of the database, the raft log and the snapshot files.
    pub fn disk_bytes(&self) -> DiskBytes {
        DiskBytes {
            db: self.store.size_on_disk(),
            raft_log: self.log.size_on_disk(),
            snapshots: self.sm.snapshot_files_bytes(),
        }
    }

    pub fn committed_index(&self) -> u64 {
        self.log.committed_index()
    }

    /// Whether this node had proof within the leader lease that it can commit: as
    /// leader, a quorum confirmed it; as follower or learner, the leader was heard.
    pub fn in_touch(&self) -> bool {
        let lease = Duration::from_millis(self.cfg.election_max_ms);
        let state = self.raft.metrics().borrow().state;
        self.touch.silence(state).is_some_and(|s| s <= lease)
    }
}
