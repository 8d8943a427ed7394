//! Sync configuration: the sources per tenant (node config only: they may hold
//! credentials) and the sync settings — defaults from the node config, replaced
//! cluster-wide once `PUT /api/v1/metrics/sync/config` stores replicated ones.

use std::time::Duration;

use metacenter_storage::SyncSettings;

/// One Prometheus-compatible source of a tenant's metric metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncSource {
    pub tenant: String,
    /// Base URL, e.g. `http://127.0.0.1:8428` (VictoriaMetrics) or a Prometheus.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer_token: Option<String>,
    /// `match[]` selectors for `/api/v1/series` (default: every series).
    pub matchers: Vec<String>,
}

/// The `sync.*` part of the node configuration.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub defaults: SyncSettings,
    /// Per-request timeout towards a source.
    pub timeout: Duration,
    pub sources: Vec<SyncSource>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            defaults: SyncSettings {
                enabled: true,
                strategy: "hybrid".into(),
                interval_ns: 0,
                full_sync_interval_ns: 0,
                batch_size: 0,
                max_retries: 0,
                retry_delay_ns: 0,
                lookback_ns: 0,
            },
            timeout: Duration::ZERO,
            sources: Vec::new(),
        }
    }
}

/// Parses a duration as an integer of ns, a numeric string of ns, or text like `15m`.
pub fn parse_duration(v: &serde_json::Value) -> Result<u64, String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{n} is not a whole, non-negative number of nanoseconds")),
        serde_json::Value::String(s) => parse_duration_text(s),
        other => Err(format!("{other} is not a duration")),
    }
}

/// `123` (ns) or humantime text (`15m`, `1h30m`, `500ms`).
pub fn parse_duration_text(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(ns) = s.parse::<u64>() {
        return Ok(ns);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}`: {e}"))
        .and_then(|d| u64::try_from(d.as_nanos()).map_err(|_| format!("`{s}` is too long")))
}

/// Checks settings for values a sync cannot run with.
pub fn validate(s: &SyncSettings) -> Result<(), String> {
    if !matches!(s.strategy.as_str(), "full" | "incremental" | "hybrid") {
        return Err(format!(
            "strategy `{}` must be full, incremental or hybrid",
            s.strategy
        ));
    }
    if s.interval_ns == 0 {
        return Err("interval must be greater than zero".into());
    }
    if s.strategy == "hybrid" && s.full_sync_interval_ns == 0 {
        return Err("full_sync_interval must be greater than zero for hybrid".into());
    }
    if s.batch_size == 0 || s.batch_size > 50_000 {
        return Err("batch_size must be 1 to 50000".into());
    }
    if s.max_retries > 20 {
        return Err("max_retries must be at most 20".into());
    }
    if s.lookback_ns == 0 {
        return Err("time_range_lookback must be greater than zero".into());
    }
    Ok(())
}

impl SyncConfig {
    /// Sets one `sync.*` key from text.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let d = &mut self.defaults;
        let num = |v: &str| v.trim().parse::<u32>().map_err(|e| e.to_string());
        match key {
            "sync.enabled" => d.enabled = value.trim().parse().map_err(|e| format!("{e}"))?,
            "sync.strategy" => d.strategy = value.trim().to_lowercase(),
            "sync.interval" => d.interval_ns = parse_duration_text(value)?,
            "sync.full_sync_interval" => d.full_sync_interval_ns = parse_duration_text(value)?,
            "sync.batch_size" => d.batch_size = num(value)?,
            "sync.max_retries" => d.max_retries = num(value)?,
            "sync.retry_delay" => d.retry_delay_ns = parse_duration_text(value)?,
            "sync.lookback" => d.lookback_ns = parse_duration_text(value)?,
            "sync.timeout" => self.timeout = Duration::from_nanos(parse_duration_text(value)?),
            "sync.sources" => self.sources = parse_sources(value)?,
            _ => return Err("unknown".into()),
        }
        Ok(())
    }

    /// Adds the sources of a TOML `[[sync.sources]]` array.
    pub fn add_toml_sources(&mut self, items: &[toml::Value]) -> Result<(), String> {
        for item in items {
            let t = item
                .as_table()
                .ok_or("each [[sync.sources]] entry must be a table")?;
            let text = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let source = SyncSource {
                tenant: text("tenant").ok_or("a sync source needs `tenant`")?,
                url: text("url").ok_or("a sync source needs `url`")?,
                username: text("username"),
                password: text("password"),
                bearer_token: text("bearer_token"),
                matchers: t
                    .get("match")
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| m.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            check_source(&source)?;
            self.sources.push(source);
        }
        Ok(())
    }
}

/// `tenant=url,tenant=url#selector` (the env/flag form: an optional `match[]` selector
/// after `#`; the TOML form can carry several selectors and credentials).
fn parse_sources(value: &str) -> Result<Vec<SyncSource>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (tenant, url) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}`: expected TENANT=URL"))?;
            let (url, selector) = url.split_once('#').unwrap_or((url, ""));
            let s = SyncSource {
                tenant: tenant.trim().into(),
                url: url.trim().into(),
                matchers: (!selector.is_empty())
                    .then(|| selector.to_string())
                    .into_iter()
                    .collect(),
                ..SyncSource::default()
            };
            check_source(&s)?;
            Ok(s)
        })
        .collect()
}

fn check_source(s: &SyncSource) -> Result<(), String> {
    if s.tenant.is_empty() || s.tenant.len() > 128 {
        return Err("a sync source tenant must be 1 to 128 bytes".into());
    }
    if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
        return Err(format!(
            "sync source url `{}` must start with http(s)://",
            s.url
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_accepted_form() {
        use serde_json::json;
        assert_eq!(
            parse_duration(&json!(900_000_000_000u64)),
            Ok(900_000_000_000)
        );
        assert_eq!(parse_duration(&json!("900000000000")), Ok(900_000_000_000));
        assert_eq!(parse_duration(&json!("15m")), Ok(900_000_000_000));
        assert!(parse_duration(&json!("soon")).is_err());
        assert!(parse_duration(&json!(-1)).is_err());
        assert!(parse_duration(&json!(true)).is_err());
    }

    #[test]
    fn sources_from_text_and_validation() {
        let s = parse_sources("a=http://x:8428, b=https://y").unwrap();
        assert_eq!(
            (s[0].tenant.as_str(), s[1].url.as_str()),
            ("a", "https://y")
        );
        assert!(parse_sources("a=ftp://x").is_err());
        assert!(parse_sources("nourl").is_err());
    }
}
