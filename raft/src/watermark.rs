//! The durable watermark: a small file beside the database recording a raft index
//! this node had applied, so start-up can tell a database that lost acknowledged
//! entries from one that did not.
//!
//! sled recovers a damaged log by truncating it at the first record whose checksum
//! fails, as it would a write torn by a crash. After bit rot or a bad disk that
//! silently drops every later write, and the node would then answer from an old
//! state (a 404 for an acknowledged key) or, as a voter, forget entries it had
//! promised to keep. The watermark catches this: every entry up to the applied index
//! had been flushed to the log before it was applied, and committed entries are never
//! truncated, so after any legitimate restart the recovered log (or the snapshot it
//! was purged into) reaches at least the recorded index. A database that does not
//! is refused at start-up with the two indexes in the message.
//!
//! The file is rewritten (write, fsync, rename, fsync the directory) at most once per
//! [`EVERY`] while the applied index grows, and once more at shutdown.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};

/// How often the watermark follows the applied index.
pub const EVERY: Duration = Duration::from_secs(1);

const FILE: &str = "durable-index";

/// The watermark file of one data directory.
#[derive(Debug)]
pub struct Watermark {
    dir: PathBuf,
    written: AtomicU64,
}

impl Watermark {
    /// Reads the watermark of `dir` (0 when there is none yet).
    pub fn open(dir: &Path) -> Result<Watermark> {
        let path = dir.join(FILE);
        let recorded = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| {
                Error::Storage(format!("{}: not a raft index: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::Storage(format!("{}: {e}", path.display()))),
        };
        Ok(Watermark {
            dir: dir.to_path_buf(),
            written: AtomicU64::new(recorded),
        })
    }

    /// The index last recorded.
    pub fn recorded(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Refuses a database whose log and state machine recovered to `recovered`, short
    /// of the recorded watermark.
    pub fn check(&self, recovered: u64) -> Result<()> {
        let recorded = self.recorded();
        if recovered >= recorded {
            return Ok(());
        }
        Err(Error::Storage(format!(
            "data dir {}: the database recovered only up to raft index {recovered}, but \
             index {recorded} had been applied before: it lost acknowledged entries \
             (a damaged disk or file); move the data dir away and let the node rejoin \
             its cluster, which sends it a snapshot, or restore it from a backup",
            self.dir.display()
        )))
    }

    /// Records `index` if it is past what is recorded (blocking I/O).
    pub fn record(&self, index: u64) -> std::io::Result<()> {
        if index <= self.recorded() {
            return Ok(());
        }
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{index}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join(FILE))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.written.fetch_max(index, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_forward_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watermark::open(dir.path()).unwrap();
        assert_eq!(w.recorded(), 0);
        w.record(10).unwrap();
        w.record(7).unwrap();
        assert_eq!(Watermark::open(dir.path()).unwrap().recorded(), 10);
    }

    #[test]
    fn refuses_a_database_behind_the_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let w = Watermark::open(dir.path()).unwrap();
        w.record(10).unwrap();
        assert!(w.check(10).is_ok());
        assert!(w.check(11).is_ok());
        let msg = w.check(9).unwrap_err().to_string();
        assert!(msg.contains("up to raft index 9"), "{msg}");
        assert!(msg.contains("index 10"), "{msg}");
    }

    #[test]
    fn a_garbled_watermark_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "x").unwrap();
        assert!(Watermark::open(dir.path()).is_err());
    }
}
