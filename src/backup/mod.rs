//! Backup, restore and disaster recovery.
//!
//! - [`format`]: the backup file (header, the state machine export, SHA-256).
//! - [`write_backup`]: a consistent copy of this node's state at one applied index,
//!   written while apply goes on (the raft crate's `recovery::BackupSource` fixes it,
//!   as a snapshot build does); `GET /cluster/backup` streams it, [`schedule`] writes
//!   it to `backup.dir` on the leader.
//! - [`cli`]: `metacenter backup`, `restore` and `recover`.
//!
//! A backup never enters the raft log and apply never sees it: taking one reads the
//! clock only to stamp its header.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metacenter_raft::recovery::BackupSource;
use metacenter_storage::Store;

pub mod cli;
pub mod format;
pub mod schedule;

use format::{Hashing, Header, Member};

/// Settings of scheduled backups (`backup.*`).
#[derive(Debug, Clone, Default)]
pub struct BackupConfig {
    /// Where the leader writes them (`None`: nowhere, scheduling off).
    pub dir: Option<PathBuf>,
    /// Time between two (zero: off).
    pub interval: Duration,
    /// How many of the newest are kept.
    pub keep: usize,
}

/// This node's backups since it started, for `/metrics`, and the bound on backups
/// running at once.
#[derive(Debug)]
pub struct BackupStats {
    /// Unix seconds of the last scheduled backup written (0: none).
    pub last_success_unix: AtomicU64,
    /// Bytes of that backup.
    pub last_bytes: AtomicU64,
    /// Scheduled backups that failed.
    pub failures: AtomicU64,
    /// One backup (served or scheduled) at a time per node.
    pub running: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for BackupStats {
    fn default() -> Self {
        BackupStats {
            last_success_unix: AtomicU64::new(0),
            last_bytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            running: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

impl BackupStats {
    /// Notes a scheduled backup of `bytes` written now.
    pub fn succeeded(&self, bytes: u64) {
        let now = crate::clock::now_ms() / 1000;
        self.last_bytes.store(bytes, Ordering::Relaxed);
        self.last_success_unix.store(now, Ordering::Relaxed);
    }

    /// Notes a scheduled backup that failed.
    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// The header of a backup of `source`, written by node `node` now.
pub fn header_of(source: &BackupSource, node: u64) -> Header {
    let p = source.position();
    let members = p
        .nodes
        .iter()
        .map(|(id, a)| Member {
            id: *id,
            peer: a.peer.clone(),
            api: a.api.clone(),
            voter: p.voters.contains(id),
        })
        .collect();
    Header {
        index: p.index,
        term: p.term,
        leader: p.leader,
        members,
        taken_at: crate::clock::now_rfc3339_ms(),
        node,
    }
}

/// Writes a whole backup of `source` to `out` (blocking: run it off the async
/// workers); returns the bytes written. An error leaves `out` without a checksum.
pub fn write_backup(
    source: BackupSource,
    header: &Header,
    out: impl Write,
) -> std::io::Result<u64> {
    let mut w = Hashing::new(out);
    format::write_header(&mut w, header)?;
    source
        .write_to(&mut w)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (_, bytes) = w.finish()?;
    Ok(bytes)
}

/// Fixes the state of `store` for a backup.
pub fn begin(store: &Store) -> Result<BackupSource, metacenter_raft::Error> {
    BackupSource::begin(store)
}
