//! The storage error type. Domain outcomes (not found, version mismatch) are
//! [`crate::Response`] values, never errors: an error here means the disk or the
//! data is broken and the caller cannot answer deterministically.

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying engine failed (I/O, corruption detected by sled).
    #[error("storage engine: {0}")]
    Engine(String),
    /// A stored value could not be decoded or encoded.
    #[error("codec: {0}")]
    Codec(String),
    /// The data directory was written in a layout this version does not read.
    #[error("data layout: {0}")]
    Layout(String),
    /// Snapshot file I/O or format error.
    #[error("snapshot: {0}")]
    Snapshot(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Engine(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Snapshot(e.to_string())
    }
}
