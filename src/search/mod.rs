//! Metric metadata search (MIRADOR-CORE): the tantivy index derived from the
//! replicated catalog, the indexer that keeps it current, and the syncs that fill the
//! catalog from Prometheus-compatible sources.

pub mod index;
pub mod indexer;
pub mod settings;
pub mod source;
pub mod sync;

use std::sync::Arc;

use metacenter_raft::RaftNode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use index::{IndexError, SearchIndex, SearchQuery};
pub use indexer::Indexed;
pub use settings::{SyncConfig, SyncSource};
pub use sync::{SyncError, SyncReport, Syncer};

/// Everything the search area needs at run time.
pub struct Search {
    pub index: Arc<SearchIndex>,
    pub indexed: Indexed,
    pub syncer: Arc<Syncer>,
}

impl Search {
    /// Opens the index in `dir` and starts the indexer and the sync scheduler.
    pub fn start(
        node: Arc<RaftNode>,
        dir: &std::path::Path,
        cfg: SyncConfig,
        stop: CancellationToken,
    ) -> Result<(Search, Vec<JoinHandle<()>>), IndexError> {
        let index = Arc::new(SearchIndex::open(dir)?);
        let (indexed, t1) = indexer::start(index.clone(), node.clone(), stop.clone());
        let syncer = Arc::new(Syncer::new(node, cfg));
        let t2 = tokio::spawn(sync::run_scheduler(syncer.clone(), stop));
        let search = Search {
            index,
            indexed,
            syncer,
        };
        Ok((search, vec![t1, t2]))
    }
}
