//! Opening a path beneath the files root in one step.
//!
//! Checking a path (canonicalize, compare with the root) and then opening it leaves a
//! window in which a client with write access inside the root can swap a directory on
//! the path for a symlink that leads out. Here the root is opened once and the path is
//! resolved by the kernel beneath it (`openat2` with `RESOLVE_BENEATH` and
//! `RESOLVE_NO_MAGICLINKS`): whatever changes on disk meanwhile, the descriptor handed
//! back is for something inside the root, and every later read or `fstat` goes through
//! that descriptor, never the path again.
//!
//! `RESOLVE_BENEATH` refuses absolute symlinks even when they point inside the root.
//! For those the path is canonicalized as before, and the canonical path, relative to
//! the root, is opened again beneath it with no symlinks allowed at all
//! (`RESOLVE_NO_SYMLINKS`): the canonical path is only a hint, the open still cannot
//! leave the root.

use std::fs::{File, Metadata};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Why a path was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Confine {
    /// It leads outside the files root (or is empty, or has a NUL byte).
    Outside,
    /// It is inside the root but does not exist, or is not a regular file.
    Missing,
    /// The file system refused otherwise (permissions, no `openat2`, ...).
    Io(Errno),
}

/// What the descriptor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading the bytes.
    Read,
    /// Only `fstat` (an `O_PATH` descriptor: no read permission needed).
    Stat,
}

/// Something opened beneath the root, with the `fstat` of its descriptor.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub meta: Metadata,
}

impl Opened {
    /// The opened thing if it is a regular file; a directory, a FIFO or a device is
    /// [`Confine::Missing`] (there is no file to serve).
    pub fn regular(self) -> Result<Opened, Confine> {
        if self.meta.is_file() {
            Ok(self)
        } else {
            Err(Confine::Missing)
        }
    }
}

/// How often an open is retried when the kernel answers `EAGAIN` (a rename raced with
/// a `..` in a symlink being resolved) before the path is refused.
const AGAIN_TRIES: usize = 8;

/// Opens `path` (relative to `root`, or absolute inside it) beneath `root`.
///
/// `..` components and empty paths are refused outright. An absolute path must lie
/// under the root as configured or under its canonical form. Symlinks are followed as
/// long as they stay inside the root; a path that leads out is [`Confine::Outside`],
/// also when what it leads to does not exist (otherwise "missing" versus "outside"
/// would tell what exists beyond the root).
pub fn open_beneath(root: &Path, path: &str, access: Access) -> Result<Opened, Confine> {
    let p = Path::new(path);
    // No file has a NUL in its name; calling it missing would tell, through a link that
    // leads out, what exists beyond the root.
    let bad = path.is_empty() || path.contains('\0');
    if bad || p.components().any(|c| c == Component::ParentDir) {
        return Err(Confine::Outside);
    }
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|_| Confine::Missing)?;
    let real_root = root.canonicalize().map_err(|_| Confine::Missing)?;
    let rel = relative(root, &real_root, p)?;

    let flags = match access {
        // NONBLOCK: opening a FIFO must not wait for a writer. NOCTTY: a terminal
        // never becomes the controlling one. Neither changes reading a regular file.
        Access::Read => OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Access::Stat => OFlags::PATH | OFlags::CLOEXEC,
    };
    let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let fd = match open_at(&root_fd, &rel, flags, beneath) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG) => return Err(Confine::Missing),
        // A symlink that is absolute or climbs above the root, or a loop: decide with
        // the canonical path, then open that without following any link.
        Err(Errno::XDEV | Errno::LOOP) => {
            let rel = canonical_relative(&real_root, &real_root.join(&rel))?;
            match open_at(&root_fd, &rel, flags, beneath | ResolveFlags::NO_SYMLINKS) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG) => {
                    return Err(Confine::Missing)
                }
                // A link appeared where the canonical path had none: something is
                // being swapped under us.
                Err(Errno::XDEV | Errno::LOOP | Errno::AGAIN) => return Err(Confine::Outside),
                Err(e) => return Err(Confine::Io(e)),
            }
        }
        Err(Errno::AGAIN) => return Err(Confine::Outside),
        Err(e) => return Err(Confine::Io(e)),
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| Confine::Io(io_errno(&e)))?;
    Ok(Opened { file, meta })
}

/// `path` relative to the root: relative paths as they are (`.` for the root itself),
/// absolute ones with the configured or the canonical root stripped.
fn relative(root: &Path, real_root: &Path, p: &Path) -> Result<PathBuf, Confine> {
    let rel = if p.is_absolute() {
        p.strip_prefix(root)
            .or_else(|_| p.strip_prefix(real_root))
            .map_err(|_| Confine::Outside)?
    } else {
        p
    };
    let rel: PathBuf = rel
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    Ok(if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    })
}

/// The canonical form of `joined` relative to the canonical root. When it cannot be
/// canonicalized, it is missing only if what exists of it is inside the root.
fn canonical_relative(real_root: &Path, joined: &Path) -> Result<PathBuf, Confine> {
    let Ok(real) = joined.canonicalize() else {
        let existing = joined.ancestors().find_map(|a| a.canonicalize().ok());
        return Err(match existing {
            Some(e) if e.starts_with(real_root) => Confine::Missing,
            _ => Confine::Outside,
        });
    };
    let rel = real.strip_prefix(real_root).map_err(|_| Confine::Outside)?;
    Ok(if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel.to_path_buf()
    })
}

/// `openat2(dir, rel, flags, resolve)`, retried a few times on `EAGAIN`.
fn open_at(
    dir: &OwnedFd,
    rel: &Path,
    flags: OFlags,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(dir, rel, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries + 1 < AGAIN_TRIES => tries += 1,
            r => return r,
        }
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(root: &Path, path: &str) -> Result<Vec<u8>, Confine> {
        let mut o = open_beneath(root, path, Access::Read)?.regular()?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut o.file, &mut out).unwrap();
        Ok(out)
    }

    #[test]
    fn confinement() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/f.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("abs-in")).unwrap();
        std::os::unix::fs::symlink("a/f.txt", root.join("rel-in")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("rel-out")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(open(&root, "a/f.txt"), Ok(b"x".to_vec()));
        assert_eq!(open(&root, "./a/./f.txt"), Ok(b"x".to_vec()));
        assert_eq!(
            open(&root, root.join("a/f.txt").to_str().unwrap()),
            Ok(b"x".to_vec())
        );
        assert_eq!(open(&root, "abs-in/f.txt"), Ok(b"x".to_vec()));
        assert_eq!(open(&root, "rel-in"), Ok(b"x".to_vec()));
        assert_eq!(open(&root, "../secret"), Err(Confine::Outside));
        assert_eq!(open(&root, "a/../../secret"), Err(Confine::Outside));
        assert_eq!(open(&root, "a/../a/f.txt"), Err(Confine::Outside));
        assert_eq!(
            open(&root, dir.path().join("secret").to_str().unwrap()),
            Err(Confine::Outside)
        );
        assert_eq!(open(&root, "link"), Err(Confine::Outside));
        assert_eq!(open(&root, "rel-out"), Err(Confine::Outside));
        assert_eq!(open(&root, "link/nope"), Err(Confine::Outside));
        assert_eq!(open(&root, "a/nope"), Err(Confine::Missing));
        assert_eq!(open(&root, "abs-in/nope"), Err(Confine::Missing));
        assert_eq!(open(&root, "a/f.txt/nope"), Err(Confine::Missing));
        assert_eq!(open(&root, "loop/x"), Err(Confine::Missing));
        assert_eq!(open(&root, "a"), Err(Confine::Missing), "a directory");
        assert_eq!(open(&root, "."), Err(Confine::Missing), "the root itself");
        assert_eq!(
            open(&root, "a/f\0.txt"),
            Err(Confine::Outside),
            "no name has a NUL"
        );
        assert_eq!(open(&root, ""), Err(Confine::Outside));
        // An O_PATH open sees the same, and directories too.
        assert!(open_beneath(&root, "a", Access::Stat)
            .unwrap()
            .meta
            .is_dir());
        assert!(open_beneath(&root, "abs-in/f.txt", Access::Stat)
            .unwrap()
            .meta
            .is_file());
        assert_eq!(
            open_beneath(&root, "link", Access::Stat).err(),
            Some(Confine::Outside)
        );
    }

    #[test]
    fn a_fifo_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert_eq!(open(dir.path(), "fifo"), Err(Confine::Missing));
    }
}
