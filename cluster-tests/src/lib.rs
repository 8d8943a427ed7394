//! cluster-tests: harnesses that start metacenter clusters and check them.
//!
//! - [`inproc`]: three (or more) nodes in one process on ephemeral ports, with
//!   injected network faults.
//! - [`process`]: clusters of the real `metacenter` binary (kill -9, SIGSTOP, restart).
//! - [`linearizability`]: recorded client histories and a real checker.
//! - [`loadgen`]: the load generator behind `scripts/bench.sh`.
//! - [`nemesis`]: fault campaigns (kill, pause, clock skew) under checked workloads.
//! - [`poll`]: waiting for a condition with a deadline (tests never sleep blindly).

pub mod inproc;
pub mod linearizability;
pub mod loadgen;
pub mod nemesis;
pub mod poll;
pub mod process;
