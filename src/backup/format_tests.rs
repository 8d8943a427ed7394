//! Unit tests of the backup file format: a sound file verifies, and every truncation
//! and every single flipped byte of a small file is refused with the right reason.

use std::io::Cursor;

use super::*;

fn header() -> Header {
    Header {
        index: 42,
        term: 3,
        leader: 2,
        members: vec![Member {
            id: 1,
            peer: "127.0.0.1:8090".into(),
            api: "127.0.0.1:8080".into(),
            voter: true,
        }],
        taken_at: "2026-01-02T03:04:05.678Z".into(),
        node: 1,
    }
}

fn record(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A small backup holding `pairs` key-value pairs.
fn backup(pairs: u64) -> Vec<u8> {
    let mut w = Hashing::new(Vec::new());
    write_header(&mut w, &header()).unwrap();
    let mut body = b"MCSNAP1\n".to_vec();
    for i in 0..pairs {
        record(&mut body, format!("key-{i}").as_bytes());
        record(&mut body, format!("value-{i}").as_bytes());
    }
    body.extend_from_slice(&0u32.to_be_bytes());
    w.write_all(&body).unwrap();
    let (out, n) = w.finish().unwrap();
    assert_eq!(n as usize, out.len());
    out
}

#[test]
fn a_sound_backup_verifies_with_its_header() {
    let file = backup(5);
    let v = verify(Cursor::new(&file)).expect("verify");
    assert_eq!(v.header, header());
    assert_eq!(v.pairs, 5);
    assert_eq!(v.bytes as usize, file.len());
    assert_eq!(&file[v.body_offset as usize..][..8], b"MCSNAP1\n");
}

#[test]
fn every_truncation_is_refused() {
    let file = backup(3);
    for len in 0..file.len() {
        match verify(Cursor::new(&file[..len])) {
            Err(FormatError::Truncated { at, .. }) => assert_eq!(at as usize, len),
            Err(FormatError::NotBackup) if len < 8 => {}
            other => panic!("cut at {len} of {}: {other:?}", file.len()),
        }
    }
}

#[test]
fn every_flipped_byte_is_refused_and_named() {
    let file = backup(3);
    let body_start = verify(Cursor::new(&file)).unwrap().body_offset as usize;
    let length_field = file.len() - END_LEN as usize..file.len() - CHECKSUM_LEN;
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x01;
        match verify(Cursor::new(&bad)) {
            Err(FormatError::NotBackup) => assert!(i < 8, "byte {i}"),
            Err(FormatError::Version { found }) => {
                assert!((8..12).contains(&i), "byte {i}");
                assert_ne!(found, FORMAT_VERSION);
            }
            // The header length or the length at the end: where a file ends is unknown.
            Err(FormatError::Truncated { .. }) => {
                assert!(
                    (12..16).contains(&i) || length_field.contains(&i),
                    "byte {i}"
                )
            }
            Err(FormatError::Altered(_)) => assert!(i >= 12, "byte {i}"),
            other => panic!("flipped byte {i} (body at {body_start}): {other:?}"),
        }
    }
}

#[test]
fn a_flipped_value_byte_is_a_checksum_mismatch() {
    let file = backup(3);
    let mut bad = file.clone();
    // The last byte of the last value, just before the terminator and checksum.
    let at = file.len() - END_LEN as usize - 4 - 1;
    bad[at] ^= 0x80;
    let err = verify(Cursor::new(&bad)).unwrap_err().to_string();
    assert!(err.contains("checksum does not match"), "{err}");
}

#[test]
fn other_versions_and_other_files_are_named() {
    let mut file = backup(1);
    file[8..12].copy_from_slice(&2u32.to_be_bytes());
    let err = verify(Cursor::new(&file)).unwrap_err().to_string();
    assert!(err.contains("format version 2"), "{err}");
    let err = verify(Cursor::new(b"MCSNAP1\nsomething else")).unwrap_err();
    assert!(matches!(err, FormatError::NotBackup), "{err:?}");
}

#[test]
fn bytes_after_the_end_are_refused() {
    let mut file = backup(2);
    file.extend_from_slice(&[0; 50]);
    assert!(verify(Cursor::new(&file)).is_err());
}
