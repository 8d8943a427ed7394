//! The node's configuration: defaults < TOML file < `METACENTER_*` environment < flags.
//!
//! Every setting has a dotted key (`node.id`, `raft.heartbeat_ms`, ...). The TOML file
//! uses the same sections; Metadata Center's `[HTTP] Host/Port`, `[Log] Level/Format`
//! and `[PProf] Enable/Port` are accepted as aliases. The environment variable of a key
//! is `METACENTER_` + the key upper-cased with `.` as `_` (`METACENTER_NODE_ID`).
//! [`KEYS`] is the single list of settings; the README's reference is written from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use metacenter_raft::Faults;

/// One documented setting: key, default (as text), meaning.
pub struct Key {
    pub key: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting, in the order the README lists them.
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
        help: "shared secret required on every peer request",
    },
    Key {
        key: "cluster.insecure",
        default: "false",
        help: "allow a non-loopback peer listener without a secret",
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
        default: "20000",
        help: "entries applied between snapshots",
    },
    Key {
        key: "raft.keep_logs",
        default: "5000",
        help: "entries kept behind a snapshot",
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
        help: "`TENANT=URL,...`; `[[sync.sources]] tenant, url, username, password, bearer_token, match` in TOML",
    },
    Key {
        key: "search.index_dir",
        default: "(data_dir/index)",
        help: "directory of the tantivy search index (derived; deleting it forces a rebuild)",
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
    pub keep_logs: u64,
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
            keep_logs: 0,
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

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            why: e.to_string(),
        })
}

fn ms(key: &str, value: &str) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(parse(key, value)?))
}

fn retention(key: &str, value: &str) -> Result<Vec<(String, Duration)>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let invalid = |why: String| ConfigError::Invalid {
                key: key.into(),
                value: value.into(),
                why,
            };
            let (tenant, d) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("`{pair}`: expected TENANT=DURATION")))?;
            let d = humantime::parse_duration(d.trim())
                .map_err(|e| invalid(format!("`{pair}`: {e}")))?;
            if d.is_zero() {
                return Err(invalid(format!("`{pair}`: retention must be > 0")));
            }
            Ok((tenant.trim().to_string(), d))
        })
        .collect()
}

fn opt(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

impl Config {
    /// Sets one setting from text.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "node.id" => self.id = parse(key, value)?,
            "node.data_dir" => self.data_dir = PathBuf::from(value),
            "node.listen" => self.listen = value.to_string(),
            "node.peer_listen" => self.peer_listen = value.to_string(),
            "node.advertise_api" => self.advertise_api = opt(value),
            "node.advertise_peer" => self.advertise_peer = opt(value),
            "node.bootstrap" => self.bootstrap = parse(key, value)?,
            "node.join" => self.join = opt(value),
            "cluster.secret" => self.secret = value.to_string(),
            "cluster.insecure" => self.insecure = parse(key, value)?,
            "auth.tokens" => {
                self.auth_tokens =
                    crate::auth::parse_text(value).map_err(|why| ConfigError::Invalid {
                        key: key.into(),
                        value: "<redacted>".into(),
                        why,
                    })?
            }
            "raft.heartbeat_ms" => self.heartbeat_ms = parse(key, value)?,
            "raft.election_min_ms" => self.election_min_ms = parse(key, value)?,
            "raft.election_max_ms" => self.election_max_ms = parse(key, value)?,
            "raft.snapshot_every" => self.snapshot_every = parse(key, value)?,
            "raft.keep_logs" => self.keep_logs = parse(key, value)?,
            "raft.forward_timeout_ms" => {
                self.forward_timeout = Duration::from_millis(parse(key, value)?)
            }
            "raft.batch_max_commands" => self.batch_max_commands = parse(key, value)?,
            "raft.batch_max_in_flight" => self.batch_max_in_flight = parse(key, value)?,
            "raft.forward_max_in_flight" => self.forward_max_in_flight = parse(key, value)?,
            "limits.max_body_bytes" => self.max_body_bytes = parse(key, value)?,
            "limits.header_read_timeout_ms" => self.header_read_timeout = ms(key, value)?,
            "limits.body_read_timeout_ms" => self.body_read_timeout = ms(key, value)?,
            "limits.max_key_bytes" => self.limits.key = parse(key, value)?,
            "limits.max_value_bytes" => self.limits.value = parse(key, value)?,
            "limits.max_properties" => self.limits.properties = parse(key, value)?,
            "limits.max_point_metadata_bytes" => self.limits.point_metadata = parse(key, value)?,
            "limits.meta_list_max" => self.meta_list_max = parse(key, value)?,
            "limits.max_waiters" => self.max_waiters = parse(key, value)?,
            "points.max_batch" => self.points_max_batch = parse(key, value)?,
            "points.retention" => self.points_retention = retention(key, value)?,
            "points.retention_interval_ms" => self.retention_interval = ms(key, value)?,
            "limits.max_websockets" => self.max_websockets = parse(key, value)?,
            "load.gc_interval_ms" => self.load_gc_interval = ms(key, value)?,
            "load.req_expire_ms" => self.load_req_expire = ms(key, value)?,
            "load.engine_expire_ms" => self.load_engine_expire = ms(key, value)?,
            "load.tombstone_ttl_ms" => self.load_tombstone_ttl = ms(key, value)?,
            "files.root" => self.files_root = PathBuf::from(value),
            "services.stale_threshold_ms" => self.stale_threshold_ms = parse(key, value)?,
            "services.reap_interval_ms" => {
                self.reap_interval = Duration::from_millis(parse(key, value)?)
            }
            "pprof.enable" => self.pprof_enable = parse(key, &value.to_lowercase())?,
            "pprof.listen" => self.pprof_listen = value.to_string(),
            "log.level" => self.log_level = value.to_lowercase(),
            "log.format" => self.log_format = value.to_lowercase(),
            "search.index_dir" => self.index_dir = opt(value).map(PathBuf::from),
            k if k.starts_with("sync.") => {
                self.sync.set(k, value).map_err(|why| match why.as_str() {
                    "unknown" => ConfigError::Unknown(key.into()),
                    _ => ConfigError::Invalid {
                        key: key.into(),
                        value: value.into(),
                        why,
                    },
                })?
            }
            _ => return Err(ConfigError::Unknown(key.into())),
        }
        Ok(())
    }

    /// Applies a TOML file: metacenter's sections and Metadata Center's aliases.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let err = |why: String| ConfigError::File {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(e.to_string()))?;
        let (mut host, mut port, mut pprof_port) = (None, None, None);
        for (section, body) in &table {
            let toml::Value::Table(body) = body else {
                return Err(err(format!("`{section}` must be a section")));
            };
            for (k, v) in body {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                match (section.as_str(), k.as_str()) {
                    ("sync", "sources") if v.is_array() => {
                        let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
                        self.sync.add_toml_sources(items).map_err(err)?
                    }
                    ("auth", "tokens") if v.is_array() => {
                        let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
                        self.auth_tokens = crate::auth::parse_toml(items).map_err(err)?
                    }
                    ("HTTP", "Host") => host = Some(text),
                    ("HTTP", "Port") => port = Some(text),
                    ("Log", "Level") => self.set("log.level", &text)?,
                    ("Log", "Format") => self.set("log.format", &text)?,
                    ("PProf", "Enable") => self.set("pprof.enable", &text)?,
                    ("PProf", "Port") => pprof_port = Some(text),
                    ("PProf", _) => {}
                    _ => self.set(&format!("{section}.{k}"), &text)?,
                }
            }
        }
        if let Some(p) = pprof_port {
            let h = self
                .pprof_listen
                .rsplit_once(':')
                .map_or("127.0.0.1", |(h, _)| h)
                .to_string();
            self.set("pprof.listen", &format!("{h}:{p}"))?;
        }
        if host.is_some() || port.is_some() {
            let (h, p) = self
                .listen
                .rsplit_once(':')
                .unwrap_or(("127.0.0.1", "8080"));
            let listen = format!(
                "{}:{}",
                host.as_deref().unwrap_or(h),
                port.as_deref().unwrap_or(p)
            );
            self.set("node.listen", &listen)?;
        }
        Ok(())
    }

    /// Applies every `METACENTER_*` variable of `env` that names a known setting.
    /// meta-core's own variables, `FILES_PATH` and `STALE_THRESHOLD_MS`, are accepted
    /// too (the `METACENTER_*` names win when both are set).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (alias, key) in [
            ("FILES_PATH", "files.root"),
            ("STALE_THRESHOLD_MS", "services.stale_threshold_ms"),
        ] {
            if let Some(v) = env(alias) {
                self.set(key, &v)?;
            }
        }
        for k in KEYS {
            let name = format!("METACENTER_{}", k.key.to_uppercase().replace('.', "_"));
            if let Some(v) = env(&name) {
                self.set(k.key, &v)?;
            }
        }
        Ok(())
    }

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

    /// Cross-field checks made before starting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, why: &str| ConfigError::Invalid {
            key: key.into(),
            value,
            why: why.into(),
        };
        if self.id == 0 {
            return Err(invalid("node.id", "0".into(), "must be > 0"));
        }
        if self.election_min_ms <= self.heartbeat_ms || self.election_max_ms <= self.election_min_ms
        {
            return Err(invalid(
                "raft.election_min_ms",
                self.election_min_ms.to_string(),
                "need heartbeat < election_min < election_max",
            ));
        }
        for (key, d) in [
            ("limits.header_read_timeout_ms", self.header_read_timeout),
            ("limits.body_read_timeout_ms", self.body_read_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "0".into(), "must be > 0"));
            }
        }
        use metacenter_storage::Limits;
        for (key, v, ceiling) in [
            ("limits.max_key_bytes", self.limits.key, Limits::MAX_KEY),
            (
                "limits.max_value_bytes",
                self.limits.value,
                Limits::MAX_VALUE,
            ),
            (
                "limits.max_properties",
                self.limits.properties,
                Limits::MAX_PROPS,
            ),
        ] {
            // The ceilings are checked again by apply on every node: a node may be
            // stricter at its edge, never looser.
            if v == 0 || v > ceiling {
                let why = format!("must be 1 to {ceiling}");
                return Err(invalid(key, v.to_string(), &why));
            }
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(invalid(
                "log.format",
                self.log_format.clone(),
                "must be text or json",
            ));
        }
        if let Err(why) = crate::search::settings::validate(&self.sync.defaults) {
            return Err(invalid("sync", String::new(), &why));
        }
        if self.secret.is_empty() && !self.insecure && !is_loopback(&self.peer_listen) {
            return Err(invalid(
                "cluster.secret",
                String::new(),
                "a peer listener on a non-loopback address needs a cluster secret (or --insecure)",
            ));
        }
        Ok(())
    }
}

/// Whether `addr` (host:port) binds only loopback.
pub fn is_loopback(addr: &str) -> bool {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_file_env_flag() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[node]\nid = 3\n[HTTP]\nPort = 9999\n[Log]\nLevel = \"DEBUG\"\n[raft]\nheartbeat_ms = 50\n").unwrap();
        let mut c = Config::default();
        c.apply_file(&f).unwrap();
        assert_eq!(
            (
                c.id,
                c.listen.as_str(),
                c.log_level.as_str(),
                c.heartbeat_ms
            ),
            (3, "127.0.0.1:9999", "debug", 50)
        );
        c.apply_env(|k| (k == "METACENTER_NODE_ID").then(|| "7".to_string()))
            .unwrap();
        assert_eq!(c.id, 7);
        c.set("node.id", "9").unwrap();
        assert_eq!(c.id, 9);
    }

    #[test]
    fn bad_values_are_named() {
        let mut c = Config::default();
        let e = c.set("raft.heartbeat_ms", "fast").unwrap_err().to_string();
        assert!(e.contains("raft.heartbeat_ms"), "{e}");
        assert!(matches!(c.set("nope.x", "1"), Err(ConfigError::Unknown(_))));
    }

    #[test]
    fn auth_tokens_from_toml_and_text() {
        use crate::auth::Role;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        let toml = "[[auth.tokens]]\ntoken = \"r-tok\"\nrole = \"read\"\ntenants = [\"a\", \"b\"]\n\n[[auth.tokens]]\ntoken = \"adm\"\nrole = \"admin\"\n";
        std::fs::write(&f, toml).unwrap();
        let mut c = Config::default();
        assert!(c.auth_tokens.is_empty(), "no tokens by default");
        c.apply_file(&f).unwrap();
        let got: Vec<_> = c
            .auth_tokens
            .iter()
            .map(|t| (t.token.as_str(), t.role, t.tenants.len()))
            .collect();
        assert_eq!(got, [("r-tok", Role::Read, 2), ("adm", Role::Admin, 0)]);
        // The text form (env, --set) replaces the file's list.
        c.apply_env(|k| (k == "METACENTER_AUTH_TOKENS").then(|| "w:write:x|y".to_string()))
            .unwrap();
        assert_eq!(c.auth_tokens.len(), 1);
        assert_eq!(
            (c.auth_tokens[0].role, &c.auth_tokens[0].tenants[..]),
            (Role::Write, &["x".to_string(), "y".to_string()][..])
        );

        let e = c
            .set("auth.tokens", "good:read,secret-tok:root")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.tokens") && e.contains("root"), "{e}");
        assert!(
            !e.contains("secret-tok"),
            "a token never appears in an error: {e}"
        );
        std::fs::write(&f, "[[auth.tokens]]\ntoken = \"t\"\nrole = \"boss\"\n").unwrap();
        let e = Config::default().apply_file(&f).unwrap_err().to_string();
        assert!(e.contains("auth.tokens") && e.contains("boss"), "{e}");
        assert!(!format!("{c:?}").contains("\"w\""), "Debug redacts tokens");
    }

    #[test]
    fn non_loopback_needs_secret() {
        let mut c = Config::default();
        c.set("node.peer_listen", "0.0.0.0:8090").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cluster.secret"), "{e}");
        c.set("cluster.insecure", "true").unwrap();
        assert!(c.validate().is_ok(), "--insecure allows it");
        c.set("cluster.insecure", "false").unwrap();
        c.set("cluster.secret", "s3cret").unwrap();
        assert!(c.validate().is_ok());
        assert!(is_loopback("127.0.0.1:1") && is_loopback("localhost:1") && is_loopback("[::1]:1"));
    }
}

/// Sizes a request is checked against at the edge, before a command is proposed.
/// `key`, `value` and `properties` may only be lower than the storage ceilings
/// (`metacenter_storage::Limits`), which apply enforces the same on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Longest hash id, property name, set member, service name (bytes).
    pub key: usize,
    /// Longest property value or service record (bytes).
    pub value: usize,
    /// Most properties one metadata object may hold.
    pub properties: usize,
    /// Largest `metadata` object of one metric point, as JSON (bytes).
    pub point_metadata: usize,
}

impl Default for EdgeLimits {
    /// The storage ceilings, and 16 KiB of point metadata.
    fn default() -> Self {
        use metacenter_storage::Limits;
        EdgeLimits {
            key: Limits::MAX_KEY,
            value: Limits::MAX_VALUE,
            properties: Limits::MAX_PROPS,
            point_metadata: 16 * 1024,
        }
    }
}
