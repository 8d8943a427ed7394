//! The one place values are encoded: bincode 2 (serde, standard config) behind a
//! format-version byte, so the encoding can change in one place later.
//!
//! Decoding is bounded by the input: bincode allocates a string's or byte array's
//! length, read from the input, before it reads the bytes, so without a limit a few
//! bytes claiming a 4 GiB string allocate 4 GiB (or abort the process). Peer RPC bodies
//! are decoded here, so that input comes from the network.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// Current format version, written as the first byte of every value.
pub const FORMAT_V1: u8 = 1;

/// Encodes a value: version byte followed by bincode.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![FORMAT_V1];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::Codec(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a value written by [`encode`]; rejects unknown versions and trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            // The limit bincode enforces counts the in-memory size of what it decodes:
            // a string's length, 8 bytes for a u64 even when its varint took one. A
            // valid encoding so claims at most 16 bytes per input byte (a u128); the
            // limit is the first of three sizes that leaves that room (it must be a
            // constant), which bounds any allocation to a multiple of the input.
            let (value, used) = match body.len() {
                n if n <= 64 << 10 => decode_limited::<T, { 1 << 20 }>(body)?,
                n if n <= 16 << 20 => decode_limited::<T, { 256 << 20 }>(body)?,
                _ => decode_limited::<T, { 4 << 30 }>(body)?,
            };
            if used != body.len() {
                return Err(Error::Codec(format!(
                    "{} trailing bytes",
                    body.len() - used
                )));
            }
            Ok(value)
        }
        Some((v, _)) => Err(Error::Codec(format!("unknown format version {v}"))),
        None => Err(Error::Codec("empty value".into())),
    }
}

/// A position in a sequence written by [`encode`] (a `Vec<T>` or slice), to decode
/// it one item at a time: a reader that needs only the first items decodes only those.
/// It holds no borrow; each call is given the same bytes. Trailing bytes after the last
/// item are an error, as in [`decode`].
#[derive(Debug, Clone, Copy)]
pub struct SeqCursor {
    pos: usize,
    left: u64,
}

impl SeqCursor {
    /// Starts at the first item of `bytes`.
    pub fn start(bytes: &[u8]) -> Result<SeqCursor> {
        match bytes.split_first() {
            Some((&FORMAT_V1, body)) => {
                // A sequence's length is a varint u64 (a usize), as bincode writes it.
                let (left, used) = decode_limited::<u64, 16>(body)?;
                Ok(SeqCursor {
                    pos: 1 + used,
                    left,
                })
            }
            Some((v, _)) => Err(Error::Codec(format!("unknown format version {v}"))),
            None => Err(Error::Codec("empty value".into())),
        }
    }

    /// The next item of `bytes` (the bytes given to [`SeqCursor::start`]).
    pub fn next<T: DeserializeOwned>(&mut self, bytes: &[u8]) -> Option<Result<T>> {
        let rest = bytes.get(self.pos..).unwrap_or_default();
        if self.left == 0 {
            self.pos = bytes.len();
            return (!rest.is_empty())
                .then(|| Err(Error::Codec(format!("{} trailing bytes", rest.len()))));
        }
        self.left -= 1;
        let item = match rest.len() {
            n if n <= 64 << 10 => decode_limited::<T, { 1 << 20 }>(rest),
            n if n <= 16 << 20 => decode_limited::<T, { 256 << 20 }>(rest),
            _ => decode_limited::<T, { 4 << 30 }>(rest),
        };
        match item {
            Ok((value, used)) => {
                self.pos += used;
                Some(Ok(value))
            }
            Err(e) => {
                // Nothing after a broken item can be trusted.
                (self.left, self.pos) = (0, bytes.len());
                Some(Err(e))
            }
        }
    }
}

/// Decodes with bincode claiming at most `LIMIT` bytes; returns the bytes used.
fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(body: &[u8]) -> Result<(T, usize)> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    bincode::serde::decode_from_slice(body, config).map_err(|e| Error::Codec(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn round_trip_and_version() {
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), "b".to_string());
        let bytes = encode(&m).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        let back: BTreeMap<String, String> = decode(&bytes).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn sequences_decode_item_by_item() {
        let items: Vec<(u64, String)> = (0..300).map(|i| (i * 1000, format!("v{i}"))).collect();
        let bytes = encode(&items).unwrap();
        let all = |bytes: &[u8]| {
            let mut c = SeqCursor::start(bytes).unwrap();
            std::iter::from_fn(move || c.next::<(u64, String)>(bytes)).collect::<Vec<_>>()
        };
        let back: Vec<(u64, String)> = all(&bytes).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(back, items);
        let mut c = SeqCursor::start(&bytes).unwrap();
        assert_eq!(c.next::<(u64, String)>(&bytes).unwrap().unwrap(), items[0]);
        let mut trailing = bytes.clone();
        trailing.push(0);
        let got = all(&trailing);
        assert!(got.last().unwrap().is_err() && got.len() == 301);
        let got = all(&bytes[..bytes.len() - 2]);
        assert!(got.last().unwrap().is_err() && got.len() == 300);
        assert!(SeqCursor::start(&[]).is_err() && SeqCursor::start(&[9, 0]).is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(decode::<u64>(&[]).is_err());
        assert!(decode::<u64>(&[9, 1]).is_err());
        let mut bytes = encode(&7u64).unwrap();
        bytes.push(0);
        assert!(decode::<u64>(&bytes).is_err());
    }

    #[test]
    fn claimed_lengths_are_bounded_by_the_input() {
        // Varint lengths: 252 then a u32, 253 then a u64 (little endian).
        let u32_len = [&[FORMAT_V1, 252][..], &u32::MAX.to_le_bytes()].concat();
        let u64_len = [&[FORMAT_V1, 253][..], &u64::MAX.to_le_bytes()].concat();
        for bytes in [u32_len, u64_len] {
            let e = decode::<String>(&bytes).unwrap_err().to_string();
            assert!(e.contains("Limit"), "{e}");
            assert!(decode::<Vec<u8>>(&bytes).is_err());
        }
    }

    #[test]
    fn large_valid_values_fit_their_limit() {
        // One input byte per u64 (each claims 8) at the edges of the first two sizes.
        for n in [(64 << 10) - 8, (64 << 10) + 8, 300_000] {
            let v = vec![0u64; n];
            assert_eq!(decode::<Vec<u64>>(&encode(&v).unwrap()).unwrap(), v);
        }
        let s = "x".repeat(20 << 20);
        assert_eq!(decode::<String>(&encode(&s).unwrap()).unwrap(), s);
    }
}
