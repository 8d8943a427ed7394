//! The one place values are encoded: bincode 2 (serde, standard config) behind a
//! format-version byte, so the encoding can change in one place later.

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
            let (value, used) =
                bincode::serde::decode_from_slice(body, bincode::config::standard())
                    .map_err(|e| Error::Codec(e.to_string()))?;
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
    fn rejects_bad_input() {
        assert!(decode::<u64>(&[]).is_err());
        assert!(decode::<u64>(&[9, 1]).is_err());
        let mut bytes = encode(&7u64).unwrap();
        bytes.push(0);
        assert!(decode::<u64>(&bytes).is_err());
    }
}
