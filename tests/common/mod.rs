//! The one harness of the HTTP tests in `tests/*.rs`:
//!
//! * [`node`]: in-process nodes on ephemeral ports (one bootstrapped node, a node not
//!   waited for, a three-node cluster), restartable on their data directory, with
//!   request helpers that answer a [`Reply`] or a `(status, JSON)` pair;
//! * [`process`]: the `metacenter` binary as a `dev` or `run` child process;
//! * [`reply`]: one answer and its readings;
//! * [`shape`]: the error envelopes of the areas, as checks;
//! * [`bad_input`]: tables of refused requests and the runner that sends them;
//! * [`wait`]: polling with a deadline (no fixed sleeps);
//! * [`ws`]: WebSocket streams of a node.

#![allow(dead_code, unused_imports)]

pub mod bad_input;
pub mod node;
pub mod process;
pub mod reply;
pub mod shape;
pub mod wait;
pub mod ws;

use std::time::Duration;

pub use node::{base_config, cluster, stop_all, Node, DATA_DIR, QUICK_RAFT};
pub use process::Process;
pub use reply::{answer, Reply};
pub use wait::{until, until_blocking, until_every, DEADLINE};

/// An HTTP client with a generous timeout, never through a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .expect("client")
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free loopback ports (bound together, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    ls.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}
