//! Load generator behind `scripts/bench.sh` (binary `loadgen`).
//!
//! The machinery is shared by every workload:
//!
//! - [`Workload`]: one kind of operation a client repeats (a replicated key-value put here;
//!   discovery heartbeats in [`heartbeat`], engine load statistics in [`load`], metric
//!   points in [`points`]; leader failover, which drives its own writers, in [`failover`]).
//!   A workload only knows how to perform one operation and whether it was acknowledged;
//!   [`GetAck`] is the shared read (a `GET` that must answer 2xx).
//! - [`drive`]: the timing loop. `clients` tasks each run operations back to back (closed
//!   loop) for a duration or until a total number of operations; latencies of acknowledged
//!   operations go into a per-client HDR histogram (microseconds), merged at the end.
//! - [`Report`]: one result line (human or JSON) and [`render_table`], the comparison table
//!   of several runs with the throughput ratio of metacenter to its peer (etcd, Redis,
//!   VictoriaMetrics: whichever other system has a row of the same workload).
//! - [`http_client`]: the HTTP/1.1 keep-alive connection pool, sized to the clients.
//!
//! Systems under test for the key-value workload ([`System`]): metacenter
//! (`PUT /meta/{key}`), etcd over gRPC (the `etcd-client` crate, cargo feature
//! `etcd-client`) and etcd over its v3 HTTP/JSON gateway (`POST /v3/kv/put`).
//!
//! Only acknowledged (2xx / gRPC OK) operations are counted and timed; failures are counted
//! per kind, and a client pauses briefly after one so a down target is not hammered.
//!
//! Where the parts live (all re-exported here, so paths are `loadgen::X`):
//!
//! - `run.rs`: the run plan and timing loop ([`Workload`], [`RunConfig`], [`Limit`],
//!   [`OpError`], [`drive`], [`RunStats`]);
//! - `report.rs`: [`RunInfo`], [`Report`], [`parse_reports`] and [`render_table`];
//! - `shared.rs`: helpers every workload uses ([`parse_duration`], [`http_client`],
//!   [`KeyGen`], [`random_value`], [`base64`], [`parse_targets`], [`GetAck`], and the
//!   crate-internal `call_json` / `send_ack`);
//! - `kv.rs`: the key-value put workload and its systems ([`System`], [`find_leader`],
//!   [`KvSpec`], [`MetaKv`], [`EtcdHttpKv`], [`etcd_grpc`], [`run_kv`], [`wait_ready`]).

pub mod curves;
pub mod failover;
pub mod heartbeat;
pub mod load;
pub mod points;
pub mod search;
pub mod ws;

mod kv;
mod report;
mod run;
mod shared;

pub use kv::{etcd_grpc, find_leader, run_kv, wait_ready, EtcdHttpKv, KvSpec, MetaKv, System};
pub use report::{parse_reports, render_table, Report, RunInfo};
pub use run::{drive, Limit, OpError, RunConfig, RunStats, Workload};
pub use shared::{
    base64, http_client, parse_duration, parse_targets, random_value, GetAck, KeyGen,
};
use shared::{call_json, send_ack, send_expect};
