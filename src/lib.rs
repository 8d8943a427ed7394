//! metacenter: a replicated metadata and metrics node. This library is the node
//! (configuration, server, HTTP API); `main.rs` is only the command line.

pub mod admin;
pub mod auth;
pub mod backup;
pub mod clock;
pub mod config;
pub mod datadir;
#[doc(hidden)]
pub mod fuzzing;
pub mod housekeeping;
pub mod http;
pub mod listen;
pub mod liveness;
pub mod logging;
pub mod oversized;
pub mod profiling;
pub mod search;
pub mod server;
pub mod state;
pub mod streams;
pub mod watches;

pub use config::Config;
pub use server::Server;
