//! [`KEYS`]: every setting with its default and meaning, in the order
//! docs/configuration.md lists them. [`super::Config`]'s defaults are set from it, and
//! the key table of docs/configuration.md is [`markdown_table`]'s output (a unit test
//! checks that the two agree).

use std::fmt::Write as _;

/// One documented setting: key, default (as text), meaning.
pub struct Key {
    pub key: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

impl Key {
    /// The setting's environment variable: `METACENTER_` + the key upper-cased with `.`
    /// as `_`.
    pub fn env(&self) -> String {
        format!("METACENTER_{}", self.key.to_uppercase().replace('.', "_"))
    }
}

/// The key table of docs/configuration.md, as Markdown: `| key | environment | default |
/// meaning |`, then one row per entry of [`KEYS`]. A default in parentheses (one derived
/// from another setting) is shown as it is, an empty one as `(empty)`, any other in
/// backticks; a `|` in a meaning is escaped as `\|`.
pub fn markdown_table() -> String {
    let mut t = String::from("| key | environment | default | meaning |\n|---|---|---|---|\n");
    for k in KEYS {
        let default = match k.default {
            "" => "(empty)".to_string(),
            d if d.starts_with('(') => d.to_string(),
            d => format!("`{d}`"),
        };
        let help = k.help.replace('|', "\\|");
        writeln!(t, "| `{}` | `{}` | {default} | {help} |", k.key, k.env())
            .expect("writing to a String cannot fail");
    }
    t
}

/// Every setting, in the order docs/configuration.md lists them.
pub const KEYS: &[Key] = &[
    Key {
        key: "node.id",
        default: "1",
        help: "raft node id (unique, stable, > 0)",
    },
    Key {
        key: "node.data_dir",
        default: "./metacenter-data",
        help: "database, raft log and snapshots",
    },
    Key {
        key: "node.listen",
        default: "127.0.0.1:8080",
        help: "client API listener",
    },
    Key {
        key: "node.peer_listen",
        default: "127.0.0.1:8090",
        help: "peer (raft) listener",
    },
    Key {
        key: "node.advertise_api",
        default: "(listen)",
        help: "API address other nodes and clients are told",
    },
    Key {
        key: "node.advertise_peer",
        default: "(peer_listen)",
        help: "peer address other nodes use",
    },
    Key {
        key: "node.bootstrap",
        default: "false",
        help: "initialise a one-node cluster on first start",
    },
    Key {
        key: "node.join",
        default: "",
        help: "API address of a member to ask to add this node",
    },
    Key {
        key: "cluster.secret",
        default: "",
        help: "shared secret required on every peer request; a node will not start without one (`dev` makes a random one)",
    },
    Key {
        key: "cluster.insecure",
        default: "false",
        help: "serve the peer port without a secret: anyone who reaches it can rewrite the state",
    },
    Key {
        key: "auth.tokens",
        default: "",
        help: "client API bearer tokens `TOKEN:ROLE[:tenant1|tenant2],...`; `[[auth.tokens]] token, role, tenants` in TOML (none: no authentication)",
    },
    Key {
        key: "raft.heartbeat_ms",
        default: "100",
        help: "leader heartbeat interval",
    },
    Key {
        key: "raft.election_min_ms",
        default: "500",
        help: "election timeout, lower bound",
    },
    Key {
        key: "raft.election_max_ms",
        default: "1000",
        help: "election timeout, upper bound (also the leader lease)",
    },
    Key {
        key: "raft.snapshot_every",
        default: "1000000",
        help: "entries applied between snapshots at the most",
    },
    Key {
        key: "raft.snapshot_log_ratio",
        default: "0.5",
        help: "build a snapshot once the log written since the last one is this many times that one's size (and at least raft.snapshot_min_log_bytes)",
    },
    Key {
        key: "raft.snapshot_min_log_bytes",
        default: "67108864",
        help: "log bytes written since the last snapshot below which none is built by size",
    },
    Key {
        key: "raft.pack_log",
        default: "false",
        help: "zstd-pack raft log entries of 4 KiB and more (point batches shrink about 3x; costs CPU)",
    },
    Key {
        key: "raft.keep_logs",
        default: "5000",
        help: "entries kept behind a snapshot",
    },
    Key {
        key: "raft.keep_log_bytes",
        default: "67108864",
        help: "most bytes of entries kept behind a snapshot, whatever raft.keep_logs says (0: no bound by bytes); a follower further behind gets the snapshot",
    },
    Key {
        key: "raft.log_segment_bytes",
        default: "67108864",
        help: "size of one raft log segment file, preallocated (`dev` starts at 4194304 unless set)",
    },
    Key {
        key: "raft.forward_timeout_ms",
        default: "10000",
        help: "how long a request waits for a leader",
    },
    Key {
        key: "raft.batch_max_commands",
        default: "4096",
        help: "group commit: commands per log entry",
    },
    Key {
        key: "raft.batch_max_in_flight",
        default: "1",
        help: "group commit: entries committing at once",
    },
    Key {
        key: "raft.forward_max_in_flight",
        default: "2",
        help: "a follower's packs of forwarded writes on their way to the leader at once",
    },
    Key {
        key: "limits.max_body_bytes",
        default: "1048576",
        help: "largest request body (413 above)",
    },
    Key {
        key: "limits.header_read_timeout_ms",
        default: "10000",
        help: "a request head must arrive within this (the connection is closed otherwise)",
    },
    Key {
        key: "limits.body_read_timeout_ms",
        default: "30000",
        help: "a request body must arrive within this (408 otherwise)",
    },
    Key {
        key: "limits.max_key_bytes",
        default: "512",
        help: "longest hash id, property name, set member, service name (at most 512)",
    },
    Key {
        key: "limits.max_value_bytes",
        default: "65536",
        help: "longest property value or service record (at most 65536; 413 / 400 above)",
    },
    Key {
        key: "limits.max_properties",
        default: "4096",
        help: "most properties in one metadata object (at most 4096)",
    },
    Key {
        key: "limits.max_object_bytes",
        default: "4194304",
        help: "largest metadata object, its property names and values together (413 above)",
    },
    Key {
        key: "limits.max_large_reads",
        default: "32",
        help: "reads with answers of up to megabytes (an object; a page of ids, services or points) held at once, until their answer is sent; more wait up to 5 s, then 503",
    },
    Key {
        key: "limits.max_point_metadata_bytes",
        default: "16384",
        help: "largest `metadata` object of one metric point, as JSON",
    },
    Key {
        key: "limits.meta_list_max",
        default: "10000",
        help: "largest page of GET /meta",
    },
    Key {
        key: "limits.max_waiters",
        default: "4096",
        help: "blocking queries waiting at once (429 above)",
    },
    Key {
        key: "files.root",
        default: "./files",
        help: "root of files served by /file and /data (env FILES_PATH also accepted)",
    },
    Key {
        key: "services.stale_threshold_ms",
        default: "60000",
        help: "a service is `stale` after this long without a heartbeat (env STALE_THRESHOLD_MS also accepted)",
    },
    Key {
        key: "services.reap_interval_ms",
        default: "1000",
        help: "how often the leader removes services past deregisterAfterMs",
    },
    Key {
        key: "load.gc_interval_ms",
        default: "60000",
        help: "how often the leader expires load requests, engines and tombstones",
    },
    Key {
        key: "load.req_expire_ms",
        default: "660000",
        help: "a load request older than this is removed with its counters",
    },
    Key {
        key: "load.engine_expire_ms",
        default: "660000",
        help: "an engine not updated for this long is removed",
    },
    Key {
        key: "load.tombstone_ttl_ms",
        default: "60000",
        help: "how long a finish that arrived before its add waits for the add",
    },
    Key {
        key: "points.max_batch",
        default: "1000",
        help: "most points in one POST /api/v1/metrics/batch",
    },
    Key {
        key: "points.retention",
        default: "",
        help: "per-tenant retention, e.g. `default=30d,team-a=7d` (empty: keep forever)",
    },
    Key {
        key: "points.retention_interval_ms",
        default: "60000",
        help: "how often the leader applies retention",
    },
    Key {
        key: "limits.max_websockets",
        default: "10000",
        help: "open WebSocket streams per node (503 above)",
    },
    Key {
        key: "limits.max_ws_message_bytes",
        default: "65536",
        help: "largest WebSocket message or frame a client may send (the stream is closed with 1009 above)",
    },
    Key {
        key: "limits.max_subscribe_metrics",
        default: "1000",
        help: "most metric names in one stream `subscribe` (an `error` message above)",
    },
    Key {
        key: "sync.enabled",
        default: "true",
        help: "run metric metadata syncs on the leader (replicated settings win once PUT)",
    },
    Key {
        key: "sync.strategy",
        default: "hybrid",
        help: "full, incremental (lookback) or hybrid (incremental plus periodic full)",
    },
    Key {
        key: "sync.interval",
        default: "15m",
        help: "time between syncs of a tenant (ns or `15m`)",
    },
    Key {
        key: "sync.full_sync_interval",
        default: "24h",
        help: "hybrid: a full sync when the last one is older than this",
    },
    Key {
        key: "sync.batch_size",
        default: "5000",
        help: "metrics per replicated upsert command",
    },
    Key {
        key: "sync.max_retries",
        default: "3",
        help: "retries of a failed source request (exponential backoff)",
    },
    Key {
        key: "sync.retry_delay",
        default: "1s",
        help: "first retry delay (doubles each retry, at most 30s)",
    },
    Key {
        key: "sync.lookback",
        default: "24h",
        help: "time range of the series a sync asks its source for",
    },
    Key {
        key: "sync.timeout",
        default: "30s",
        help: "per-request timeout towards a source",
    },
    Key {
        key: "sync.sources",
        default: "",
        help: "`TENANT=URL[#SELECTOR],...`; `[[sync.sources]] tenant, url, username, password, bearer_token, match` in TOML",
    },
    Key {
        key: "search.index_dir",
        default: "(data_dir/index)",
        help: "directory of the tantivy search index (derived; deleting it forces a rebuild)",
    },
    Key {
        key: "backup.dir",
        default: "",
        help: "directory of scheduled backups, written by the leader (empty: none)",
    },
    Key {
        key: "backup.interval",
        default: "0",
        help: "time between scheduled backups (`6h`; 0: off)",
    },
    Key {
        key: "backup.keep",
        default: "7",
        help: "scheduled backups kept in `backup.dir`, the newest (at least 1)",
    },
    Key {
        key: "pprof.enable",
        default: "false",
        help: "serve CPU profiles at /debug/pprof/profile on pprof.listen ([PProf] Enable)",
    },
    Key {
        key: "pprof.listen",
        default: "127.0.0.1:6060",
        help: "profiling listener ([PProf] Port sets its port)",
    },
    Key {
        key: "log.level",
        default: "info",
        help: "trace, debug, info, warn, error",
    },
    Key {
        key: "log.format",
        default: "text",
        help: "text or json",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_configuration_holds_the_generated_key_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let table = markdown_table();
        assert!(
            doc.contains(&table),
            "the key table of docs/configuration.md is not the one KEYS renders; \
             paste the table printed below over it (markdown_table()'s output):\n\n{table}"
        );
    }
}
