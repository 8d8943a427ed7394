//! Setting values from text: one key ([`Config::set`]), a TOML file with Metadata
//! Center's aliases ([`Config::apply_file`]) and the environment ([`Config::apply_env`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Config, ConfigError, KEYS};

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

/// A duration as `90s`, `15m`, `24h` (`0`: none).
fn duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        why: e.to_string(),
    })
}

fn at_least_one(key: &str, value: &str) -> Result<usize, ConfigError> {
    match parse(key, value)? {
        0 => Err(ConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            why: "must be at least 1".into(),
        }),
        n => Ok(n),
    }
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
            "raft.pack_log" => self.pack_log = parse(key, value)?,
            "raft.snapshot_log_ratio" => self.snapshot_log_ratio = parse(key, value)?,
            "raft.snapshot_min_log_bytes" => self.snapshot_min_log_bytes = parse(key, value)?,
            "raft.keep_logs" => self.keep_logs = parse(key, value)?,
            "raft.keep_log_bytes" => self.keep_log_bytes = parse(key, value)?,
            "raft.log_segment_bytes" => self.log_segment_bytes = parse(key, value)?,
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
            "limits.max_object_bytes" => self.limits.object = parse(key, value)?,
            "limits.max_large_reads" => self.max_large_reads = parse(key, value)?,
            "limits.max_point_metadata_bytes" => self.limits.point_metadata = parse(key, value)?,
            "limits.max_ws_message_bytes" => self.limits.ws_message = parse(key, value)?,
            "limits.max_subscribe_metrics" => self.limits.subscribe_metrics = parse(key, value)?,
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
            "backup.dir" => self.backup.dir = opt(value).map(PathBuf::from),
            "backup.interval" => self.backup.interval = duration(key, value)?,
            "backup.keep" => self.backup.keep = at_least_one(key, value)?,
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
}
