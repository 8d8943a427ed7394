//! metacenter-storage: the node's durable state on sled.
//!
//! This crate owns every byte on disk. It knows nothing of openraft, axum or HTTP:
//! the raft crate stores its log entries and vote here as opaque, codec-encoded values,
//! and the state machine is the deterministic [`Store::apply`] of [`Command`]s.
//! No sled type (`Tree`, `IVec`, `sled::Error`) appears in the public API.
//!
//! Layout: the raft log is a [`Wal`] of its own (segment files beside the database,
//! see [`wal`]); the state machine is one sled `Db`:
//! - trees `raft_log`, `raft_meta`: where earlier versions kept the raft log; read
//!   once to move it into the [`Wal`], then emptied
//! - tree `control`: which generation of the state-machine tree is current
//! - tree `sm.<gen>`: every state-machine keyspace, each under its own one-byte prefix
//!   (see [`keys`]). One tree is used so that an apply call's data and `last_applied`
//!   reach sled as one unit (one `sled::Batch`, or key by key behind a redo record,
//!   see `redo`): sled's multi-tree transactions cannot scan. Metric points are stored
//!   as chunks, one value per series per command (see `chunk`).
//! - in memory beside it: copies of the engine counters and of the service
//!   registrations for fast reads, derived from the tree and never read by apply (see
//!   `load_view`, `service_view`).

mod apply;
mod catalog;
mod chunk;
pub mod codec;
mod command;
mod error;
mod export;
pub mod keys;
mod load;
mod load_view;
mod log;
mod meta;
mod points;
mod redo;
mod service_due;
mod service_view;
mod services;
mod snapshot;
mod store;
mod txn;
pub mod wal;

pub use catalog::{MetricDoc, SyncRecord, MAX_LABEL_KEYS, MAX_LABEL_VALUES, MAX_TEXT};
pub use command::{
    Command, LoadOutcome, MetricDocIn, PointIn, Response, SyncOutcome, SyncSettings, SystemPointIn,
};
pub use error::{Error, Result};
pub use export::Export;
pub use load::EngineLoad;
pub use meta::{Counts, MetaList, MetaObject, CID_PROPS};
pub use points::{Cursor, Point, PointQuery, SeriesAgg};
pub use service_view::ServiceList;
pub use services::ServiceEntry;
pub use store::{ApplyEntry, Store};
pub use txn::Limits;
pub use wal::Wal;
