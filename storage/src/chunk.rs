//! Point chunks: points of one series stored as one value, column-encoded
//! ([`crate::chunk_codec`]), so a batch of points costs one sled insert per series
//! instead of one per point and a point a few bytes. A command writes one chunk per
//! series it touches; apply later merges a series' newest small chunks into one
//! ([`crate::points`]), so each point keeps the revision of the command that wrote it.
//! Chunks written before the column encoding (bincode rows, revision in the key) are
//! read as they are and rewritten when merged or trimmed.
//!
//! A chunk's key is `series prefix | desc(newest time) | !revision | time_key(oldest
//! time)`: chunks sort newest first by their newest point, and the key alone tells
//! which times a chunk spans. Every point has a place in one total order, its *sort
//! key* `desc(time) !revision !position` (20 bytes, newest first, then the later command,
//! then the later position in the batch); cursors carry its last 12 bytes.
//!
//! Chunks of one series may overlap in time (a batch can carry any times), so a
//! newest-first read ([`newest_first`]) merges them: it walks chunks in key order, keeps
//! the points it has decoded in a heap, and hands a point out once no unread chunk can
//! hold a newer one, that is once the next chunk's newest time is older than the point.

use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::BinaryHeap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

pub(crate) use crate::chunk_codec::Effort;
use crate::{codec, keys, Error, Result};

/// Bytes a chunk key adds to its series prefix: 24, and a 25th, the tier, for a column
/// chunk.
const SUFFIX_LEN: usize = 24;

/// One point inside a chunk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChunkPoint {
    pub time_ns: i64,
    /// Revision of the command that wrote the point.
    pub rev: u64,
    /// Position of the point in its command's batch.
    pub pos: u32,
    pub step: Option<i64>,
    pub value: f64,
    pub metadata_json: Option<String>,
}

/// A point of a row-encoded chunk (the layout before the column encoding): the
/// revision is the chunk key's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RowPoint {
    pub time_ns: i64,
    pub pos: u32,
    pub step: Option<i64>,
    pub value: f64,
    pub metadata_json: Option<String>,
}

/// What a chunk key says about its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkKey {
    pub newest_ns: i64,
    pub rev: u64,
    pub oldest_ns: i64,
    /// A column chunk's size class ([`tier`]); `None` for a row chunk.
    pub tier: Option<u8>,
}

/// The size class of a chunk of `n` points: 0 below 8 points, 1 below 64, 2 below
/// 512, ... (merges look at keys alone to find chunks of one class).
pub(crate) fn tier(n: usize) -> u8 {
    n.max(1).ilog(8) as u8
}

impl ChunkKey {
    /// The key suffix of this chunk.
    pub fn suffix(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(SUFFIX_LEN + 1);
        k.extend_from_slice(&keys::desc_time(self.newest_ns));
        k.extend_from_slice(&(!self.rev).to_be_bytes());
        k.extend_from_slice(&keys::time_key(self.oldest_ns));
        k.extend(self.tier);
        k
    }

    /// Parses the key suffix after a series prefix.
    pub fn parse(suffix: &[u8]) -> Result<ChunkKey> {
        let tier = match suffix.len() {
            SUFFIX_LEN => None,
            n if n == SUFFIX_LEN + 1 => Some(suffix[SUFFIX_LEN]),
            n => return Err(Error::Codec(format!("point chunk key suffix of {n} bytes"))),
        };
        let rev: [u8; 8] = suffix[8..16].try_into().expect("8 bytes");
        Ok(ChunkKey {
            newest_ns: keys::parse_desc_time(&suffix[..8]),
            rev: !u64::from_be_bytes(rev),
            oldest_ns: keys::parse_time_key(&suffix[16..SUFFIX_LEN]),
            tier,
        })
    }
}

impl ChunkPoint {
    /// The point's place in the total order of its series.
    pub fn sort_key(&self) -> [u8; 20] {
        let mut k = [0u8; 20];
        k[..8].copy_from_slice(&keys::desc_time(self.time_ns));
        k[8..16].copy_from_slice(&(!self.rev).to_be_bytes());
        k[16..].copy_from_slice(&(!self.pos).to_be_bytes());
        k
    }
}

/// Builds the chunk of `points` (non-empty) in the series at `prefix`: its key (whose
/// revision is the newest of its points', unique among the series' chunks since a
/// command's points of a series live in one chunk) and value, points in sort-key order.
pub(crate) fn build(
    prefix: &[u8],
    mut points: Vec<ChunkPoint>,
    effort: Effort,
) -> Result<(Vec<u8>, Vec<u8>)> {
    points.sort_by_key(|p| (Reverse(p.time_ns), Reverse(p.rev), Reverse(p.pos)));
    let (Some(newest), Some(oldest)) = (points.first(), points.last()) else {
        return Err(Error::Codec("empty point chunk".into()));
    };
    let key = ChunkKey {
        newest_ns: newest.time_ns,
        rev: points.iter().map(|p| p.rev).max().unwrap_or_default(),
        oldest_ns: oldest.time_ns,
        tier: Some(tier(points.len())),
    };
    let value = crate::chunk_codec::encode(&points, effort)?;
    Ok(([prefix, &key.suffix()].concat(), value))
}

/// Decodes the points of the chunk keyed `ck`, in sort-key order.
pub(crate) fn decode(ck: &ChunkKey, value: &[u8]) -> Result<Vec<ChunkPoint>> {
    if value.first() == Some(&crate::chunk_codec::MAGIC) {
        return crate::chunk_codec::decode(value);
    }
    let rows: Vec<RowPoint> = codec::decode(value)?;
    let point = |r: RowPoint| ChunkPoint {
        time_ns: r.time_ns,
        rev: ck.rev,
        pos: r.pos,
        step: r.step,
        value: r.value,
        metadata_json: r.metadata_json,
    };
    Ok(rows.into_iter().map(point).collect())
}

/// How many points a chunk holds (from a column chunk's header alone).
pub(crate) fn count(ck: &ChunkKey, value: &[u8]) -> Result<usize> {
    if value.first() == Some(&crate::chunk_codec::MAGIC) {
        return crate::chunk_codec::count(value);
    }
    Ok(decode(ck, value)?.len())
}

/// A point taken out of a chunk, ordered by its sort key alone.
#[derive(Debug)]
pub(crate) struct Placed {
    pub key: [u8; 20],
    pub point: ChunkPoint,
}

impl PartialEq for Placed {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Placed {}
impl PartialOrd for Placed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Placed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// Which points a newest-first read wants.
pub(crate) struct Window<'a> {
    /// Sort keys before this bound are skipped (a time, or a cursor's point).
    pub from: Bound<Vec<u8>>,
    /// Points older than this are not wanted.
    pub oldest_ns: i64,
    pub limit: usize,
    /// Any further filter (steps).
    pub keep: &'a dyn Fn(&ChunkPoint) -> bool,
}

impl Window<'_> {
    fn after_from(&self, key: &[u8]) -> bool {
        match &self.from {
            Bound::Included(b) => key >= b.as_slice(),
            Bound::Excluded(b) => key > b.as_slice(),
            Bound::Unbounded => true,
        }
    }
}

/// An open chunk being read newest first, with its next wanted point.
struct Stream {
    rest: std::vec::IntoIter<ChunkPoint>,
    head: Placed,
}

impl Stream {
    /// Opens a chunk at its first point the window wants; `None` if it has none.
    fn open(ck: ChunkKey, value: &[u8], w: &Window<'_>) -> Result<Option<Stream>> {
        let mut rest = decode(&ck, value)?.into_iter();
        let head = next_wanted(&mut rest, w);
        Ok(head.map(|head| Stream { rest, head }))
    }

    /// The wanted point after the head, if the chunk has one.
    fn next(&mut self, w: &Window<'_>) -> Option<Placed> {
        next_wanted(&mut self.rest, w)
    }
}

/// The next point of a chunk (in sort-key order) that the window wants.
fn next_wanted(points: &mut std::vec::IntoIter<ChunkPoint>, w: &Window<'_>) -> Option<Placed> {
    for p in points.by_ref() {
        if p.time_ns < w.oldest_ns {
            return None;
        }
        let key = p.sort_key();
        if w.after_from(&key) && (w.keep)(&p) {
            return Some(Placed { key, point: p });
        }
    }
    None
}

/// Streams ordered by their next point, smallest sort key on top of the heap.
struct ByHead(Stream);

impl PartialEq for ByHead {
    fn eq(&self, other: &Self) -> bool {
        self.0.head == other.0.head
    }
}
impl Eq for ByHead {}
impl PartialOrd for ByHead {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByHead {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.head.cmp(&self.0.head)
    }
}

/// Moves the newest open point to `out` while `more(its sort key)` holds and `out`
/// has room.
fn emit(
    open: &mut BinaryHeap<ByHead>,
    out: &mut Vec<Placed>,
    w: &Window<'_>,
    more: impl Fn(&[u8; 20]) -> bool,
) -> Result<()> {
    while out.len() < w.limit {
        let Some(mut top) = open.peek_mut() else {
            break;
        };
        if !more(&top.0.head.key) {
            break;
        }
        let point = match top.0.next(w) {
            Some(next) => std::mem::replace(&mut top.0.head, next),
            None => PeekMut::pop(top).0.head,
        };
        out.push(point);
    }
    Ok(())
}

/// The first `w.limit` points of the window, newest first, from a series' chunks given
/// in key order as (key suffix, value). Chunks are decoded point by point, only as far
/// as the answer needs.
pub(crate) fn newest_first<V: AsRef<[u8]>>(
    chunks: impl Iterator<Item = Result<(Vec<u8>, V)>>,
    w: &Window<'_>,
) -> Result<Vec<Placed>> {
    let mut open: BinaryHeap<ByHead> = BinaryHeap::new();
    let mut out = Vec::new();
    for kv in chunks {
        let (suffix, value) = kv?;
        let ck = ChunkKey::parse(&suffix)?;
        if ck.newest_ns < w.oldest_ns {
            break;
        }
        // No chunk from here on holds a point newer than this one's newest.
        let bound = keys::desc_time(ck.newest_ns);
        emit(&mut open, &mut out, w, |k| k[..8] < bound[..])?;
        if out.len() >= w.limit {
            return Ok(out);
        }
        let last_possible = [&keys::desc_time(ck.oldest_ns)[..], &[0xff; 12]].concat();
        if !w.after_from(&last_possible) {
            continue;
        }
        if let Some(s) = Stream::open(ck, value.as_ref(), w)? {
            open.push(ByHead(s));
        }
    }
    emit(&mut open, &mut out, w, |_| true)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(time_ns: i64, rev: u64, pos: u32) -> ChunkPoint {
        ChunkPoint {
            time_ns,
            rev,
            pos,
            step: Some(time_ns),
            value: time_ns as f64,
            metadata_json: None,
        }
    }

    /// Chunks (as a store would list them, in key order) of the given batches.
    fn store(batches: &[Vec<i64>]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut chunks: Vec<(Vec<u8>, Vec<u8>)> = batches
            .iter()
            .enumerate()
            .map(|(rev, times)| {
                let rev = rev as u64 + 1;
                let pts = times.iter().enumerate().map(|(i, t)| pt(*t, rev, i as u32));
                build(&[], pts.collect(), Effort::Fast).unwrap()
            })
            .collect();
        chunks.sort();
        chunks
    }

    fn read(chunks: &[(Vec<u8>, Vec<u8>)], w: &Window<'_>) -> Vec<(i64, [u8; 20])> {
        let it = chunks.iter().map(|(k, v)| Ok((k.clone(), v.as_slice())));
        let got = newest_first(it, w).unwrap();
        got.iter().map(|p| (p.point.time_ns, p.key)).collect()
    }

    fn all<'a>(keep: &'a dyn Fn(&ChunkPoint) -> bool) -> Window<'a> {
        Window {
            from: Bound::Unbounded,
            oldest_ns: i64::MIN,
            limit: usize::MAX,
            keep,
        }
    }

    #[test]
    fn key_round_trips_and_sorts_newest_first() {
        let a = ChunkKey {
            newest_ns: 100,
            rev: 7,
            oldest_ns: -3,
            tier: Some(2),
        };
        assert_eq!(ChunkKey::parse(&a.suffix()).unwrap(), a);
        let row = ChunkKey { tier: None, ..a };
        assert_eq!(ChunkKey::parse(&row.suffix()).unwrap(), row);
        let b = ChunkKey {
            newest_ns: 99,
            rev: 9,
            oldest_ns: 50,
            tier: Some(0),
        };
        let c = ChunkKey {
            newest_ns: 100,
            rev: 8,
            oldest_ns: 0,
            tier: None,
        };
        assert!(c.suffix() < a.suffix() && a.suffix() < b.suffix());
        assert!(ChunkKey::parse(&[0; 5]).is_err());
    }

    #[test]
    fn overlapping_chunks_merge_in_sort_key_order() {
        let batches = vec![vec![5, 1, 9, 9], vec![8, 2, 9], vec![3, 4], vec![10]];
        let chunks = store(&batches);
        let keep = |_: &ChunkPoint| true;
        let got = read(&chunks, &all(&keep));
        let mut want: Vec<(i64, [u8; 20])> = Vec::new();
        for (rev, times) in batches.iter().enumerate() {
            for (i, t) in times.iter().enumerate() {
                want.push((*t, pt(*t, rev as u64 + 1, i as u32).sort_key()));
            }
        }
        want.sort_by_key(|w| w.1);
        assert_eq!(got, want);
        // Equal times: the later command first, then the later position.
        assert_eq!(got[1..4].iter().map(|g| g.0).collect::<Vec<_>>(), [9; 3]);
    }

    #[test]
    fn windows_and_cursors_page_through_without_gaps() {
        let batches = vec![
            vec![5, 1, 9, 9],
            vec![8, 2, 9, 7],
            vec![3, 4, 6],
            vec![10, 0],
        ];
        let chunks = store(&batches);
        let keep = |p: &ChunkPoint| p.step != Some(4);
        let full = read(&chunks, &all(&keep));
        assert_eq!(full.len(), 12);
        for limit in 1..6 {
            let mut pages = Vec::new();
            let mut from = Bound::Unbounded;
            loop {
                let w = Window {
                    from: from.clone(),
                    oldest_ns: i64::MIN,
                    limit,
                    keep: &keep,
                };
                let page = read(&chunks, &w);
                let Some(last) = page.last() else { break };
                from = Bound::Excluded(last.1.to_vec());
                pages.extend(page);
            }
            assert_eq!(pages, full, "limit {limit}");
        }
        let w = Window {
            from: Bound::Included(keys::desc_time(8).to_vec()),
            oldest_ns: 3,
            limit: usize::MAX,
            keep: &keep,
        };
        let times: Vec<i64> = read(&chunks, &w).iter().map(|g| g.0).collect();
        assert_eq!(times, [8, 7, 6, 5, 3]);
    }

    #[test]
    fn a_short_read_opens_only_the_chunks_it_needs() {
        let mut chunks = store(&[vec![1, 2], (50..100).collect()]);
        // Damage the older chunk: a read that the newest chunk satisfies never opens it.
        let older = &mut chunks[1].1;
        let len = older.len();
        older[len / 2..].fill(0xff);
        let keep = |_: &ChunkPoint| true;
        let one = Window {
            limit: 3,
            ..all(&keep)
        };
        let times: Vec<i64> = read(&chunks, &one).iter().map(|g| g.0).collect();
        assert_eq!(times, [99, 98, 97]);
        let it = chunks.iter().map(|(k, v)| Ok((k.clone(), v.as_slice())));
        assert!(newest_first(it, &all(&keep)).is_err());
    }

    #[test]
    fn row_chunks_read_as_before() {
        let rows: Vec<RowPoint> = [(5, 0), (3, 1)]
            .map(|(t, pos)| RowPoint {
                time_ns: t,
                pos,
                step: Some(t),
                value: -0.0,
                metadata_json: Some("{}".into()),
            })
            .to_vec();
        let ck = ChunkKey {
            newest_ns: 5,
            rev: 9,
            oldest_ns: 3,
            tier: None,
        };
        let value = codec::encode(&rows).unwrap();
        let got = decode(&ck, &value).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got
            .iter()
            .all(|p| p.rev == 9 && p.value.to_bits() == (-0.0f64).to_bits()));
        assert_eq!(count(&ck, &value).unwrap(), 2);
        assert_eq!((got[0].time_ns, got[1].pos), (5, 1));
    }
}
