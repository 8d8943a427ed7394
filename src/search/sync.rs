//! Metric metadata syncs: the leader pulls each tenant's source and writes the result
//! through raft — a start command (status `running`, a new generation), upserts of at
//! most `batch_size` metrics, and a finish command (status, state, and on a full sync
//! the removal of metrics the source no longer has). Every node answers state and
//! status from the replicated record; a restart or a new leader keeps them.
//!
//! Strategy: `full`, `incremental` (series active since the last sync, within the
//! lookback) or `hybrid` (incremental, full when the last full sync is older than
//! `full_sync_interval`, or there was none). The scheduler runs on the leader only.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metacenter_raft::RaftNode;
use metacenter_storage::{Command, MetricDocIn, Response, SyncOutcome, SyncRecord, SyncSettings};
use tokio_util::sync::CancellationToken;

use super::settings::{SyncConfig, SyncSource};
use super::source::Fetch;

/// What a completed sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub full: bool,
    pub processed: u64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub duration: Duration,
    pub errors: Vec<String>,
}

/// Why a sync did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no sync source is configured for tenant `{0}`")]
    NoSource(String),
    #[error("a sync of tenant `{0}` is already running")]
    Busy(String),
    #[error("sync source failed: {0}")]
    Source(String),
    #[error(transparent)]
    Raft(#[from] metacenter_raft::Error),
    #[error("unexpected answer to a sync command: {0}")]
    Unexpected(String),
}

/// Runs syncs on this node (when it leads).
pub struct Syncer {
    node: Arc<RaftNode>,
    cfg: SyncConfig,
    http: reqwest::Client,
    running: Mutex<HashSet<String>>,
}

struct Running<'a>(&'a Syncer, String);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.lock().expect("running lock").remove(&self.1);
    }
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Whether a sync now should be a full one.
pub fn wants_full(s: &SyncSettings, rec: &SyncRecord, now: i64) -> bool {
    match s.strategy.as_str() {
        "full" => true,
        "incremental" => rec.last_sync_ns.is_none(),
        _ => rec
            .last_full_sync_ns
            .is_none_or(|t| now.saturating_sub(t) >= s.full_sync_interval_ns as i64),
    }
}

impl Syncer {
    pub fn new(node: Arc<RaftNode>, cfg: SyncConfig) -> Syncer {
        Syncer {
            node,
            cfg,
            http: reqwest::Client::new(),
            running: Mutex::new(HashSet::new()),
        }
    }

    /// The settings in force: the replicated ones once set, else the node config's.
    pub fn settings(&self) -> SyncSettings {
        self.node
            .store()
            .sync_settings()
            .ok()
            .flatten()
            .unwrap_or_else(|| self.cfg.defaults.clone())
    }

    /// The configured sources.
    pub fn sources(&self) -> &[SyncSource] {
        &self.cfg.sources
    }

    fn source(&self, tenant: &str) -> Option<&SyncSource> {
        self.cfg.sources.iter().find(|s| s.tenant == tenant)
    }

    /// Syncs one tenant now (full when asked or when the strategy says so).
    pub async fn sync(&self, tenant: &str, force_full: bool) -> Result<SyncReport, SyncError> {
        let source = self
            .source(tenant)
            .ok_or_else(|| SyncError::NoSource(tenant.into()))?;
        if !self
            .running
            .lock()
            .expect("running lock")
            .insert(tenant.into())
        {
            return Err(SyncError::Busy(tenant.into()));
        }
        let _running = Running(self, tenant.into());
        let settings = self.settings();
        let store = self.node.store();
        let rec = store
            .sync_record(tenant)
            .map_err(metacenter_raft::Error::from)?;
        let start = now_ns();
        let full = force_full || wants_full(&settings, &rec, start);
        let gen = self.begin(tenant, full, start).await?;
        let clock = Instant::now();
        let window_ns = settings.lookback_ns as i64;
        let from = match (full, rec.last_sync_ns) {
            (false, Some(last)) => (last - settings.interval_ns as i64).max(start - window_ns),
            _ => start - window_ns,
        };
        let fetch = Fetch {
            http: &self.http,
            source,
            timeout: self.cfg.timeout,
            max_retries: settings.max_retries,
            retry_delay: Duration::from_nanos(settings.retry_delay_ns),
        };
        let collected = fetch
            .collect(from / 1_000_000_000, start / 1_000_000_000 + 1)
            .await;
        let (docs, errors) = match collected {
            Ok(c) => c,
            Err(e) => {
                let outcome = SyncOutcome::Failed {
                    error: e.clone(),
                    duration_ns: clock.elapsed().as_nanos() as u64,
                };
                self.finish(tenant, gen, full, outcome).await?;
                return Err(SyncError::Source(e));
            }
        };
        let mut report = SyncReport {
            full,
            processed: docs.len() as u64,
            errors,
            ..SyncReport::default()
        };
        let batch = settings.batch_size.max(1) as usize;
        self.upsert(tenant, gen, full, &docs, batch, &mut report)
            .await?;
        report.duration = clock.elapsed();
        let outcome = SyncOutcome::Completed {
            processed: report.processed,
            added: report.added,
            updated: report.updated,
            duration_ns: report.duration.as_nanos() as u64,
            errors: report.errors.clone(),
        };
        report.removed = self.finish(tenant, gen, full, outcome).await?;
        Ok(report)
    }

    /// Writes `docs` in commands of `batch`, counting what they added and updated.
    async fn upsert(
        &self,
        tenant: &str,
        gen: u64,
        full: bool,
        docs: &[MetricDocIn],
        batch: usize,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        for chunk in docs.chunks(batch) {
            let cmd = Command::CatalogUpsert {
                tenant: tenant.into(),
                gen,
                now_ns: now_ns(),
                replace_labels: full,
                docs: chunk.to_vec(),
            };
            match self.node.write_one(cmd).await? {
                Response::CatalogUpserted { added, updated } => {
                    report.added += added as u64;
                    report.updated += updated as u64;
                }
                other => return Err(SyncError::Unexpected(format!("{other:?}"))),
            }
        }
        Ok(())
    }

    async fn begin(&self, tenant: &str, full: bool, now: i64) -> Result<u64, SyncError> {
        let strategy = if full { "full" } else { "incremental" };
        let cmd = Command::CatalogSyncStart {
            tenant: tenant.into(),
            strategy: strategy.into(),
            now_ns: now,
        };
        match self.node.write_one(cmd).await? {
            Response::SyncStarted { gen } => Ok(gen),
            other => Err(SyncError::Unexpected(format!("{other:?}"))),
        }
    }

    async fn finish(
        &self,
        tenant: &str,
        gen: u64,
        full: bool,
        outcome: SyncOutcome,
    ) -> Result<u64, SyncError> {
        let cmd = Command::CatalogSyncFinish {
            tenant: tenant.into(),
            gen,
            full,
            now_ns: now_ns(),
            outcome,
        };
        match self.node.write_one(cmd).await? {
            Response::SyncFinished { removed } => Ok(removed),
            other => Err(SyncError::Unexpected(format!("{other:?}"))),
        }
    }

    fn leads(&self) -> bool {
        self.node
            .leader()
            .is_some_and(|(id, _)| id == self.node.id())
    }

    /// Whether `tenant` is due for a scheduled sync at `now`.
    fn due(&self, s: &SyncSettings, tenant: &str, now: i64) -> bool {
        if self.running.lock().expect("running lock").contains(tenant) {
            return false;
        }
        let rec = self.node.store().sync_record(tenant).unwrap_or_default();
        let last = rec.end_ns.unwrap_or(rec.start_ns);
        rec.gen == 0 || now.saturating_sub(last) >= s.interval_ns as i64
    }
}

/// The leader's scheduler: syncs each source's tenant every `interval` (one at a time).
pub async fn run_scheduler(syncer: Arc<Syncer>, stop: CancellationToken) {
    if syncer.sources().is_empty() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let settings = syncer.settings();
        if !settings.enabled || !syncer.leads() {
            continue;
        }
        let tenants: Vec<String> = syncer.sources().iter().map(|s| s.tenant.clone()).collect();
        for tenant in tenants {
            if stop.is_cancelled() || !syncer.leads() {
                break;
            }
            if !syncer.due(&settings, &tenant, now_ns()) {
                continue;
            }
            match syncer.sync(&tenant, false).await {
                Ok(r) => tracing::info!(%tenant, full = r.full, processed = r.processed,
                    added = r.added, updated = r.updated, removed = r.removed, "metadata sync completed"),
                Err(e) => tracing::warn!(%tenant, error = %e, "metadata sync failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(strategy: &str) -> SyncSettings {
        SyncSettings {
            enabled: true,
            strategy: strategy.into(),
            interval_ns: 10,
            full_sync_interval_ns: 100,
            batch_size: 10,
            max_retries: 0,
            retry_delay_ns: 1,
            lookback_ns: 1000,
        }
    }

    #[test]
    fn strategy_decides_full_or_incremental() {
        let never = SyncRecord::default();
        let synced = SyncRecord {
            last_sync_ns: Some(500),
            last_full_sync_ns: Some(450),
            ..SyncRecord::default()
        };
        assert!(wants_full(&settings("full"), &synced, 510));
        assert!(wants_full(&settings("incremental"), &never, 510));
        assert!(!wants_full(&settings("incremental"), &synced, 510));
        assert!(wants_full(&settings("hybrid"), &never, 510));
        assert!(!wants_full(&settings("hybrid"), &synced, 510));
        assert!(wants_full(&settings("hybrid"), &synced, 560));
    }
}
