//! Logs through `tracing`, as text or JSON, with a level filter that can be changed
//! at run time (`POST /log/level`). `RUST_LOG`, when set, wins over the configured level.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

static HANDLE: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

fn filter_for(level: &str) -> Result<EnvFilter, String> {
    let level = match level.to_ascii_lowercase().as_str() {
        "fatal" | "panic" => "error".to_string(),
        l @ ("trace" | "debug" | "info" | "warn" | "error") => l.to_string(),
        other => {
            return Err(format!(
                "unknown log level `{other}`; use TRACE, DEBUG, INFO, WARN, ERROR or FATAL"
            ))
        }
    };
    EnvFilter::try_new(format!("{level},openraft=warn,sled=warn,hyper=warn"))
        .map_err(|e| e.to_string())
}

/// Installs the global subscriber. Later calls do nothing.
pub fn init(level: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| filter_for(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let writer = std::io::stderr;
    let ok = if format == "json" {
        registry
            .with(fmt::layer().json().with_writer(writer))
            .try_init()
            .is_ok()
    } else {
        registry
            .with(fmt::layer().with_writer(writer))
            .try_init()
            .is_ok()
    };
    if ok {
        let _ = HANDLE.set(handle);
    }
}

/// Changes the level at run time. Without an installed subscriber (tests) the level
/// is still validated.
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = filter_for(level)?;
    if let Some(h) = HANDLE.get() {
        h.reload(filter).map_err(|e| e.to_string())?;
    }
    Ok(())
}
