//! The column encoding of a point chunk: its points stored by column, each with the
//! encoding that suits it, so that a chunk of a regular series costs a few bytes per
//! point instead of the ~30 of a row of fields.
//!
//! Layout: [`MAGIC`], the point count (LEB128), then the columns times, revisions,
//! positions, steps, values, metadata. A numeric column is a constant (all equal: one
//! revision, regular steps are not constants but compress to almost nothing), a plain
//! list (short chunks, where a compressor's header would cost more than it saves) or
//! pco (delta and float-aware entropy coding: times, steps and values of a series
//! shrink to bits). Steps carry a presence bitmap when some points have none; metadata
//! is zstd over the list of optional strings. Lossless: every f64 comes back bit for
//! bit (pco maps floats to integers by their bits).
//!
//! Decoding trusts nothing: the point count is bounded by [`MAX_POINTS`], every column
//! must hold exactly that many values, and zstd output is read with a cap, so garbage
//! gives an error, never a panic or an allocation larger than the bound.

use std::io::Read;

use crate::chunk::ChunkPoint;
use crate::{codec, Error, Result};

/// First byte of a column-encoded chunk (a row-encoded one starts with the codec's
/// format version, 1).
pub const MAGIC: u8 = 0xC2;
/// Most points one chunk may hold.
pub const MAX_POINTS: usize = 1 << 16;
/// Below this many points, numeric columns are stored plain.
const PCO_FROM: usize = 32;
/// Most metadata bytes one point may carry once decompressed.
const MAX_METADATA_PER_POINT: usize = 64 << 10;

const CONST: u8 = 0;
const PLAIN: u8 = 1;
const PCO: u8 = 2;

/// How hard the numeric columns are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// A command's new chunk, on the write path of every node: stored plain unless it
    /// is large enough never to be merged (compressing it would be work thrown away).
    Fast,
    /// A merged chunk: written once per tier, kept for long.
    Small,
}

impl Effort {
    /// The pco level for `n` values, or `None` to store them plain.
    fn pco_level(self, n: usize) -> Option<usize> {
        match self {
            _ if n < PCO_FROM => None,
            Effort::Fast if n < FAST_PLAIN_BELOW => None,
            Effort::Fast => Some(4),
            Effort::Small => Some(pco::DEFAULT_COMPRESSION_LEVEL),
        }
    }
}

/// A command's chunk of fewer points is merged later (its tier is below the final one,
/// see `points::FINAL_TIER`): [`Effort::Fast`] stores it plain.
const FAST_PLAIN_BELOW: usize = 512;

/// Encodes `points` (in the order they are to be read back).
pub fn encode(points: &[ChunkPoint], effort: Effort) -> Result<Vec<u8>> {
    if points.is_empty() || points.len() > MAX_POINTS {
        return Err(Error::Codec(format!("a chunk of {} points", points.len())));
    }
    let mut out = vec![MAGIC];
    put_len(&mut out, points.len());
    column(
        &mut out,
        &points.iter().map(|p| p.time_ns).collect::<Vec<_>>(),
        effort,
    )?;
    column(
        &mut out,
        &points.iter().map(|p| p.rev).collect::<Vec<_>>(),
        effort,
    )?;
    column(
        &mut out,
        &points.iter().map(|p| p.pos).collect::<Vec<_>>(),
        effort,
    )?;
    steps(&mut out, points, effort)?;
    column(
        &mut out,
        &points.iter().map(|p| p.value).collect::<Vec<_>>(),
        effort,
    )?;
    metadata(&mut out, points)?;
    Ok(out)
}

/// Decodes a chunk written by [`encode`].
pub fn decode(value: &[u8]) -> Result<Vec<ChunkPoint>> {
    let mut r = Reader(value);
    if r.byte()? != MAGIC {
        return Err(corrupt("not a column chunk"));
    }
    let n = r.len()?;
    if n == 0 || n > MAX_POINTS {
        return Err(corrupt(&format!("{n} points")));
    }
    let times: Vec<i64> = r.column(n)?;
    let revs: Vec<u64> = r.column(n)?;
    let pos: Vec<u32> = r.column(n)?;
    let steps = r.steps(n)?;
    let values: Vec<f64> = r.column(n)?;
    let meta = r.metadata(n)?;
    if !r.0.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    let rows = times.into_iter().zip(revs).zip(pos).zip(steps).zip(values);
    Ok(rows
        .zip(meta)
        .map(
            |(((((time_ns, rev), pos), step), value), metadata_json)| ChunkPoint {
                time_ns,
                rev,
                pos,
                step,
                value,
                metadata_json,
            },
        )
        .collect())
}

/// The point count of a column chunk, read from its header alone.
pub fn count(value: &[u8]) -> Result<usize> {
    let mut r = Reader(value);
    if r.byte()? != MAGIC {
        return Err(corrupt("not a column chunk"));
    }
    r.len()
}

fn corrupt(what: &str) -> Error {
    Error::Codec(format!("corrupt point chunk: {what}"))
}

/// A number a column may hold, with its bits (so that -0.0 differs from 0.0 and a NaN
/// equals itself when a column is checked for being constant).
trait Num: pco::data_types::Number + serde::Serialize + serde::de::DeserializeOwned {
    fn bits(self) -> u64;
}

impl Num for i64 {
    fn bits(self) -> u64 {
        self as u64
    }
}

impl Num for u64 {
    fn bits(self) -> u64 {
        self
    }
}

impl Num for u32 {
    fn bits(self) -> u64 {
        u64::from(self)
    }
}

impl Num for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Writes one numeric column (non-empty): constant, plain or pco.
fn column<T: Num>(out: &mut Vec<u8>, xs: &[T], effort: Effort) -> Result<()> {
    if xs.iter().all(|x| x.bits() == xs[0].bits()) {
        out.push(CONST);
        put_bytes(out, &codec::encode(&xs[0])?);
    } else if let Some(level) = effort.pco_level(xs.len()) {
        let config = pco::ChunkConfig::default().with_compression_level(level);
        let bytes = pco::standalone::simple_compress(xs, &config)
            .map_err(|e| Error::Codec(format!("pco: {e}")))?;
        out.push(PCO);
        put_bytes(out, &bytes);
    } else {
        out.push(PLAIN);
        put_bytes(out, &codec::encode(xs)?);
    }
    Ok(())
}

/// Steps: none, all present, or a presence bitmap and the present ones.
fn steps(out: &mut Vec<u8>, points: &[ChunkPoint], effort: Effort) -> Result<()> {
    let present: Vec<i64> = points.iter().filter_map(|p| p.step).collect();
    if present.is_empty() {
        out.push(0);
    } else if present.len() == points.len() {
        out.push(1);
        column(out, &present, effort)?;
    } else {
        out.push(2);
        let mut bits = vec![0u8; points.len().div_ceil(8)];
        for (i, p) in points.iter().enumerate() {
            if p.step.is_some() {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        out.extend_from_slice(&bits);
        column(out, &present, effort)?;
    }
    Ok(())
}

/// Metadata: none, or zstd over the list of optional strings.
fn metadata(out: &mut Vec<u8>, points: &[ChunkPoint]) -> Result<()> {
    if points.iter().all(|p| p.metadata_json.is_none()) {
        out.push(0);
        return Ok(());
    }
    let list: Vec<&Option<String>> = points.iter().map(|p| &p.metadata_json).collect();
    let packed = zstd::bulk::compress(&codec::encode(&list)?, 3)
        .map_err(|e| Error::Codec(format!("zstd: {e}")))?;
    out.push(1);
    put_bytes(out, &packed);
    Ok(())
}

/// What is left of a chunk to decode.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8> {
        let (b, rest) = self.0.split_first().ok_or_else(|| corrupt("truncated"))?;
        self.0 = rest;
        Ok(*b)
    }

    fn len(&mut self) -> Result<usize> {
        let mut n = 0usize;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(corrupt("length too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        if n > self.0.len() {
            return Err(corrupt("truncated"));
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(b)
    }

    /// One numeric column of exactly `n` values.
    fn column<T: Num>(&mut self, n: usize) -> Result<Vec<T>> {
        let tag = self.byte()?;
        let bytes = self.bytes()?;
        let xs = match tag {
            CONST => vec![codec::decode::<T>(bytes)?; n],
            PLAIN => codec::decode::<Vec<T>>(bytes)?,
            PCO => {
                let mut xs = vec![T::default(); n];
                let progress = pco::standalone::simple_decompress_into(bytes, &mut xs)
                    .map_err(|e| corrupt(&format!("pco: {e}")))?;
                if progress.n_processed != n || !progress.finished {
                    return Err(corrupt("a column of another length"));
                }
                xs
            }
            t => return Err(corrupt(&format!("column tag {t}"))),
        };
        if xs.len() != n {
            return Err(corrupt("a column of another length"));
        }
        Ok(xs)
    }

    fn steps(&mut self, n: usize) -> Result<Vec<Option<i64>>> {
        match self.byte()? {
            0 => Ok(vec![None; n]),
            1 => Ok(self.column::<i64>(n)?.into_iter().map(Some).collect()),
            2 => {
                let bits = self.take(n.div_ceil(8))?;
                let has = |i: usize| bits[i / 8] & (1 << (i % 8)) != 0;
                let present = (0..n).filter(|i| has(*i)).count();
                let mut values = self.column::<i64>(present)?.into_iter();
                Ok((0..n)
                    .map(|i| has(i).then(|| values.next()).flatten())
                    .collect())
            }
            t => Err(corrupt(&format!("steps tag {t}"))),
        }
    }

    fn take(&mut self, k: usize) -> Result<&'a [u8]> {
        if k > self.0.len() {
            return Err(corrupt("truncated"));
        }
        let (b, rest) = self.0.split_at(k);
        self.0 = rest;
        Ok(b)
    }

    fn metadata(&mut self, n: usize) -> Result<Vec<Option<String>>> {
        match self.byte()? {
            0 => Ok(vec![None; n]),
            1 => {
                let cap = (n * MAX_METADATA_PER_POINT) as u64;
                let mut raw = Vec::new();
                zstd::stream::read::Decoder::new(self.bytes()?)
                    .map_err(|e| corrupt(&format!("zstd: {e}")))?
                    .take(cap + 1)
                    .read_to_end(&mut raw)
                    .map_err(|e| corrupt(&format!("zstd: {e}")))?;
                if raw.len() as u64 > cap {
                    return Err(corrupt("metadata over its bound"));
                }
                let list: Vec<Option<String>> = codec::decode(&raw)?;
                if list.len() != n {
                    return Err(corrupt("metadata of another length"));
                }
                Ok(list)
            }
            t => Err(corrupt(&format!("metadata tag {t}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: the same inputs on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Points as hostile as a series can be: any f64 bits, times out of order,
    /// duplicated and far apart, steps negative or missing, metadata or none.
    fn random_points(r: &mut Rng, n: usize) -> Vec<ChunkPoint> {
        let specials = [
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            0.1f32 as f64,
        ];
        let mut t = r.next() as i64;
        (0..n)
            .map(|i| {
                t = match r.below(4) {
                    0 => t,
                    1 => t.wrapping_add(1_000_000),
                    2 => r.next() as i64,
                    _ => t.wrapping_sub(r.below(1 << 40) as i64),
                };
                ChunkPoint {
                    time_ns: t,
                    rev: 1 + r.below(3),
                    pos: i as u32,
                    step: (r.below(5) != 0).then(|| r.next() as i64 >> r.below(64)),
                    value: match r.below(3) {
                        0 => f64::from_bits(r.next()),
                        1 => specials[r.below(specials.len() as u64) as usize],
                        _ => (r.below(1000) as f32 * 0.37) as f64,
                    },
                    metadata_json: (r.below(3) == 0).then(|| format!("{{\"k\":{}}}", r.next())),
                }
            })
            .collect()
    }

    fn same(a: &[ChunkPoint], b: &[ChunkPoint]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                (x.time_ns, x.rev, x.pos, x.step, &x.metadata_json)
                    == (y.time_ns, y.rev, y.pos, y.step, &y.metadata_json)
                    && x.value.to_bits() == y.value.to_bits()
            })
    }

    #[test]
    fn any_points_come_back_bit_for_bit() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for n in [1, 2, 7, 31, 32, 33, 100, 1000, 5000] {
            for _ in 0..4 {
                let points = random_points(&mut r, n);
                let back = decode(&encode(&points, Effort::Small).unwrap()).unwrap();
                assert!(same(&points, &back), "{n} points");
                assert_eq!(count(&encode(&points, Effort::Small).unwrap()).unwrap(), n);
            }
        }
        // Mixed presence of steps and metadata, and every column constant.
        let mut one = random_points(&mut r, 1)[0].clone();
        one.step = None;
        one.metadata_json = None;
        let flat = vec![one; 300];
        assert!(same(
            &flat,
            &decode(&encode(&flat, Effort::Fast).unwrap()).unwrap()
        ));
    }

    #[test]
    fn a_regular_series_costs_a_few_bytes_per_point() {
        let points: Vec<ChunkPoint> = (0..4096)
            .map(|i| ChunkPoint {
                time_ns: 1_700_000_000_000_000_000 + i * 1_000_000_000,
                rev: 7,
                pos: i as u32,
                step: Some(i),
                value: (2.0 / (1.0 + i as f64 / 1000.0)) as f32 as f64,
                metadata_json: None,
            })
            .collect();
        let bytes = encode(&points, Effort::Small).unwrap().len();
        assert!(bytes < 4096 * 4, "{bytes} bytes for 4096 points");
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut r = Rng(42);
        let good = encode(&random_points(&mut r, 200), Effort::Fast).unwrap();
        for i in 0..2000 {
            let mut bad = good.clone();
            match i % 3 {
                0 => bad.truncate(r.below(good.len() as u64) as usize),
                1 => {
                    let at = r.below(good.len() as u64) as usize;
                    bad[at] ^= 1 << r.below(8);
                }
                _ => bad = (0..r.below(64)).map(|_| r.next() as u8).collect(),
            }
            if let Ok(points) = decode(&bad) {
                assert!(points.len() <= MAX_POINTS);
            }
        }
        // A header claiming the most points, and nothing behind it.
        let mut huge = vec![MAGIC];
        put_len(&mut huge, MAX_POINTS);
        huge.extend_from_slice(&[CONST, 2, 1, 0]);
        assert!(decode(&huge).is_err());
        assert!(encode(&[], Effort::Fast).is_err());
    }
}
