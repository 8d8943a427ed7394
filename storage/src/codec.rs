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
/// The same bincode, zstd-compressed ([`encode_packed`]).
pub const FORMAT_PACKED: u8 = 2;
/// Values at least this large are compressed by [`encode_packed`].
const PACK_FROM: usize = 4 << 10;
/// Most bytes a packed value may decompress to: more than any log entry or peer
/// request holds (see the peer body limits). Not a ratio to the packed size: zstd
/// packs a megabyte of one repeated byte into a few dozen.
const UNPACK_MAX: usize = 256 << 20;

/// Encodes a value: version byte followed by bincode.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![FORMAT_V1];
    let body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::Codec(e.to_string()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Encodes a value like [`encode`], compressed with zstd when it is large (log entries,
/// peer requests: point batches shrink several times). [`decode`] reads both.
pub fn encode_packed<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let plain = encode(value)?;
    if plain.len() < PACK_FROM {
        return Ok(plain);
    }
    let mut out = vec![FORMAT_PACKED];
    zstd::stream::copy_encode(&plain[1..], &mut out, 1)
        .map_err(|e| Error::Codec(format!("zstd: {e}")))?;
    Ok(out)
}

/// The bincode of a packed value, decompressed within [`UNPACK_MAX`] (memory grows
/// with what is actually decompressed, not with what a header claims).
fn unpack(packed: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let cap = UNPACK_MAX as u64;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(packed)
        .and_then(|d| d.take(cap + 1).read_to_end(&mut out))
        .map_err(|e| Error::Codec(format!("zstd: {e}")))?;
    if out.len() as u64 > cap {
        return Err(Error::Codec("a packed value over its bound".into()));
    }
    Ok(out)
}

/// Decodes a value written by [`encode`] or [`encode_packed`]; rejects unknown
/// versions and trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if let Some((&FORMAT_PACKED, packed)) = bytes.split_first() {
        let mut plain = vec![FORMAT_V1];
        plain.extend_from_slice(&unpack(packed)?);
        return decode(&plain);
    }
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
    fn packed_values_round_trip_and_small_ones_stay_plain() {
        use std::io::Read;
        let items: Vec<(u64, String)> = (0..3000).map(|i| (i, format!("run-{}", i % 7))).collect();
        let packed = encode_packed(&items).unwrap();
        assert_eq!(packed[0], FORMAT_PACKED);
        assert!(
            packed.len() * 4 < encode(&items).unwrap().len(),
            "{}",
            packed.len()
        );
        assert_eq!(decode::<Vec<(u64, String)>>(&packed).unwrap(), items);
        assert_eq!(encode_packed(&7u64).unwrap(), encode(&7u64).unwrap());
        // Garbage behind the packed version byte is an error, not a panic.
        assert!(decode::<Vec<u64>>(&[FORMAT_PACKED, 1, 2, 3]).is_err());
        // A megabyte of one byte packs into a few dozen bytes and comes back.
        let flat = vec!["v".repeat(1 << 20)];
        let packed = encode_packed(&flat).unwrap();
        assert!(packed.len() < 1024, "{}", packed.len());
        assert_eq!(decode::<Vec<String>>(&packed).unwrap(), flat);
        // More than any value may hold is refused.
        let mut bomb = vec![FORMAT_PACKED];
        let zeros = std::io::repeat(0).take(UNPACK_MAX as u64 + 1);
        zstd::stream::copy_encode(zeros, &mut bomb, 1).unwrap();
        assert!(decode::<Vec<u8>>(&bomb).is_err(), "over UNPACK_MAX");
    }

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
