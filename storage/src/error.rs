//! The storage error type. Domain outcomes (not found, version mismatch) are
//! [`crate::Response`] values, never errors: an error here means the disk or the
//! data is broken and the caller cannot answer deterministically.
//!
//! A failed file operation is [`Error::Io`], which keeps the operating system's error
//! as its source (for its kind and errno) beside the words saying what was being done;
//! the other variants describe data or engine state that no `io::Error` stands behind.

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying engine failed (corruption detected by sled, a damaged raft log).
    #[error("storage engine: {0}")]
    Engine(String),
    /// A stored value could not be decoded or encoded.
    #[error("codec: {0}")]
    Codec(String),
    /// The data directory was written in a layout this version does not read.
    #[error("data layout: {0}")]
    Layout(String),
    /// A snapshot could not be exported or installed: a stream not in the format, a
    /// value too large for it, an export already running or overtaken by an install.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A file operation failed: `context` says which (it starts the message), `source`
    /// is the operating system's error.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A failed read or write of a snapshot stream.
    pub fn snapshot_io(source: std::io::Error) -> Error {
        Error::Io {
            context: "snapshot".into(),
            source,
        }
    }

    /// A failed file operation of the storage engine (its data file, the raft log);
    /// `what` names the operation and the file.
    pub fn engine_io(what: impl std::fmt::Display, source: std::io::Error) -> Error {
        Error::Io {
            context: format!("storage engine: {what}"),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            // Worded as sled words it ("IO error: ..."), with the source kept.
            sled::Error::Io(source) => Error::engine_io("IO error", source),
            e => Error::Engine(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_source_and_their_words() {
        let e = Error::engine_io("fdatasync", std::io::Error::other("disk gone"));
        assert_eq!(e.to_string(), "storage engine: fdatasync: disk gone");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "disk gone");
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        let e = Error::from(sled::Error::Io(std::io::Error::other("gone")));
        assert_eq!(e.to_string(), "storage engine: IO error: gone");
        let e = Error::snapshot_io(eof);
        assert!(e.to_string().starts_with("snapshot: "), "{e}");
        let Error::Io { source, .. } = e else {
            panic!("not an I/O error")
        };
        assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
