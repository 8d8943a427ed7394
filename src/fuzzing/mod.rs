//! Fuzz harnesses: one function per fuzz target of `cluster-tests/fuzz`, each feeding
//! untrusted bytes to the production decoders and request parsers (never a copy of
//! them) and asserting the properties that must hold whatever the input.
//!
//! The cargo-fuzz targets and the regression test `tests/fuzz_regressions.rs` both call
//! these functions, so a crashing input kept under `cluster-tests/fuzz/regressions/`
//! replays exactly what the fuzzer ran. Not part of the node's API.
//!
//! Input layout, shared by all targets: the first byte picks which parser of the area
//! runs (`b'0'` is the first, `b'1'` the second, ...; any byte maps to one of them), the
//! rest is its input. Parsers that take two inputs (a path segment and a body, a header
//! and a query) get the text before the first `\n` and the text after it.
//!
//! Each harness returns whether the input was accepted (decoded or parsed without an
//! error): the committed seeds are all valid inputs, and the regression test checks
//! that they still are, so the seed corpora keep up with the formats.

use std::path::PathBuf;

mod api;
mod files;
mod peer;
mod wire;

pub use api::{
    api_load, api_meta, api_points, api_promapi, api_search, api_services, api_ws, config,
};
pub use files::api_files;
pub use peer::peer_routes;
pub use wire::{chunk_decode, command_apply, command_decode, peer_rpc};

/// A fuzz harness: untrusted bytes in, whether they were accepted out. Panics only on a
/// bug (a crash of the code under test or a violated property).
pub type Harness = fn(&[u8]) -> bool;

/// Every target: its name (the fuzz target, and the directory of its seeds and
/// regressions) and its harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("peer_rpc", peer_rpc),
    ("peer_routes", peer_routes),
    ("command_decode", command_decode),
    ("chunk_decode", chunk_decode),
    ("command_apply", command_apply),
    ("api_meta", api_meta),
    ("api_services", api_services),
    ("api_load", api_load),
    ("api_points", api_points),
    ("api_search", api_search),
    ("api_promapi", api_promapi),
    ("api_ws", api_ws),
    ("api_files", api_files),
    ("config", config),
];

/// The directory for this process's scratch state (the stores `command_apply` applies
/// to, the tree `api_files` confines paths to), under the system temp directory. The
/// caller that is done with the harnesses removes it.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("metacenter-fuzz-{}", std::process::id()))
}

/// The selector and the rest: `(variant in 0..n, input)`.
fn pick(data: &[u8], n: u8) -> (u8, &[u8]) {
    match data.split_first() {
        Some((b, rest)) => (b.wrapping_sub(b'0') % n, rest),
        None => (0, &[]),
    }
}

/// The bytes before the first `\n` and those after it (all and nothing without one).
fn two(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Text as the HTTP layer hands it over (path segments, queries, bodies read as text
/// are UTF-8 by then): invalid sequences replaced.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}
