//! The files area's path confinement as a property: whatever path a client or a
//! metadata `filePath` holds, [`crate::http::files::open_beneath`] must never open
//! anything outside the files root, and must not tell what exists outside it either.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use super::{scratch_dir, text};
use crate::http::files::{open_beneath, Access, Confine};

/// The scratch tree, made once per process:
///
/// ```text
/// base/root/a/f.txt        base/root/in  -> base/root/a   (a link that stays inside)
/// base/root/a/b/           base/root/out -> base/secret   (a link that leads out)
/// base/secret              base/root/up  -> base          (a directory link out)
/// base/rootx/f.txt         base/root/loop -> base/root/loop
/// ```
struct Tree {
    /// The root as configured (not canonical).
    root: PathBuf,
    /// The root canonicalized.
    real_root: PathBuf,
    /// Device and inode of every file and directory inside the root (links not
    /// followed): whatever is opened must be one of them.
    inside: HashSet<(u64, u64)>,
}

/// Device and inode of `dir` and of everything beneath it, not following links.
fn inodes(dir: &Path, out: &mut HashSet<(u64, u64)>) -> std::io::Result<()> {
    let meta = dir.symlink_metadata()?;
    out.insert((meta.dev(), meta.ino()));
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            inodes(&entry?.path(), out)?;
        }
    }
    Ok(())
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let base = scratch_dir().join("files");
        let root = base.join("root");
        let made = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(root.join("a/b"))?;
            std::fs::create_dir_all(base.join("rootx"))?;
            std::fs::write(root.join("a/f.txt"), b"inside")?;
            std::fs::write(base.join("secret"), b"outside")?;
            std::fs::write(base.join("rootx/f.txt"), b"beside")?;
            for (link, to) in [
                ("in", root.join("a")),
                ("out", base.join("secret")),
                ("up", base.clone()),
                ("loop", root.join("loop")),
            ] {
                let link = root.join(link);
                if link.symlink_metadata().is_err() {
                    std::os::unix::fs::symlink(to, link)?;
                }
            }
            Ok(())
        })();
        made.expect("make the files scratch tree");
        let real_root = root.canonicalize().expect("canonical root");
        let mut inside = HashSet::new();
        inodes(&real_root, &mut inside).expect("list the files scratch tree");
        Tree {
            root,
            real_root,
            inside,
        }
    })
}

/// A path as stored in metadata or sent to `POST /file/cid`. A leading `@` stands for
/// the root's absolute path (unknown to the fuzzer: it holds the process id), so that
/// absolute paths inside, beside (`@x/f.txt`) and under the root are reachable.
pub fn api_files(data: &[u8]) -> bool {
    let t = tree();
    let raw = text(data);
    let path = match raw.strip_prefix('@') {
        Some(rest) => format!("{}{rest}", t.root.display()),
        None => raw,
    };
    let r = open_beneath(&t.root, &path, Access::Stat).map(|o| o.meta);
    let p = Path::new(&path);
    if p.components().any(|c| c == Component::ParentDir) {
        assert_eq!(
            r.as_ref().err(),
            Some(&Confine::Outside),
            "`..` in {path:?}"
        );
    }
    match &r {
        Ok(meta) => assert!(
            t.inside.contains(&(meta.dev(), meta.ino())),
            "{path:?} opened something outside the root: {meta:?}"
        ),
        Err(Confine::Missing) => {
            // What exists of the path must be inside the root: otherwise "missing"
            // versus "outside" would tell which files exist beyond it.
            let joined = if p.is_absolute() {
                p.to_path_buf()
            } else {
                t.root.join(p)
            };
            if let Some(existing) = joined.ancestors().find_map(|a| a.canonicalize().ok()) {
                assert!(
                    existing.starts_with(&t.real_root),
                    "{path:?} is called missing, but exists up to {existing:?} outside the root"
                );
            }
        }
        Err(Confine::Outside | Confine::Io(_)) => {}
    }
    r.is_ok()
}
