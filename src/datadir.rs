//! The data directory's lock, taken before a node binds a port or opens its database,
//! so that a second process started on a directory another one holds stops at once
//! with the reason instead of waiting on the database's own lock and then suggesting
//! that the (healthy, busy) directory is damaged.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The lock file inside a data directory.
pub const LOCK_FILE: &str = "metacenter.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} is in use by another metacenter process (stop it, or give this node another --data-dir)", .0.display())]
    InUse(PathBuf),
    #[error("cannot lock the data directory {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Held for as long as a node uses its data directory; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Creates `dir` if needed and locks it for this process, failing at once when
/// another process (or another node in this process) holds it.
pub fn lock(dir: &Path) -> Result<DirLock, LockError> {
    let io = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(LockError::InUse(dir.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err();
        assert!(matches!(err, LockError::InUse(_)), "{err}");
        assert!(err
            .to_string()
            .contains("in use by another metacenter process"));
        drop(held);
        lock(dir.path()).expect("free again once released");
    }
}
