//! metacenter-storage: the node's durable state on sled.
//!
//! This crate owns every byte on disk. It knows nothing of openraft, axum or HTTP:
//! the raft crate stores its log entries and vote here as opaque, codec-encoded values,
//! and the state machine is the deterministic [`Store::apply`] of [`Command`]s.
//! No sled type (`Tree`, `IVec`, `sled::Error`) appears in the public API.
//!
//! Layout: the raft log is a [`Wal`] of its own (segment files beside the database,
//! see [`wal`]); the state machine is one sled `Db`:
//! - trees `raft_log`, `raft_meta`, in a database written before the [`Wal`]: its raft
//!   log, moved into the [`Wal`] and dropped by the upgrade steps (see `upgrade`, which
//!   converts every older layout at open)
//! - tree `control`: which generation of the state-machine tree is current
//! - tree `sm.<gen>`: every state-machine keyspace, each under its own one-byte prefix
//!   (see [`keys`]). One tree is used so that an apply call's data and `last_applied`
//!   reach sled as one unit (one `sled::Batch`, or key by key behind a redo record,
//!   see `redo`): sled's multi-tree transactions cannot scan. Metric points are stored
//!   as column-encoded chunks, one per series per command, merged as they accumulate
//!   (see `chunk`, `chunk_codec`).
//! - in memory beside it: copies of the engine counters and of the service
//!   registrations for fast reads, derived from the tree and never read by apply (see
//!   `load_view`, `service_view`).

mod apply;
mod catalog;
mod chunk;
mod chunk_codec;
pub mod codec;
mod command;
mod error;
mod export;
pub mod keys;
mod load;
mod load_expiry;
mod load_view;
mod log;
mod meta;
mod overview;
mod points;
mod redo;
mod service_due;
mod service_view;
mod services;
mod snapshot;
mod store;
mod txn;
mod upgrade;
pub mod wal;

pub use catalog::{MetricDoc, SyncRecord, MAX_LABEL_KEYS, MAX_LABEL_VALUES, MAX_TEXT};
pub use command::{
    Command, LoadExpiry, LoadOutcome, MetricDocIn, PointIn, Response, SyncOutcome, SyncSettings,
    SystemPointIn,
};
pub use error::{Error, Result};
pub use export::Export;
pub use load::EngineLoad;
pub use load_expiry::LoadItems;
pub use meta::{Counts, MetaList, MetaObject, CID_PROPS};
pub use overview::{BucketBy, RunSummary};
pub use points::{Cursor, Point, PointQuery, PointsStored, SeriesAgg};
pub use service_view::ServiceList;
pub use services::ServiceEntry;
pub use store::{ApplyEntry, Store};
pub use txn::Limits;

/// Decodes bytes as a stored point chunk and, if they decode, checks that the points
/// encode and decode again to the same: the chunk decoder's fuzz harness. Returns
/// whether they decoded.
pub fn fuzz_point_chunk(bytes: &[u8]) -> bool {
    let Ok(points) = chunk_codec::decode(bytes) else {
        return false;
    };
    let again = chunk_codec::encode(&points, chunk_codec::Effort::Fast).expect("re-encode");
    let back = chunk_codec::decode(&again).expect("decode what was encoded");
    let bits =
        |ps: &[chunk::ChunkPoint]| -> Vec<u64> { ps.iter().map(|p| p.value.to_bits()).collect() };
    assert_eq!(bits(&points), bits(&back), "values change in a round trip");
    assert!(points.iter().zip(&back).all(|(a, b)| (
        a.time_ns,
        a.rev,
        a.pos,
        a.step,
        &a.metadata_json
    ) == (
        b.time_ns,
        b.rev,
        b.pos,
        b.step,
        &b.metadata_json
    )));
    true
}

/// A column-encoded chunk of `n` points of a regular series (fuzz seeds, tests).
pub fn sample_point_chunk(n: usize) -> Vec<u8> {
    let points: Vec<chunk::ChunkPoint> = (0..n as i64)
        .map(|i| chunk::ChunkPoint {
            time_ns: 1_700_000_000_000_000_000 - i * 1_000_000,
            rev: 3,
            pos: i as u32,
            step: (i % 5 != 0).then_some(1000 - i),
            value: (1.0 / (1.0 + i as f64)) as f32 as f64,
            metadata_json: (i % 3 == 0).then(|| format!("{{\"i\":{i}}}")),
        })
        .collect();
    chunk_codec::encode(&points, chunk_codec::Effort::Small).expect("encode")
}
pub use wal::Wal;
