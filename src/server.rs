//! Starting and stopping one node: bind the API and peer listeners, open storage,
//! start raft, serve both routers, bootstrap or join. [`Server::start`] returns once
//! the node is serving, so tests run whole clusters in one process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metacenter_raft::batcher::BatchLimits;
use metacenter_raft::{NodeAddr, NodeConfig, RaftNode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::listen;
/// The handlers' shared state, in a module of its own ([`crate::state`]).
pub use crate::state::AppState;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("raft: {0}")]
    Raft(#[from] metacenter_raft::Error),
    #[error(transparent)]
    Search(#[from] crate::search::IndexError),
    #[error(transparent)]
    DataDir(#[from] crate::datadir::LockError),
}

/// Applied batches a live stream may have queued before it misses some (as many as
/// the node's applied-event bus holds).
const STREAM_QUEUE: usize = 1024;

/// A running node.
pub struct Server {
    state: Arc<AppState>,
    api_addr: SocketAddr,
    peer_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    /// Released when the node has stopped (dropped at the end of `shutdown`).
    _dir_lock: crate::datadir::DirLock,
}

async fn bind(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.into(),
            source,
        })
}

impl Server {
    /// Starts a node with `cfg` and returns once both listeners serve.
    pub async fn start(mut cfg: Config) -> Result<Server, StartError> {
        cfg.validate()?;
        let dir_lock = crate::datadir::lock(&cfg.data_dir)?;
        let api = bind(&cfg.listen).await?;
        let peer = bind(&cfg.peer_listen).await?;
        let (api_addr, peer_addr) = (local(&api)?, local(&peer)?);
        // Port 0 in tests: advertise what was actually bound.
        cfg.advertise_api
            .get_or_insert_with(|| api_addr.to_string());
        cfg.advertise_peer
            .get_or_insert_with(|| peer_addr.to_string());
        let addr = NodeAddr {
            peer: cfg.peer_addr().to_string(),
            api: cfg.api_addr().to_string(),
        };
        let node = RaftNode::start(node_config(&cfg, addr.clone())).await?;
        let shutdown = CancellationToken::new();
        let (search, search_tasks) = crate::search::Search::start(
            node.clone(),
            &cfg.index_dir(),
            cfg.sync.clone(),
            shutdown.clone(),
        )?;
        let state = Arc::new(AppState {
            search,
            backups: Arc::default(),
            http: reqwest::Client::new(),
            node: node.clone(),
            waiters: tokio::sync::Semaphore::new(cfg.max_waiters),
            large: crate::http::common::large::LargeReads::new(cfg.max_large_reads),
            liveness: Arc::default(),
            watches: crate::watches::Watches::default(),
            websockets: Arc::new(tokio::sync::Semaphore::new(cfg.max_websockets)),
            streams: crate::streams::Hub::new(STREAM_QUEUE),
            cfg,
            started: Instant::now(),
            shutdown: shutdown.clone(),
        });
        let mut tasks = search_tasks;
        tasks.extend(serve(&state, api, peer));
        if state.cfg.bootstrap && !node.is_initialized().await {
            tracing::info!(id = state.cfg.id, "bootstrapping a new one-node cluster");
            node.initialize(BTreeMap::from([(state.cfg.id, addr.clone())]))
                .await?;
        }
        if state.cfg.pprof_enable {
            let l = bind(&state.cfg.pprof_listen).await?;
            tracing::info!(addr = %state.cfg.pprof_listen, "CPU profiles at /debug/pprof/profile");
            let router = crate::profiling::router();
            let header_timeout = state.cfg.header_read_timeout;
            tasks.push(listen::spawn(l, router, shutdown.clone(), header_timeout));
        }
        tasks.push(tokio::spawn(crate::housekeeping::run(state.clone())));
        tasks.push(tokio::spawn(crate::backup::schedule::run(state.clone())));
        crate::oversized::spawn_check(node.store().clone(), state.cfg.limits.object);
        if let Some(join) = state.cfg.join.clone() {
            tasks.push(tokio::spawn(join_cluster(state.clone(), join, addr)));
        } else if !node.is_initialized().await {
            tracing::warn!("{}", metacenter_raft::node::NOT_INITIALISED);
        }
        tracing::info!(id = state.cfg.id, api = %api_addr, peer = %peer_addr, "metacenter node serving");
        Ok(Server {
            state,
            api_addr,
            peer_addr,
            tasks,
            _dir_lock: dir_lock,
        })
    }

    /// The bound client API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The bound peer address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The raft node.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.state.node
    }

    /// Stops serving, stops raft and flushes storage.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.state.node.shutdown().await;
    }
}

/// The raft layer's settings, taken from the node's configuration.
fn node_config(cfg: &Config, addr: NodeAddr) -> NodeConfig {
    let mut ncfg = NodeConfig::new(
        cfg.id,
        cfg.data_dir.clone(),
        addr.clone(),
        cfg.secret.clone(),
    );
    ncfg.insecure = cfg.insecure;
    ncfg.heartbeat_ms = cfg.heartbeat_ms;
    ncfg.election_min_ms = cfg.election_min_ms;
    ncfg.election_max_ms = cfg.election_max_ms;
    ncfg.snapshot_every = cfg.snapshot_every;
    ncfg.snapshot_log_ratio = cfg.snapshot_log_ratio;
    ncfg.snapshot_min_log_bytes = cfg.snapshot_min_log_bytes;
    ncfg.pack_log = cfg.pack_log;
    ncfg.keep_logs = cfg.keep_logs;
    ncfg.keep_log_bytes = cfg.keep_log_bytes;
    ncfg.log_segment_bytes = cfg.log_segment_bytes;
    ncfg.forward_timeout = cfg.forward_timeout;
    ncfg.batch = BatchLimits {
        max_commands: cfg.batch_max_commands,
        max_in_flight: cfg.batch_max_in_flight,
        ..BatchLimits::default()
    };
    ncfg.forward_in_flight = cfg.forward_max_in_flight;
    ncfg.max_write_bytes = ncfg.max_write_bytes.max(cfg.max_body_bytes);
    ncfg.faults = cfg.faults.clone();
    ncfg
}

/// Runs `task` until it ends or the node shuts down.
fn spawn_until(
    stop: CancellationToken,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            () = task => {}
            () = stop.cancelled() => {}
        }
    })
}

/// Spawns the live-stream hub and the watch waker, and serves the peer and client
/// routers.
fn serve(state: &Arc<AppState>, api: TcpListener, peer: TcpListener) -> Vec<JoinHandle<()>> {
    let node = &state.node;
    let stop = &state.shutdown;
    let hub_task = spawn_until(stop.clone(), state.streams.clone().run(node.subscribe()));
    let watch_task = spawn_until(stop.clone(), state.watches.clone().run(node.subscribe()));
    let liveness = state
        .liveness
        .clone()
        .follow(node.store().clone(), node.subscribe());
    let liveness_task = spawn_until(stop.clone(), liveness);
    let header_timeout = state.cfg.header_read_timeout;
    let peer_router = metacenter_raft::peer::router(node.clone());
    let api_router = crate::http::router(state.clone());
    vec![
        hub_task,
        watch_task,
        liveness_task,
        listen::spawn(peer, peer_router, state.shutdown.clone(), header_timeout),
        listen::spawn(api, api_router, state.shutdown.clone(), header_timeout),
    ]
}

fn local(l: &TcpListener) -> Result<SocketAddr, StartError> {
    l.local_addr().map_err(|source| StartError::Bind {
        addr: "?".into(),
        source,
    })
}

/// Asks the member at `join` to add this node, retrying until it succeeds, this node
/// is already a voter, or the node shuts down.
async fn join_cluster(state: Arc<AppState>, join: String, addr: NodeAddr) {
    let client = reqwest::Client::new();
    let body = serde_json::json!({ "id": state.cfg.id, "peer": addr.peer, "api": addr.api });
    // With client authentication on, /cluster/add needs an admin token: this node's own.
    let token = state
        .cfg
        .auth_tokens
        .iter()
        .find(|t| t.role == crate::auth::Role::Admin)
        .map(|t| t.token.clone());
    let mut backoff = Duration::from_millis(100);
    loop {
        let m = state.node.metrics();
        if m.membership_config.voter_ids().any(|v| v == state.cfg.id) {
            tracing::info!("this node is a voter");
            return;
        }
        let url = format!("http://{join}/cluster/add");
        let mut req = client.post(&url).json(&body);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        match req.timeout(Duration::from_secs(120)).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(%join, "joined the cluster");
                return;
            }
            Ok(r) => tracing::warn!(%join, status = %r.status(), "join refused; retrying"),
            Err(e) => tracing::warn!(%join, error = %e, "join failed; retrying"),
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
