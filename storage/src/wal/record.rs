//! Framing of the write-ahead log's records.
//!
//! A frame is `u32 LE body length, u32 LE crc32 of the body, body`; the body is a
//! kind byte and the kind's fields (integers little-endian). A frame that is cut
//! short or whose checksum fails marks the end of what a crash left readable; so does
//! the start of an all-zero rest (the unwritten, preallocated end of a segment).

/// Bytes before a frame's body: its length and checksum.
pub(super) const HEADER: usize = 8;
/// Bytes of an entry's body before its data: the kind byte and the index.
pub(super) const ENTRY_PREFIX: usize = 9;

const ENTRY: u8 = 1;
const VOTE: u8 = 2;
const COMMITTED: u8 = 3;
const PURGED: u8 = 4;
const TRUNCATE: u8 = 5;

/// One record of the log.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    /// A raft entry (opaque bytes) at `index`.
    Entry { index: u64, data: &'a [u8] },
    /// The vote (opaque bytes); the last one read wins.
    Vote(&'a [u8]),
    /// The committed log id (opaque bytes); the last one read wins.
    Committed(&'a [u8]),
    /// Entries up to `upto` are gone; `data` is the purged log id (opaque bytes).
    Purged { upto: u64, data: &'a [u8] },
    /// Entries from `from` on are gone (a conflicting suffix).
    Truncate { from: u64 },
}

/// What [`parse`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed<'a> {
    /// A record and the length of its frame.
    Record(Record<'a>, usize),
    /// The buffer is empty.
    End,
    /// A torn or damaged frame.
    Broken(&'static str),
}

/// Appends the frame of `rec` to `out`.
pub(super) fn encode(rec: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    match rec {
        Record::Entry { index, data } => {
            out.push(ENTRY);
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(data);
        }
        Record::Vote(data) => {
            out.push(VOTE);
            out.extend_from_slice(data);
        }
        Record::Committed(data) => {
            out.push(COMMITTED);
            out.extend_from_slice(data);
        }
        Record::Purged { upto, data } => {
            out.push(PURGED);
            out.extend_from_slice(&upto.to_le_bytes());
            out.extend_from_slice(data);
        }
        Record::Truncate { from } => {
            out.push(TRUNCATE);
            out.extend_from_slice(&from.to_le_bytes());
        }
    }
    let body = &out[start + HEADER..];
    let len = u32::try_from(body.len()).expect("a log record under 4 GiB");
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Reads the frame at the start of `buf`. Nothing but zeros is the end: segments are
/// preallocated, so the unwritten rest of one reads as zeros.
pub(super) fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.iter().all(|&b| b == 0) {
        return Parsed::End;
    }
    if buf.len() < HEADER {
        return Parsed::Broken("a frame header cut short");
    }
    let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..HEADER].try_into().expect("4 bytes"));
    let Some(body) = buf.get(HEADER..HEADER + len) else {
        return Parsed::Broken("a frame body cut short");
    };
    if len == 0 || crc32fast::hash(body) != crc {
        return Parsed::Broken("a frame whose checksum fails");
    }
    match body_record(body) {
        Some(rec) => Parsed::Record(rec, HEADER + len),
        None => Parsed::Broken("a frame of unknown kind"),
    }
}

fn body_record(body: &[u8]) -> Option<Record<'_>> {
    let (kind, rest) = body.split_first()?;
    let int = |b: &[u8]| -> Option<u64> { Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?)) };
    Some(match *kind {
        ENTRY => Record::Entry {
            index: int(rest)?,
            data: &rest[8..],
        },
        VOTE => Record::Vote(rest),
        COMMITTED => Record::Committed(rest),
        PURGED => Record::Purged {
            upto: int(rest)?,
            data: &rest[8..],
        },
        TRUNCATE if rest.len() == 8 => Record::Truncate { from: int(rest)? },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(rec: Record<'_>) {
        let mut buf = Vec::new();
        encode(&rec, &mut buf);
        assert_eq!(parse(&buf), Parsed::Record(rec, buf.len()));
    }

    #[test]
    fn every_kind_roundtrips() {
        roundtrip(Record::Entry {
            index: 7,
            data: b"abc",
        });
        roundtrip(Record::Entry {
            index: u64::MAX,
            data: b"",
        });
        roundtrip(Record::Vote(b"v"));
        roundtrip(Record::Committed(b""));
        roundtrip(Record::Purged {
            upto: 3,
            data: b"p",
        });
        roundtrip(Record::Truncate { from: 9 });
    }

    #[test]
    fn torn_and_damaged_frames_are_broken() {
        let mut buf = Vec::new();
        encode(&Record::Vote(b"vote"), &mut buf);
        for cut in 1..buf.len() {
            assert!(matches!(parse(&buf[..cut]), Parsed::Broken(_)), "cut {cut}");
        }
        let mut flipped = buf.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(parse(&flipped), Parsed::Broken(_)));
        assert_eq!(parse(&[]), Parsed::End);
    }

    #[test]
    fn zeros_end_the_log_and_a_torn_frame_before_them_is_broken() {
        assert_eq!(parse(&[0u8; 32]), Parsed::End);
        let mut junk = vec![0u8; 32];
        junk[20] = 1;
        assert!(matches!(parse(&junk), Parsed::Broken(_)));
        let mut buf = Vec::new();
        encode(&Record::Vote(b"vote"), &mut buf);
        // A torn write into a preallocated segment: part of a frame, then zeros.
        for cut in 1..buf.len() {
            let mut torn = buf[..cut].to_vec();
            torn.extend_from_slice(&[0u8; 32]);
            assert!(matches!(parse(&torn), Parsed::Broken(_)), "cut {cut}");
        }
        let mut whole = buf.clone();
        whole.extend_from_slice(&[0u8; 32]);
        assert_eq!(
            parse(&whole),
            Parsed::Record(Record::Vote(b"vote"), buf.len())
        );
    }
}
