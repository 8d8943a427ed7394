//! Snapshot files on disk: `snapshot-<id>.bin` (the state-machine export) beside
//! `snapshot-<id>.meta` (the openraft meta, codec-encoded). Files are written to a
//! temporary name, fsynced and renamed, so a crash never leaves a half snapshot
//! under a final name. Only the newest snapshot is kept.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use metacenter_storage::{codec, Export};

use crate::types::SnapshotMeta;

static SEQ: AtomicU64 = AtomicU64::new(0);

fn tmp_name(dir: &Path, kind: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{kind}-{}-{n}.tmp", std::process::id()))
}

fn io(e: metacenter_storage::Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes `export` to a new temporary file, synced; returns its path.
pub(crate) fn export(export: Export, dir: &Path) -> io::Result<PathBuf> {
    let path = tmp_name(dir, "export");
    let f = SyncEvery {
        file: File::create(&path)?,
        unsynced: 0,
    };
    let mut w = BufWriter::with_capacity(1 << 20, f);
    export.write_to(&mut w).map_err(io)?;
    w.into_inner()
        .map_err(|e| e.into_error())?
        .file
        .sync_all()?;
    Ok(path)
}

/// Bytes of a snapshot written between two syncs of its file.
const SYNC_EVERY: usize = 8 << 20;

/// A file that syncs its data every [`SYNC_EVERY`] bytes, so a large snapshot reaches
/// the disk as it is written rather than in one burst at the end, which would hold
/// up the raft log's syncs on the same disk meanwhile.
struct SyncEvery {
    file: File,
    unsynced: usize,
}

impl Write for SyncEvery {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A new empty file to receive a snapshot into.
pub(crate) fn incoming(dir: &Path) -> io::Result<File> {
    let path = tmp_name(dir, "incoming");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // The open handle is all we need; the name goes so no stray file is left.
    fs::remove_file(&path)?;
    Ok(f)
}

/// Stores a received snapshot (read from `file`) as the current snapshot.
pub(crate) fn publish(dir: &Path, meta: &SnapshotMeta, mut file: File) -> io::Result<()> {
    let path = tmp_name(dir, "received");
    file.seek(SeekFrom::Start(0))?;
    let mut out = File::create(&path)?;
    io::copy(&mut file, &mut out)?;
    out.sync_all()?;
    publish_path(dir, meta, &path)?;
    Ok(())
}

/// Moves the exported file at `tmp` under its final name with its meta, removes
/// older snapshots, and opens the result for reading.
pub(crate) fn publish_path(dir: &Path, meta: &SnapshotMeta, tmp: &Path) -> io::Result<File> {
    let id = &meta.snapshot_id;
    let meta_tmp = tmp_name(dir, "meta");
    let mut m = File::create(&meta_tmp)?;
    m.write_all(&codec::encode(meta).map_err(io)?)?;
    m.sync_all()?;
    fs::rename(tmp, dir.join(format!("snapshot-{id}.bin")))?;
    fs::rename(&meta_tmp, dir.join(format!("snapshot-{id}.meta")))?;
    File::open(dir)?.sync_all()?;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let keep = name == format!("snapshot-{id}.bin") || name == format!("snapshot-{id}.meta");
        if name.starts_with("snapshot-") && !keep {
            let _ = fs::remove_file(dir.join(&name));
        }
    }
    open(dir, id)
}

/// Opens the data file of snapshot `id`.
pub(crate) fn open(dir: &Path, id: &str) -> io::Result<File> {
    File::open(dir.join(format!("snapshot-{id}.bin")))
}

/// The meta of the newest complete snapshot in `dir`; removes leftover temporaries.
pub(crate) fn latest_meta(dir: &Path) -> io::Result<Option<SnapshotMeta>> {
    let mut best: Option<SnapshotMeta> = None;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(&path);
            continue;
        }
        if !(name.starts_with("snapshot-") && name.ends_with(".meta")) {
            continue;
        }
        let meta: SnapshotMeta = codec::decode(&fs::read(&path)?).map_err(io)?;
        if !dir
            .join(format!("snapshot-{}.bin", meta.snapshot_id))
            .exists()
        {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|b| meta.last_log_id > b.last_log_id)
        {
            best = Some(meta);
        }
    }
    Ok(best)
}
