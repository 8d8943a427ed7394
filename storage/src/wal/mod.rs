//! [`Wal`]: the raft log as append-only segment files, apart from sled.
//!
//! Why not a sled tree: every durable sled flush seals an I/O buffer and hands it to
//! sled's thread pool, which wakes all of its threads; at a few thousand flushes a
//! second that cost a third of a follower's CPU (BENCHMARKS.md). Here an append is
//! one `write` of its frames and durability one `fdatasync` of the active segment, by
//! whoever calls [`Wal::sync`] (the raft crate's flusher, once per group of appends).
//! Segments are preallocated to their full size when created (`fallocate`, where the
//! file system has it), so a sync writes data only: appending to a file that grows
//! would also commit its new size to the file system's journal, every time (on ext4
//! here a `fdatasync` of a growing file took 0.13–0.20 ms p50, of a preallocated one
//! 0.07–0.12 ms; it is on the write path twice, leader then follower).
//!
//! Layout: `<dir>/<seq>.wal`, `seq` growing by one per segment. Records
//! (module `record`) are entries, the vote, the committed id, purges and truncations; each
//! segment starts with the vote, committed and purged values current when it was
//! opened, so deleting older segments loses none of them. Nothing is overwritten:
//! a truncation is a record, and recovery replays every record in order
//! (`index::Index::apply`). A segment's records end where only zeros follow. A torn
//! frame at the end of the last segment (a crash mid-write) is cut off at open; a
//! damaged frame anywhere else is an error.
//!
//! Durability contract: records are durable once a later [`Wal::sync`] (or
//! [`Wal::purge_upto`], which syncs) returns; syncs cover every record written before
//! them, in order. After a failed write or sync the log refuses every later write:
//! what reached the disk is then unknown.

mod index;
mod record;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use index::{Index, Loc};
use record::{Parsed, Record};

use crate::{Error, Result};

/// A segment is closed once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// The raft log of one node. Share it with an `Arc`.
pub struct Wal {
    inner: Mutex<Inner>,
}

struct Segment {
    seq: u64,
    file: Arc<File>,
    /// Highest entry index ever written to it (0 if none).
    max_index: u64,
    /// Bytes of records written to it (the file may be longer: preallocated zeros).
    len: u64,
}

struct Inner {
    dir: PathBuf,
    segment_bytes: u64,
    /// Oldest first; the last one takes appends.
    segments: Vec<Segment>,
    index: Index,
    /// The committed value changed since it was last written.
    committed_dirty: bool,
    /// Set by a failed write or sync.
    failed: Option<String>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::engine_io(format_args!("raft log {what} {}", path.display()), e)
}

impl Wal {
    /// Opens (or creates) the log in `dir`, replaying what is there.
    pub fn open(dir: &Path) -> Result<Wal> {
        Wal::open_with(dir, SEGMENT_BYTES)
    }

    /// [`Wal::open`] with another segment size (tests use small ones).
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<Wal> {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: Vec::new(),
            index: Index::default(),
            committed_dirty: false,
            failed: None,
        };
        let seqs = segment_seqs(dir)?;
        for (i, seq) in seqs.iter().enumerate() {
            inner.replay(*seq, i + 1 == seqs.len())?;
        }
        if inner.segments.is_empty() {
            inner.open_segment(1)?;
        }
        Ok(Wal {
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("wal lock poisoned")
    }

    /// True when the log holds no entry and no value (a new log).
    pub fn is_empty(&self) -> bool {
        let g = self.lock();
        g.index.entries.is_empty()
            && g.index.vote.is_none()
            && g.index.committed.is_none()
            && g.index.purged.is_none()
    }

    /// Appends entries `(index, encoded entry)` in one write (durable after a sync).
    pub fn append(&self, entries: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Result<()> {
        let entries: Vec<_> = entries.into_iter().collect();
        let mut g = self.lock();
        g.writable()?;
        if g.active().len >= g.segment_bytes {
            g.rotate()?;
        }
        let mut buf = g.take_dirty_committed();
        let mut offsets = Vec::with_capacity(entries.len());
        for (index, data) in &entries {
            let at = buf.len();
            record::encode(
                &Record::Entry {
                    index: *index,
                    data,
                },
                &mut buf,
            );
            offsets.push(at);
        }
        let base = g.write(&buf)?;
        let file = g.active().file.clone();
        for ((index, data), at) in entries.iter().zip(offsets) {
            let off = base + (at + record::HEADER + record::ENTRY_PREFIX) as u64;
            let loc = Loc {
                file: file.clone(),
                off,
                len: data.len(),
            };
            g.index.apply(
                &Record::Entry {
                    index: *index,
                    data,
                },
                Some(loc),
            );
            let active = g.segments.last_mut().expect("an active segment");
            active.max_index = active.max_index.max(*index);
        }
        Ok(())
    }

    /// Makes every record written so far durable.
    pub fn sync(&self) -> Result<()> {
        let file = {
            let g = self.lock();
            g.writable()?;
            g.active().file.clone()
        };
        file.sync_data()
            .map_err(|e| self.lock().fail("fdatasync in", e))
    }

    /// The entries with index in `[start, end)` (`end` `None`: to the last), in order.
    pub fn range(&self, start: u64, end: Option<u64>) -> Result<Vec<Vec<u8>>> {
        let locs = self.lock().index.range(start, end);
        locs.iter()
            .map(|l| {
                let mut buf = vec![0; l.len];
                l.file
                    .read_exact_at(&mut buf, l.off)
                    .map_err(|e| io("read in", &self.lock().dir, e))?;
                Ok(buf)
            })
            .collect()
    }

    /// The last live entry, if any.
    pub fn last_entry(&self) -> Result<Option<Vec<u8>>> {
        let Some(last) = self.lock().index.last() else {
            return Ok(None);
        };
        Ok(self.range(last, Some(last + 1))?.pop())
    }

    /// The highest index to purge so that the live entries up to `upto` that remain
    /// hold at most `keep_bytes` bytes (the newest of them kept), or `None` when they
    /// already do.
    pub fn purge_point(&self, upto: u64, keep_bytes: u64) -> Option<u64> {
        let g = self.lock();
        let mut held = 0u64;
        for (i, loc) in g.index.entries.range(..=upto).rev() {
            held += loc.len as u64;
            if held > keep_bytes {
                return Some(*i);
            }
        }
        None
    }

    /// Index of the last live entry, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.lock().index.last()
    }

    /// Removes the entries with index >= `from` (durable with the next sync).
    pub fn truncate_from(&self, from: u64) -> Result<()> {
        let mut g = self.lock();
        g.record(&Record::Truncate { from })
    }

    /// Removes the entries with index <= `upto` and records `data` as the purged id;
    /// durable on return. Deletes the segments that held nothing newer.
    pub fn purge_upto(&self, upto: u64, data: &[u8]) -> Result<()> {
        let mut g = self.lock();
        g.record(&Record::Purged { upto, data })?;
        g.sync_active()?;
        g.drop_segments(upto);
        Ok(())
    }

    /// Records the vote (durable with the next sync).
    pub fn set_vote(&self, vote: &[u8]) -> Result<()> {
        self.lock().record(&Record::Vote(vote))
    }

    /// The vote last recorded.
    pub fn vote(&self) -> Option<Vec<u8>> {
        self.lock().index.vote.clone()
    }

    /// Sets the committed value; it is written with the next append, purge or vote
    /// (raft does not need it durable: it only saves re-applying after a restart).
    pub fn set_committed(&self, committed: &[u8]) {
        let mut g = self.lock();
        g.index.committed = Some(committed.to_vec());
        g.committed_dirty = true;
    }

    /// The committed value last set.
    pub fn committed(&self) -> Option<Vec<u8>> {
        self.lock().index.committed.clone()
    }

    /// The purged value last recorded.
    pub fn purged(&self) -> Option<Vec<u8>> {
        self.lock().index.purged.as_ref().map(|(_, d)| d.clone())
    }

    /// Bytes of records the segment files hold.
    pub fn size_on_disk(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.len).sum()
    }

    /// Number of segment files (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }
}

impl Inner {
    fn active(&self) -> &Segment {
        self.segments.last().expect("an active segment")
    }

    fn writable(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(Error::Engine(format!(
                "raft log refuses writes after an earlier failure: {e}"
            ))),
            None => Ok(()),
        }
    }

    /// Marks the log failed by `e`; every later write is refused.
    fn fail(&mut self, what: &str, e: std::io::Error) -> Error {
        let err = io(what, &self.dir, e);
        self.failed = Some(err.to_string());
        err
    }

    /// Writes `buf` at the end of the active segment; returns the offset it starts at.
    fn write(&mut self, buf: &[u8]) -> Result<u64> {
        self.writable()?;
        let at = self.active().len;
        if let Err(e) = self.active().file.write_all_at(buf, at) {
            return Err(self.fail("write in", e));
        }
        self.segments.last_mut().expect("an active segment").len += buf.len() as u64;
        Ok(at)
    }

    /// Writes one non-entry record (with a pending committed value first).
    fn record(&mut self, rec: &Record<'_>) -> Result<()> {
        let mut buf = self.take_dirty_committed();
        record::encode(rec, &mut buf);
        self.write(&buf)?;
        self.index.apply(rec, None);
        Ok(())
    }

    fn take_dirty_committed(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        if std::mem::take(&mut self.committed_dirty) {
            if let Some(c) = &self.index.committed {
                record::encode(&Record::Committed(c), &mut buf);
            }
        }
        buf
    }

    fn sync_active(&mut self) -> Result<()> {
        match self.active().file.sync_data() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail("fdatasync in", e)),
        }
    }

    /// Closes the active segment (durably) and opens the next.
    fn rotate(&mut self) -> Result<()> {
        self.sync_active()?;
        let next = self.active().seq + 1;
        self.open_segment(next)
    }

    /// Creates segment `seq`, makes its name durable and starts it with the values.
    fn open_segment(&mut self, seq: u64) -> Result<()> {
        let path = self.dir.join(segment_name(seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io("create", &path, e))?;
        preallocate(&file, &path, self.segment_bytes);
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync", &self.dir, e))?;
        self.segments.push(Segment {
            seq,
            file: Arc::new(file),
            max_index: 0,
            len: 0,
        });
        let mut buf = Vec::new();
        let ix = &self.index;
        if let Some(v) = &ix.vote {
            record::encode(&Record::Vote(v), &mut buf);
        }
        if let Some(c) = &ix.committed {
            record::encode(&Record::Committed(c), &mut buf);
        }
        if let Some((upto, data)) = &ix.purged {
            record::encode(&Record::Purged { upto: *upto, data }, &mut buf);
        }
        self.committed_dirty = false;
        if !buf.is_empty() {
            self.write(&buf)?;
        }
        Ok(())
    }

    /// Deletes the oldest closed segments whose entries are all at or below `upto`.
    fn drop_segments(&mut self, upto: u64) {
        let closed = self.segments.len() - 1;
        let n = self.segments[..closed]
            .iter()
            .take_while(|s| s.max_index <= upto)
            .count();
        for s in self.segments.drain(..n) {
            let path = self.dir.join(segment_name(s.seq));
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, path = %path.display(), "cannot delete a purged raft log segment");
            }
        }
    }

    /// Reads segment `seq` into the index; a torn tail of the last one is cut off.
    fn replay(&mut self, seq: u64, last: bool) -> Result<()> {
        let path = self.dir.join(segment_name(seq));
        let bytes = std::fs::read(&path).map_err(|e| io("read", &path, e))?;
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| io("open", &path, e))?,
        );
        let mut seg = Segment {
            seq,
            file: file.clone(),
            max_index: 0,
            len: 0,
        };
        let mut pos = 0usize;
        loop {
            match record::parse(&bytes[pos..]) {
                Parsed::Record(rec, n) => {
                    let loc = match &rec {
                        Record::Entry { index, data } => {
                            seg.max_index = seg.max_index.max(*index);
                            let off = (pos + record::HEADER + record::ENTRY_PREFIX) as u64;
                            Some(Loc {
                                file: file.clone(),
                                off,
                                len: data.len(),
                            })
                        }
                        _ => None,
                    };
                    self.index.apply(&rec, loc);
                    pos += n;
                }
                Parsed::End => break,
                Parsed::Broken(why) if last => {
                    tracing::warn!(path = %path.display(), offset = pos, why, "cutting off the torn end of the raft log");
                    file.set_len(pos as u64)
                        .and_then(|_| file.sync_all())
                        .map_err(|e| io("cut", &path, e))?;
                    break;
                }
                Parsed::Broken(why) => {
                    return Err(Error::Engine(format!(
                        "raft log {} is damaged at offset {pos}: {why}",
                        path.display()
                    )))
                }
            }
        }
        if last {
            preallocate(&file, &path, self.segment_bytes);
        }
        seg.len = pos as u64;
        self.segments.push(seg);
        Ok(())
    }
}

/// Allocates `file` up to `bytes` (zeros), so that appends within it do not change its
/// size. Best effort: where the file system cannot, the log only syncs slower.
fn preallocate(file: &File, path: &Path, bytes: u64) {
    let len = file.metadata().map(|m| m.len()).unwrap_or(bytes);
    if len >= bytes {
        return;
    }
    let Ok(bytes) = libc::off_t::try_from(bytes) else {
        return;
    };
    // SAFETY: fallocate on an open descriptor we own, with plain integer arguments.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        tracing::debug!(error = %e, path = %path.display(), "cannot preallocate a raft log segment");
    }
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

/// The sequence numbers of the segments in `dir`, ascending.
fn segment_seqs(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io("list", dir, e))? {
        let name = entry.map_err(|e| io("list", dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = name.strip_suffix(".wal").and_then(|s| s.parse().ok()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}
