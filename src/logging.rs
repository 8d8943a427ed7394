//! Logs through `tracing`, as text or JSON, with a level filter (`RUST_LOG` wins
//! over the configured level when set).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once; later calls do nothing.
pub fn init(level: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = if level == "fatal" { "error" } else { level };
        EnvFilter::new(format!("{level},openraft=warn,sled=warn,hyper=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
