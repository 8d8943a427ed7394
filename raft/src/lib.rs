//! metacenter-raft: replication of storage commands through openraft.
//!
//! - [`types`]: the openraft type configuration.
//! - [`log_store`] / [`state_machine`]: openraft storage over `metacenter-storage`.
//! - [`network`] / [`peer`]: the peer network (client and server) with the cluster secret.
//! - [`batcher`]: group commit on the leader.
//! - [`node`]: one member, with writes and reads that work from any node.
//! - [`recovery`]: the source of online backups; restore and recover of data dirs.
//!
//! This crate knows nothing of the client API's routes or JSON formats.

// openraft's trait signatures fix `StorageError` (224 bytes) as the error type.
#![allow(clippy::result_large_err)]

pub mod batcher;
mod coalesce;
mod error;
mod flusher;
pub mod log_store;
pub mod network;
pub mod node;
mod pacer;
pub mod peer;
pub mod peer_body;
mod quorum;
mod reach;
pub mod recovery;
pub mod removal;
mod snapshot_files;
pub mod state_machine;
pub mod types;
pub mod watchdog;
pub mod watermark;

pub use error::{Error, Result};
pub use network::Faults;
pub use node::{DiskBytes, NodeConfig, RaftNode};
pub use state_machine::dir_bytes;
pub use state_machine::Applied;
pub use types::{NodeAddr, NodeId};
