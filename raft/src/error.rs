//! Errors of the raft layer as the node's API sees them.

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// Why a write, read barrier or admin call did not succeed.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize, PartialEq, Eq)]
pub enum Error {
    /// No leader could be reached within the bound (election, partition).
    #[error("no leader available: {0}")]
    Unavailable(String),
    /// This node is not the leader (internal: callers forward and retry).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// The request was refused as invalid (admin calls: unknown node, bad address).
    #[error("{0}")]
    Invalid(String),
    /// The node is shutting down or raft stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(String),
}

impl From<openraft::error::Fatal<NodeId>> for Error {
    /// A storage failure stops raft for good (openraft never writes past a failed
    /// write); say so, with the cause, rather than "stopped".
    fn from(f: openraft::error::Fatal<NodeId>) -> Self {
        match f {
            openraft::error::Fatal::StorageError(e) => Error::Storage(format!(
                "{e}; raft stopped on this node, restart it once the cause is fixed"
            )),
            other => Error::Fatal(other.to_string()),
        }
    }
}

impl From<metacenter_storage::Error> for Error {
    fn from(e: metacenter_storage::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
