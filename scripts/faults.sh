#!/usr/bin/env bash
# Long fault campaign: scripts/faults.sh [minutes] (default 60).
#
# Builds the release binaries, then runs `nemesis` (cluster-tests/src/bin/nemesis.rs) on
# a fresh three-node process cluster: kill -9 and restart, SIGSTOP / SIGCONT and an hour
# of clock skew either way, one fault at a time, under the register (linearizability),
# service (never deregistered while heartbeating) and load (counters equal adds minus
# finishes) workloads. Prints a table of faults by kind with the longest time without a
# register answer, operations by workload, and violations; exits 1 on any violation.
# Needs Debian's faketime (installed with apt-get when missing). NEMESIS_SEED=N replays
# a campaign's choice of faults.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
minutes=${1:-60}
if [[ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]]; then
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y faketime
fi
cargo build --release --bin metacenter -p metacenter
cargo build --release --bin nemesis -p cluster-tests
seed=()
if [[ -n "${NEMESIS_SEED:-}" ]]; then seed=(--seed "$NEMESIS_SEED"); fi
METACENTER_BIN="$PWD/target/release/metacenter" target/release/nemesis --minutes "$minutes" "${seed[@]}"
