//! The files area's path confinement as a property: whatever path a client or a
//! metadata `filePath` holds, [`crate::http::files::confine`] must never resolve it
//! outside the files root, and must not tell what exists outside it either.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use super::{scratch_dir, text};
use crate::http::files::{confine, Confine};

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
        Tree { root, real_root }
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
    let r = confine(&t.root, &path);
    let p = Path::new(&path);
    if p.components().any(|c| c == Component::ParentDir) {
        assert_eq!(r, Err(Confine::Outside), "`..` in {path:?}");
    }
    match &r {
        Ok(real) => {
            assert!(
                real.starts_with(&t.real_root),
                "{path:?} -> {real:?} escapes"
            );
            let again = real.canonicalize().expect("a confined path exists");
            assert_eq!(&again, real, "{path:?}: the confined path is not canonical");
        }
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
        Err(Confine::Outside) => {}
    }
    r.is_ok()
}
