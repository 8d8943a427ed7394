//! The backup file format, written by `GET /cluster/backup` and scheduled backups, read
//! by `metacenter backup` (to check a download) and `metacenter restore`:
//!
//! ```text
//! "MCBACKUP"          8 bytes, magic
//! version             u32 big-endian, FORMAT_VERSION
//! header length       u32 big-endian, at most MAX_HEADER
//! header              JSON: Header (raft index, term, membership, when taken)
//! body                the storage crate's snapshot export: "MCSNAP1\n", then records
//!                     (u32 BE key length, key, u32 BE value length, value), then a
//!                     zero key length
//! length              u64 big-endian, the bytes before this field
//! checksum            32 bytes, SHA-256 of every byte before it
//! ```
//!
//! [`verify`] reads a whole file and says what is wrong with it, if anything: not a
//! backup, another format version, truncated (it does not end with its own length, as
//! a file cut short does not), or altered (the checksum does not match, or the body
//! does not parse).

use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"MCBACKUP";
/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the checksum at the end.
pub const CHECKSUM_LEN: usize = 32;
/// Bytes of the end: the length field and the checksum.
pub const END_LEN: u64 = 8 + CHECKSUM_LEN as u64;
/// Largest header accepted (the membership of a cluster is a few hundred bytes).
const MAX_HEADER: u32 = 1 << 20;
/// Largest key or value of the body (the storage crate's own bound).
const MAX_RECORD: u32 = 64 << 20;

/// One member in a backup's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    pub peer: String,
    pub api: String,
    pub voter: bool,
}

/// What a backup says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Raft index of the last entry the state holds.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The node that led that term.
    pub leader: u64,
    /// The membership in force at `index`.
    pub members: Vec<Member>,
    /// When the backup began (RFC 3339, UTC).
    pub taken_at: String,
    /// The node that wrote it.
    pub node: u64,
}

/// Why a file is not a usable backup.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(
        "not a metacenter backup file (it does not start with {magic:?})",
        magic = "MCBACKUP"
    )]
    NotBackup,
    #[error("backup format version {found}; this metacenter reads version {FORMAT_VERSION} only")]
    Version { found: u32 },
    #[error("the backup file is truncated: it ends at byte {at}, before {what}")]
    Truncated { at: u64, what: &'static str },
    #[error("the backup file is altered: {0}")]
    Altered(String),
    #[error("reading the backup file: {0}")]
    Io(#[from] io::Error),
}

/// A writer that hashes what it passes on and counts it.
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    pub fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Writes the length and checksum of everything written so far (the end of a
    /// backup); returns the writer and the bytes written in all.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let len = self.bytes.to_be_bytes();
        self.write_all(&len)?;
        let sum = self.hasher.finalize();
        self.inner.write_all(&sum)?;
        self.inner.flush()?;
        Ok((self.inner, self.bytes + CHECKSUM_LEN as u64))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the magic, version and `header`: what comes before the body.
pub fn write_header(out: &mut impl Write, header: &Header) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(io::Error::other)?;
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_be_bytes())?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(&json)
}

/// A reader that hashes what it reads and counts it.
struct Tracked<R> {
    inner: R,
    hasher: Sha256,
    at: u64,
}

impl<R: Read> Tracked<R> {
    /// Fills `buf`; a short read is [`FormatError::Truncated`] before `what`.
    fn exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), FormatError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    self.at += got as u64;
                    return Err(FormatError::Truncated { at: self.at, what });
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.hasher.update(&buf[..]);
        self.at += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_be_bytes(b))
    }
}

/// What [`verify`] found in a sound backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub header: Header,
    /// Offset of the body in the file.
    pub body_offset: u64,
    /// Key-value pairs in the body.
    pub pairs: u64,
    /// Bytes of the whole file.
    pub bytes: u64,
}

/// Reads the magic, version and header (what [`write_header`] wrote) without hashing.
fn read_preamble<R: Read>(r: &mut Tracked<R>) -> Result<Vec<u8>, FormatError> {
    let mut magic = [0u8; 8];
    match r.exact(&mut magic, "the end of the magic") {
        Err(FormatError::Truncated { .. }) => return Err(FormatError::NotBackup),
        other => other?,
    }
    if &magic != MAGIC {
        return Err(FormatError::NotBackup);
    }
    let found = r.u32("the format version")?;
    if found != FORMAT_VERSION {
        return Err(FormatError::Version { found });
    }
    let len = r.u32("the header length")?;
    if len > MAX_HEADER {
        return Err(FormatError::Altered(format!(
            "header length {len} is corrupt"
        )));
    }
    let mut json = vec![0u8; len as usize];
    r.exact(&mut json, "the end of the header")?;
    Ok(json)
}

/// Reads a whole backup from `input` and checks it: format, version, length,
/// structure and checksum. The header is trusted only once the checksum matched.
pub fn verify<R: Read + Seek>(mut input: R) -> Result<Verified, FormatError> {
    let len = input.seek(SeekFrom::End(0))?;
    input.seek(SeekFrom::Start(0))?;
    let mut r = Tracked {
        inner: input,
        hasher: Sha256::new(),
        at: 0,
    };
    let json = read_preamble(&mut r)?;
    let body_offset = r.at;
    check_length(&mut r, len)?;
    let body_end = len - END_LEN;
    let mut snap_magic = [0u8; 8];
    r.exact(&mut snap_magic, "the end of the body")?;
    let pairs = walk_body(&mut r, body_end)?;
    if r.at != body_end {
        return Err(FormatError::Altered(format!(
            "its body ends at byte {}, not at {body_end}",
            r.at
        )));
    }
    let mut stated = [0u8; 8];
    r.exact(&mut stated, "the length")?;
    let expected = std::mem::take(&mut r.hasher).finalize();
    let mut sum = [0u8; CHECKSUM_LEN];
    r.exact(&mut sum, "the end of the checksum")?;
    if sum[..] != expected[..] {
        return Err(FormatError::Altered(
            "its SHA-256 checksum does not match".into(),
        ));
    }
    let header: Header = serde_json::from_slice(&json)
        .map_err(|e| FormatError::Altered(format!("its header is not valid: {e}")))?;
    Ok(Verified {
        header,
        body_offset,
        pairs,
        bytes: len,
    })
}

/// Checks that the file of `len` bytes ends with its own length (as a whole backup
/// does and one cut short does not); leaves `r` where it was.
fn check_length<R: Read + Seek>(r: &mut Tracked<R>, len: u64) -> Result<(), FormatError> {
    let truncated = FormatError::Truncated {
        at: len,
        what: "the length and checksum that end a backup",
    };
    if len < r.at + END_LEN {
        return Err(truncated);
    }
    let mut stated = [0u8; 8];
    r.inner.seek(SeekFrom::Start(len - END_LEN))?;
    r.inner.read_exact(&mut stated)?;
    r.inner.seek(SeekFrom::Start(r.at))?;
    if u64::from_be_bytes(stated) != len - END_LEN {
        return Err(truncated);
    }
    Ok(())
}

/// Walks the body's records up to its terminator, which must come before `end`;
/// returns the number of pairs.
fn walk_body<R: Read>(r: &mut Tracked<R>, end: u64) -> Result<u64, FormatError> {
    let mut buf = Vec::new();
    let mut pairs = 0;
    loop {
        for part in 0..2 {
            if r.at + 4 > end {
                return Err(FormatError::Altered("its body has no end marker".into()));
            }
            let len = r.u32("the end of the body")?;
            if part == 0 && len == 0 {
                return Ok(pairs);
            }
            if len > MAX_RECORD || r.at + u64::from(len) > end {
                return Err(FormatError::Altered(format!(
                    "a record length ({len}) at byte {} is corrupt",
                    r.at - 4
                )));
            }
            buf.resize(len as usize, 0);
            r.exact(&mut buf, "the end of the body")?;
        }
        pairs += 1;
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
