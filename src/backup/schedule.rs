//! Scheduled backups: with `backup.dir` set and `backup.interval` above zero, the
//! leader writes a backup there every interval, as `metacenter-<UTC time>-<index>.mcbak`
//! (written as `.partial`, synced, then renamed), and keeps the newest `backup.keep`.
//!
//! Every node runs the schedule; only the leader acts. A node that becomes leader
//! carries on from the newest backup in its own `backup.dir` (a shared directory
//! carries on from the previous leader's), so a failover neither skips a backup for
//! long nor writes two in a row. Successes and failures are this node's `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metacenter_storage::Store;

const PREFIX: &str = "metacenter-";
const SUFFIX: &str = ".mcbak";
/// How often the schedule looks at leadership and the clock.
const TICK: Duration = Duration::from_millis(500);
/// The wait before another attempt after a failure (at most the interval).
const RETRY: Duration = Duration::from_secs(30);

/// Runs the schedule until `shutdown`; returns at once when it is off.
pub async fn run(state: Arc<crate::state::AppState>) {
    let (cfg, stats) = (state.cfg.backup.clone(), state.backups.clone());
    let Some(dir) = cfg.dir.clone().filter(|_| !cfg.interval.is_zero()) else {
        return;
    };
    let mut was_leader = false;
    let mut next = SystemTime::now();
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let leader = state
            .node
            .leader()
            .is_some_and(|(id, _)| id == state.node.id());
        if leader && !was_leader {
            next = newest(&dir).map_or_else(SystemTime::now, |t| t + cfg.interval);
        }
        was_leader = leader;
        if !leader || SystemTime::now() < next {
            continue;
        }
        let Ok(permit) = stats.running.clone().try_acquire_owned() else {
            continue; // a served backup is running: try again at the next tick
        };
        let (store, id, dir_c) = (state.node.store().clone(), state.node.id(), dir.clone());
        let keep = cfg.keep.max(1);
        let done = tokio::task::spawn_blocking(move || {
            let _one_at_a_time = permit;
            write_and_rotate(&store, id, &dir_c, keep)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match done {
            Ok((path, bytes)) => {
                tracing::info!(path = %path.display(), bytes, "scheduled backup written");
                stats.succeeded(bytes);
                next = SystemTime::now() + cfg.interval;
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "scheduled backup failed");
                stats.failed();
                next = SystemTime::now() + cfg.interval.min(RETRY);
            }
        }
    }
}

/// Writes one backup into `dir`, then removes all but the newest `keep`.
fn write_and_rotate(
    store: &Store,
    node: u64,
    dir: &Path,
    keep: usize,
) -> std::io::Result<(PathBuf, u64)> {
    std::fs::create_dir_all(dir)?;
    let source = super::begin(store).map_err(|e| std::io::Error::other(e.to_string()))?;
    let header = super::header_of(&source, node);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let name = format!("{PREFIX}{stamp}-{}{SUFFIX}", header.index);
    let path = dir.join(&name);
    let partial = dir.join(format!("{name}.partial"));
    let written = (|| -> std::io::Result<u64> {
        let file = std::fs::File::create(&partial)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let bytes = super::write_backup(source, &header, &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&partial, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(bytes)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let bytes = written?;
    rotate(dir, keep)?;
    Ok((path, bytes))
}

/// The backups in `dir`, oldest first (their names sort by time).
pub fn backups_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Removes all but the newest `keep` backups of `dir`.
fn rotate(dir: &Path, keep: usize) -> std::io::Result<()> {
    let all = backups_in(dir)?;
    for old in &all[..all.len().saturating_sub(keep)] {
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// When the newest backup in `dir` was written.
fn newest(dir: &Path) -> Option<SystemTime> {
    let last = backups_in(dir).ok()?.pop()?;
    std::fs::metadata(last).ok()?.modified().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            let name = format!("{PREFIX}20260101T00000{i}.000Z-{i}{SUFFIX}");
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"keep me").unwrap();
        rotate(dir.path(), 2).unwrap();
        let left: Vec<String> = backups_in(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [
                format!("{PREFIX}20260101T000003.000Z-3{SUFFIX}"),
                format!("{PREFIX}20260101T000004.000Z-4{SUFFIX}")
            ]
        );
        assert!(dir.path().join("notes.txt").exists());
    }
}
