//! Point chunks: the points of one series written by one command, stored as one value,
//! so a batch of points costs one sled insert per series instead of one per point.
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

use crate::{codec, keys, Error, Result};

/// Bytes a chunk key adds to its series prefix.
pub const SUFFIX_LEN: usize = 24;

/// One point inside a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChunkPoint {
    pub time_ns: i64,
    /// Position of the point in its command's batch.
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
}

impl ChunkKey {
    /// The key suffix of this chunk.
    pub fn suffix(&self) -> [u8; SUFFIX_LEN] {
        let mut k = [0u8; SUFFIX_LEN];
        k[..8].copy_from_slice(&keys::desc_time(self.newest_ns));
        k[8..16].copy_from_slice(&(!self.rev).to_be_bytes());
        k[16..].copy_from_slice(&keys::time_key(self.oldest_ns));
        k
    }

    /// Parses the key suffix after a series prefix.
    pub fn parse(suffix: &[u8]) -> Result<ChunkKey> {
        if suffix.len() != SUFFIX_LEN {
            return Err(Error::Codec(format!(
                "point chunk key suffix of {} bytes",
                suffix.len()
            )));
        }
        let rev: [u8; 8] = suffix[8..16].try_into().expect("8 bytes");
        Ok(ChunkKey {
            newest_ns: keys::parse_desc_time(&suffix[..8]),
            rev: !u64::from_be_bytes(rev),
            oldest_ns: keys::parse_time_key(&suffix[16..]),
        })
    }

    /// The sort key of point `pos` of this chunk's command at `time_ns`.
    pub fn sort_key(&self, time_ns: i64, pos: u32) -> [u8; 20] {
        let mut k = [0u8; 20];
        k[..8].copy_from_slice(&keys::desc_time(time_ns));
        k[8..16].copy_from_slice(&(!self.rev).to_be_bytes());
        k[16..].copy_from_slice(&(!pos).to_be_bytes());
        k
    }
}

/// Builds the chunk of `points` (non-empty) of command `rev` in the series at
/// `prefix`: its key and value. The points are stored newest first.
pub(crate) fn build(
    prefix: &[u8],
    rev: u64,
    mut points: Vec<ChunkPoint>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    points.sort_by_key(|p| (Reverse(p.time_ns), Reverse(p.pos)));
    let (Some(newest), Some(oldest)) = (points.first(), points.last()) else {
        return Err(Error::Codec("empty point chunk".into()));
    };
    let key = ChunkKey {
        newest_ns: newest.time_ns,
        rev,
        oldest_ns: oldest.time_ns,
    };
    Ok(([prefix, &key.suffix()].concat(), codec::encode(&points)?))
}

/// Decodes a chunk's points.
pub(crate) fn decode(value: &[u8]) -> Result<Vec<ChunkPoint>> {
    codec::decode(value)
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
struct Stream<V> {
    ck: ChunkKey,
    value: V,
    at: codec::SeqCursor,
    head: Placed,
}

impl<V: AsRef<[u8]>> Stream<V> {
    /// Opens a chunk at its first point the window wants; `None` if it has none.
    fn open(ck: ChunkKey, value: V, w: &Window<'_>) -> Result<Option<Stream<V>>> {
        let mut at = codec::SeqCursor::start(value.as_ref())?;
        let head = next_wanted(&ck, value.as_ref(), &mut at, w)?;
        Ok(head.map(|head| Stream {
            ck,
            value,
            at,
            head,
        }))
    }

    /// The wanted point after the head, if the chunk has one.
    fn next(&mut self, w: &Window<'_>) -> Result<Option<Placed>> {
        next_wanted(&self.ck, self.value.as_ref(), &mut self.at, w)
    }
}

/// The next point of a chunk (stored newest first) that the window wants.
fn next_wanted(
    ck: &ChunkKey,
    value: &[u8],
    at: &mut codec::SeqCursor,
    w: &Window<'_>,
) -> Result<Option<Placed>> {
    while let Some(p) = at.next::<ChunkPoint>(value) {
        let p = p?;
        if p.time_ns < w.oldest_ns {
            return Ok(None);
        }
        let key = ck.sort_key(p.time_ns, p.pos);
        if w.after_from(&key) && (w.keep)(&p) {
            return Ok(Some(Placed { key, point: p }));
        }
    }
    Ok(None)
}

/// Streams ordered by their next point, smallest sort key on top of the heap.
struct ByHead<V>(Stream<V>);

impl<V> PartialEq for ByHead<V> {
    fn eq(&self, other: &Self) -> bool {
        self.0.head == other.0.head
    }
}
impl<V> Eq for ByHead<V> {}
impl<V> PartialOrd for ByHead<V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<V> Ord for ByHead<V> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.head.cmp(&self.0.head)
    }
}

/// Moves the newest open point to `out` while `more(its sort key)` holds and `out`
/// has room.
fn emit<V: AsRef<[u8]>>(
    open: &mut BinaryHeap<ByHead<V>>,
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
        let point = match top.0.next(w)? {
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
    let mut open: BinaryHeap<ByHead<V>> = BinaryHeap::new();
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
        if let Some(s) = Stream::open(ck, value, w)? {
            open.push(ByHead(s));
        }
    }
    emit(&mut open, &mut out, w, |_| true)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(time_ns: i64, pos: u32) -> ChunkPoint {
        ChunkPoint {
            time_ns,
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
                let pts = times.iter().enumerate().map(|(i, t)| pt(*t, i as u32));
                build(&[], rev as u64 + 1, pts.collect()).unwrap()
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
        };
        assert_eq!(ChunkKey::parse(&a.suffix()).unwrap(), a);
        let b = ChunkKey {
            newest_ns: 99,
            rev: 9,
            oldest_ns: 50,
        };
        let c = ChunkKey {
            newest_ns: 100,
            rev: 8,
            oldest_ns: 0,
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
            let ck = ChunkKey {
                newest_ns: 0,
                rev: rev as u64 + 1,
                oldest_ns: 0,
            };
            for (i, t) in times.iter().enumerate() {
                want.push((*t, ck.sort_key(*t, i as u32)));
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
    fn a_short_read_decodes_only_the_points_it_returns() {
        let mut chunks = store(&[vec![1, 2], (0..100).collect()]);
        // Damage the end of the newest chunk: a read that stops early never reaches it.
        let newest = &mut chunks[0].1;
        let len = newest.len();
        newest[len - 12..].fill(0xff);
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
}
