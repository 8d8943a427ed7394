//! Logs through `tracing`, as text or JSON, with a level filter that can be changed
//! at run time (`POST /log/level`). `RUST_LOG`, when set, wins over the configured level.
//! Colour codes only on a terminal. openraft's per-attempt replication and
//! leadership-confirmation errors are left out: with one member down they came several
//! times a second; the raft crate logs each peer's reachability changes instead.

use std::sync::OnceLock;

use tracing_subscriber::filter::{filter_fn, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// Directives added to every level: openraft's and the HTTP stack's chatter.
const QUIET: &str = "openraft=warn,openraft::replication=off,\
    openraft::engine::handler::replication_handler=off,sled=warn,hyper=warn";

/// openraft 0.9.25's ERROR for each member that did not answer one leadership
/// confirmation (every linearizable read, and `/ready`'s probe), which shares its
/// target with errors that matter; found by its place in the (pinned) source.
fn is_chatter(m: &tracing::Metadata<'_>) -> bool {
    m.target() == "openraft::core::raft_core"
        && m.file().is_some_and(|f| f.ends_with("core/raft_core.rs"))
        && m.line() == Some(383)
}

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
    EnvFilter::try_new(format!("{level},{QUIET}")).map_err(|e| e.to_string())
}

fn not_chatter() -> FilterFn<fn(&tracing::Metadata<'_>) -> bool> {
    filter_fn(|m| !is_chatter(m))
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
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let ok = if format == "json" {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_filter(not_chatter()),
            )
            .try_init()
            .is_ok()
    } else {
        registry
            .with(
                fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer)
                    .with_filter(not_chatter()),
            )
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
