//! [`AppState`]: what every client API handler, the request middleware and the
//! node's background tasks share — the raft node, the configuration, the bounds on
//! large answers, blocking queries and live streams, and the search index — plus
//! [`AppState::read_store`] for reads of the local store that may scan many keys.

use std::sync::Arc;
use std::time::Instant;

use metacenter_raft::RaftNode;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Shared state of the HTTP handlers.
pub struct AppState {
    pub node: Arc<RaftNode>,
    pub cfg: Config,
    pub started: Instant,
    pub shutdown: CancellationToken,
    /// When this node last applied word from each service (expiry by the leader).
    pub liveness: Arc<crate::liveness::Liveness>,
    /// Bounds the large answers held at once.
    pub large: crate::http::common::large::LargeReads,
    /// Bounds the blocking queries waiting at once.
    pub waiters: tokio::sync::Semaphore,
    /// Who the blocking queries wait for.
    pub watches: crate::watches::Watches,
    /// Bounds the open WebSocket streams.
    pub websockets: Arc<tokio::sync::Semaphore>,
    /// Hands applied point batches to the streams of their runs.
    pub streams: Arc<crate::streams::Hub>,
    /// HTTP client for relaying requests to the leader's API.
    pub http: reqwest::Client,
    /// Metric metadata index, indexer and syncs.
    pub search: crate::search::Search,
    /// Backups of this node: one at a time, and the scheduled ones' figures.
    pub backups: Arc<crate::backup::BackupStats>,
}

impl AppState {
    /// Runs a read of the local store that may scan many keys (history, listings) on a
    /// blocking thread: sled calls block, and a long scan must not hold an async worker.
    pub async fn read_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&metacenter_storage::Store) -> metacenter_storage::Result<T> + Send + 'static,
    ) -> metacenter_storage::Result<T> {
        let store = self.node.store().clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| metacenter_storage::Error::Engine(format!("read task failed: {e}")))?
    }
}
