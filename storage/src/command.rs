//! Commands replicated through the raft log, and their per-command responses.
//!
//! A command carries everything apply needs: every non-deterministic value (time,
//! generated ids) is stamped into it by the receiving node before it is proposed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::catalog::{MetricDocIn, SyncOutcome, SyncSettings};

/// One state-machine command. Conditional variants carry `expect_version`
/// (`If-Match`): `None` means unconditional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Does nothing; used to probe the write path.
    Noop,
    /// Merges `fields` into object `hash`, creating it if absent.
    MetaMerge {
        hash: String,
        fields: BTreeMap<String, String>,
        expect_version: Option<u64>,
    },
    /// Deletes object `hash` and all of its properties.
    MetaDelete {
        hash: String,
        expect_version: Option<u64>,
    },
    /// Deletes one property of `hash` (the object goes when its last property does).
    MetaDeleteProp {
        hash: String,
        prop: String,
        expect_version: Option<u64>,
    },
    /// Adds `member` to the `|`-delimited set stored in property `prop`.
    MetaSetAdd {
        hash: String,
        prop: String,
        member: String,
        expect_version: Option<u64>,
    },
    /// Registers (or replaces) service `name`; `info_json` is its ServiceInfo as JSON.
    /// `now_ms` (unix ms, stamped by the receiving node) becomes its last heartbeat.
    ServiceRegister {
        name: String,
        info_json: String,
        now_ms: u64,
        deregister_after_ms: Option<u64>,
    },
    /// Refreshes the last heartbeat of `name` to `now_ms`.
    ServiceHeartbeat { name: String, now_ms: u64 },
    /// Removes service `name`.
    ServiceDeregister { name: String },
    /// Leader housekeeping: removes every service with `deregister_after_ms` whose
    /// heartbeat is older than `now_ms - stale_threshold_ms - deregister_after_ms`.
    ServiceReap {
        now_ms: u64,
        stale_threshold_ms: u64,
    },
    /// A request was sent to engine `ip` of `cluster` (unix ns stamped by the node).
    LoadAdd {
        cluster: String,
        request_id: String,
        ip: String,
        prompt_length: u64,
        now_ns: u64,
    },
    /// First token of a request: its prompt no longer counts.
    LoadPromptDone { request_id: String, now_ns: u64 },
    /// A request finished.
    LoadDone { request_id: String, now_ns: u64 },
    /// Leader housekeeping: expires requests, idle engines and tombstones older than
    /// the given ages at `now_ns` (all in ns, carried so every node agrees).
    LoadExpire {
        now_ns: u64,
        req_expire_ns: u64,
        engine_expire_ns: u64,
        tombstone_ttl_ns: u64,
    },
    /// A batch of metric points of one tenant (validated and time-stamped at the edge).
    PointsWrite {
        tenant: String,
        points: Vec<PointIn>,
    },
    /// A batch of system metric points of one tenant.
    SystemPointsWrite {
        tenant: String,
        points: Vec<SystemPointIn>,
    },
    /// Leader housekeeping: removes the tenant's points older than `cutoff_ns`.
    PointsRetain { tenant: String, cutoff_ns: i64 },
    /// A metadata sync of `tenant` starts (status `running`); allocates its generation.
    CatalogSyncStart {
        tenant: String,
        strategy: String,
        now_ns: i64,
    },
    /// Metric metadata from the sync of generation `gen`, grouped by metric name.
    /// `replace_labels` (full syncs) replaces the label values instead of merging.
    CatalogUpsert {
        tenant: String,
        gen: u64,
        now_ns: i64,
        replace_labels: bool,
        docs: Vec<MetricDocIn>,
    },
    /// The sync of generation `gen` ended. A completed full sync removes the synced
    /// metrics it did not see.
    CatalogSyncFinish {
        tenant: String,
        gen: u64,
        full: bool,
        now_ns: i64,
        outcome: SyncOutcome,
    },
    /// Replaces the replicated sync settings.
    CatalogSettings { settings: SyncSettings },
    /// Leader housekeeping: removes each named service (with `deregister_after_ms`) if
    /// its revision (`mod_index`) is still the one given, that is if nothing was
    /// applied to it since the leader found it silent. (Appended last: the variants'
    /// order is their encoding.)
    ServiceExpire { services: Vec<(String, u64)> },
    /// Leader housekeeping: removes the named load state that its own monotonic clock
    /// found silent for its TTL (see [`LoadExpiry`]).
    LoadExpireNamed(LoadExpiry),
}

/// Load state to remove, each item only if it is still the version the leader saw:
/// requests and tombstones by their creation stamp, engines by their last update, so
/// whatever changed after the leader chose it is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadExpiry {
    /// (request id, created ns)
    pub requests: Vec<(String, u64)>,
    /// (request id, created ns)
    pub tombstones: Vec<(String, u64)>,
    /// (cluster, ip, updated ns)
    pub engines: Vec<(String, String, u64)>,
    /// Stamps the engines whose counters drop (the leader's wall clock; shown only).
    pub now_ns: u64,
}

impl LoadExpiry {
    /// Whether it names nothing.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.tombstones.is_empty() && self.engines.is_empty()
    }
}

/// One metric point as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointIn {
    pub run_id: [u8; 16],
    pub metric: String,
    pub step: Option<i64>,
    pub value: f64,
    /// Unix ns.
    pub time_ns: i64,
    /// The point's metadata object as JSON text.
    pub metadata_json: Option<String>,
}

/// One system metric point as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemPointIn {
    pub run_id: [u8; 16],
    pub metric_type: String,
    pub value: f64,
    /// Unix ns.
    pub time_ns: i64,
    pub metadata_json: Option<String>,
}

/// What a load command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadOutcome {
    /// The counters changed.
    Applied,
    /// A duplicate add, or a repeated prompt-done: nothing changed.
    Duplicate,
    /// The add was cancelled by a tombstone (its done arrived first).
    Cancelled,
    /// Unknown request: a tombstone now waits for its late add.
    Tombstoned,
    /// Expiry removed this many requests, engines and tombstones.
    Expired {
        requests: u32,
        engines: u32,
        tombstones: u32,
    },
}

/// The outcome of one command. Domain outcomes are values, never errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done; nothing to report.
    Ok,
    /// A metadata write succeeded: the object's new version and how many
    /// fields were created or changed.
    MetaWritten { version: u64, updated: u32 },
    /// Object or property deleted: how many properties went.
    MetaDeleted { deleted: u32 },
    /// Set add: whether the member was new.
    MetaAdded { added: bool, version: u64 },
    /// Points written.
    PointsWritten { count: u32 },
    /// Points removed by retention.
    PointsRemoved { count: u64 },
    /// Load update outcome.
    Load(LoadOutcome),
    /// Services removed by a reap, by name.
    Reaped { removed: Vec<String> },
    /// The addressed object or property does not exist.
    NotFound,
    /// `expect_version` did not match; `current` is 0 when the object is absent.
    VersionMismatch { current: u64 },
    /// A sync started with this generation.
    SyncStarted { gen: u64 },
    /// Catalog documents added and updated (unchanged ones count in neither).
    CatalogUpserted { added: u32, updated: u32 },
    /// A sync finished; a full one removed this many metrics.
    SyncFinished { removed: u64 },
    /// The command violates a limit or invariant that the edge should have caught.
    Invalid { reason: String },
}

impl Command {
    /// Approximate encoded size in bytes, for batch bounds (cheap, no encoding).
    pub fn size_hint(&self) -> usize {
        let s = |v: &String| v.len() + 2;
        16 + match self {
            Command::Noop => 0,
            Command::MetaMerge { hash, fields, .. } => {
                s(hash) + fields.iter().map(|(k, v)| s(k) + s(v)).sum::<usize>()
            }
            Command::MetaDelete { hash, .. } => s(hash),
            Command::MetaDeleteProp { hash, prop, .. } => s(hash) + s(prop),
            Command::MetaSetAdd {
                hash, prop, member, ..
            } => s(hash) + s(prop) + s(member),
            Command::ServiceRegister {
                name, info_json, ..
            } => s(name) + s(info_json) + 16,
            Command::ServiceHeartbeat { name, .. } | Command::ServiceDeregister { name } => {
                s(name) + 8
            }
            Command::ServiceReap { .. } | Command::LoadExpire { .. } => 32,
            Command::PointsWrite { tenant, points } => {
                s(tenant)
                    + points
                        .iter()
                        .map(|p| 48 + s(&p.metric) + p.metadata_json.as_ref().map_or(0, s))
                        .sum::<usize>()
            }
            Command::SystemPointsWrite { tenant, points } => {
                s(tenant)
                    + points
                        .iter()
                        .map(|p| 40 + s(&p.metric_type) + p.metadata_json.as_ref().map_or(0, s))
                        .sum::<usize>()
            }
            Command::PointsRetain { tenant, .. } => s(tenant) + 8,
            Command::CatalogSyncStart {
                tenant, strategy, ..
            } => s(tenant) + s(strategy) + 8,
            Command::CatalogUpsert { tenant, docs, .. } => {
                s(tenant) + docs.iter().map(MetricDocIn::size_hint).sum::<usize>()
            }
            Command::CatalogSyncFinish {
                tenant, outcome, ..
            } => s(tenant) + outcome.size_hint(),
            Command::CatalogSettings { .. } => 96,
            Command::ServiceExpire { services } => {
                services.iter().map(|(n, _)| s(n) + 8).sum::<usize>()
            }
            Command::LoadExpireNamed(e) => {
                let ids = e.requests.iter().chain(&e.tombstones);
                ids.map(|(id, _)| s(id) + 8).sum::<usize>()
                    + e.engines
                        .iter()
                        .map(|(c, ip, _)| s(c) + s(ip) + 8)
                        .sum::<usize>()
            }
            Command::LoadAdd {
                cluster,
                request_id,
                ip,
                ..
            } => s(cluster) + s(request_id) + s(ip) + 16,
            Command::LoadPromptDone { request_id, .. } | Command::LoadDone { request_id, .. } => {
                s(request_id) + 8
            }
        }
    }
}
