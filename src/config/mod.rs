//! The node's configuration: defaults < TOML file < `METACENTER_*` environment < flags.
//!
//! Every setting has a dotted key (`node.id`, `raft.heartbeat_ms`, ...). The TOML file
//! uses the same sections; Metadata Center's `[HTTP] Host/Port`, `[Log] Level/Format`
//! and `[PProf] Enable/Port` are accepted as aliases. The environment variable of a key
//! is `METACENTER_` + the key upper-cased with `.` as `_` (`METACENTER_NODE_ID`).
//! [`KEYS`] is the single list of settings; the key table of docs/configuration.md is
//! [`markdown_table`]'s rendering of it.
//!
//! Here: [`Config`], its defaults and [`ConfigError`]; `keys` holds [`KEYS`], `parse`
//! the text, file and environment forms, `validate` the start-up checks, `edge`
//! [`EdgeLimits`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metacenter_raft::Faults;

mod edge;
mod keys;
mod parse;
mod validate;

pub use edge::EdgeLimits;
pub use keys::{markdown_table, Key, KEYS};
pub use validate::is_loopback;

/// The node's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: u64,
    pub data_dir: PathBuf,
    pub listen: String,
    pub peer_listen: String,
    pub advertise_api: Option<String>,
    pub advertise_peer: Option<String>,
    pub bootstrap: bool,
    pub join: Option<String>,
    pub secret: String,
    pub insecure: bool,
    /// Client API tokens; empty: authentication off.
    pub auth_tokens: Vec<crate::auth::Token>,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub snapshot_every: u64,
    pub snapshot_log_ratio: f64,
    pub snapshot_min_log_bytes: u64,
    pub pack_log: bool,
    pub keep_logs: u64,
    pub keep_log_bytes: u64,
    pub log_segment_bytes: u64,
    pub forward_timeout: Duration,
    pub batch_max_commands: usize,
    pub batch_max_in_flight: usize,
    pub forward_max_in_flight: usize,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub limits: EdgeLimits,
    pub meta_list_max: usize,
    pub max_waiters: usize,
    /// Large reads held at once (`limits.max_large_reads`).
    pub max_large_reads: usize,
    pub points_max_batch: usize,
    /// (tenant, retention) pairs.
    pub points_retention: Vec<(String, Duration)>,
    pub retention_interval: Duration,
    pub max_websockets: usize,
    pub load_gc_interval: Duration,
    pub load_req_expire: Duration,
    pub load_engine_expire: Duration,
    pub load_tombstone_ttl: Duration,
    pub files_root: PathBuf,
    pub stale_threshold_ms: u64,
    pub reap_interval: Duration,
    pub pprof_enable: bool,
    pub pprof_listen: String,
    pub log_level: String,
    pub log_format: String,
    /// Metric metadata sync (`sync.*`).
    pub sync: crate::search::SyncConfig,
    /// Search index directory (None: `data_dir/index`).
    pub index_dir: Option<PathBuf>,
    /// Scheduled backups (`backup.*`).
    pub backup: crate::backup::BackupConfig,
    /// Injected network faults (in-process tests only; never from a file).
    pub faults: Arc<Faults>,
}

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting `{0}`")]
    Unknown(String),
    #[error("setting `{key}`: `{value}` is not valid: {why}")]
    Invalid {
        key: String,
        value: String,
        why: String,
    },
    #[error("config file {path}: {why}")]
    File { path: String, why: String },
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            id: 0,
            data_dir: PathBuf::new(),
            listen: String::new(),
            peer_listen: String::new(),
            advertise_api: None,
            advertise_peer: None,
            bootstrap: false,
            join: None,
            secret: String::new(),
            insecure: false,
            auth_tokens: Vec::new(),
            heartbeat_ms: 0,
            election_min_ms: 0,
            election_max_ms: 0,
            snapshot_every: 0,
            snapshot_log_ratio: 0.0,
            snapshot_min_log_bytes: 0,
            pack_log: false,
            keep_logs: 0,
            keep_log_bytes: 0,
            log_segment_bytes: 0,
            forward_timeout: Duration::ZERO,
            batch_max_commands: 0,
            batch_max_in_flight: 0,
            forward_max_in_flight: 0,
            max_body_bytes: 0,
            header_read_timeout: Duration::ZERO,
            body_read_timeout: Duration::ZERO,
            limits: EdgeLimits::default(),
            meta_list_max: 0,
            max_waiters: 0,
            max_large_reads: 0,
            points_max_batch: 0,
            points_retention: Vec::new(),
            retention_interval: Duration::ZERO,
            max_websockets: 0,
            load_gc_interval: Duration::ZERO,
            load_req_expire: Duration::ZERO,
            load_engine_expire: Duration::ZERO,
            load_tombstone_ttl: Duration::ZERO,
            files_root: PathBuf::new(),
            stale_threshold_ms: 0,
            reap_interval: Duration::ZERO,
            pprof_enable: false,
            pprof_listen: String::new(),
            log_level: String::new(),
            log_format: String::new(),
            sync: crate::search::SyncConfig::default(),
            index_dir: None,
            backup: crate::backup::BackupConfig::default(),
            faults: Arc::new(Faults::default()),
        };
        for k in KEYS {
            if !k.default.starts_with('(') {
                c.set(k.key, k.default).expect("defaults are valid");
            }
        }
        c
    }
}

impl Config {
    /// The search index directory.
    pub fn index_dir(&self) -> PathBuf {
        self.index_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("index"))
    }

    /// The API address other nodes and clients are told.
    pub fn api_addr(&self) -> &str {
        self.advertise_api.as_deref().unwrap_or(&self.listen)
    }

    /// The peer address other nodes use.
    pub fn peer_addr(&self) -> &str {
        self.advertise_peer.as_deref().unwrap_or(&self.peer_listen)
    }
}
