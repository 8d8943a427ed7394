#!/usr/bin/env bash
# bench.sh — replicated-write benchmark of metacenter against etcd, same machine, same run.
#
#   scripts/bench.sh [kv|all] [--quick]
#
# Builds the release binaries, starts a three-node metacenter cluster on loopback (data in a
# temporary directory under target/), runs the `loadgen kv` workload with 1, 64 and 256
# clients (to the leader) and 64 clients spread over all nodes, stops it, does the same
# against a three-member etcd (installed with apt-get when missing; default fsync
# durability), and prints one table with the throughput ratio metacenter/etcd.
# Everything it started is stopped on exit. `--quick` runs ~2 s per row (CI smoke mode);
# no timing is ever asserted.
#
# Environment: BENCH_PORT_BASE (default 18400), BENCH_DURATION, BENCH_WARMUP,
# BENCH_CLIENTS ("1 64 256"), BENCH_KEEP=1 keeps the data directory and logs,
# BENCH_BIN=DIR uses prebuilt `metacenter` and `loadgen` from DIR instead of building.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKLOAD=kv
QUICK=0
for arg in "$@"; do
  case "$arg" in
    kv | all) WORKLOAD=$arg ;;
    --quick) QUICK=1 ;;
    -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$arg' (usage: bench.sh [kv|all] [--quick])" >&2; exit 2 ;;
  esac
done

if [[ $QUICK == 1 ]]; then
  DURATION=${BENCH_DURATION:-2s}; WARMUP=${BENCH_WARMUP:-500ms}
else
  DURATION=${BENCH_DURATION:-10s}; WARMUP=${BENCH_WARMUP:-2s}
fi
CLIENTS=${BENCH_CLIENTS:-1 64 256}
BASE=${BENCH_PORT_BASE:-18400}
MC_API=$((BASE)); MC_PEER=$((BASE + 10)); ETCD_CLIENT=$((BASE + 20)); ETCD_PEER=$((BASE + 30))
MC_TARGETS="127.0.0.1:$((MC_API + 1)),127.0.0.1:$((MC_API + 2)),127.0.0.1:$((MC_API + 3))"
ETCD_TARGETS="127.0.0.1:$((ETCD_CLIENT + 1)),127.0.0.1:$((ETCD_CLIENT + 2)),127.0.0.1:$((ETCD_CLIENT + 3))"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BENCH_BIN:-$TARGET_DIR/release}
mkdir -p "$TARGET_DIR"
WORK=$(mktemp -d "$TARGET_DIR/bench.XXXXXX")
RESULTS=$WORK/results.jsonl
PIDS=()
CHILD=""

log() { printf '[bench] %s\n' "$*" >&2; }

# Stops the given processes: SIGTERM, then SIGKILL after 10 s.
stop_pids() {
  local pid deadline=$((SECONDS + 10))
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# Runs a command in the background and waits, so that a signal interrupts it at once.
run() {
  local rc=0
  "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $CHILD ]]; then stop_pids "$CHILD"; fi
  if ((${#PIDS[@]})); then stop_pids "${PIDS[@]}"; fi
  if [[ ${BENCH_KEEP:-0} == 1 || ($rc != 0 && $rc != 130 && $rc != 143) ]]; then
    log "data and logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_ports() {
  local p
  for p in "$@"; do
    port_free "$p" || { log "port $p is in use (set BENCH_PORT_BASE)"; exit 1; }
  done
}

apt_install() {
  log "installing $* with apt-get"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# gRPC etcd client when protoc is (or can be made) available, else etcd's JSON gateway.
ETCD_SYSTEM=etcd
FEATURES=(--features cluster-tests/etcd-client)
ensure_tools() {
  command -v etcd >/dev/null || apt_install etcd-server etcd-client
  if ! command -v protoc >/dev/null && ! apt_install protobuf-compiler; then
    log "protoc unavailable: driving etcd through its HTTP/JSON gateway"
    ETCD_SYSTEM=etcd-http
    FEATURES=()
  fi
}

build() {
  if [[ -n ${BENCH_BIN:-} ]]; then log "using prebuilt binaries in $BIN"; return; fi
  log "building release binaries"
  (cd "$ROOT" && run cargo build --release -q -p metacenter -p cluster-tests "${FEATURES[@]}")
}

start_metacenter() {
  local i args
  check_ports $((MC_API + 1)) $((MC_API + 2)) $((MC_API + 3)) \
    $((MC_PEER + 1)) $((MC_PEER + 2)) $((MC_PEER + 3))
  for i in 1 2 3; do
    args=(run --id "$i" --listen "127.0.0.1:$((MC_API + i))"
      --peer-listen "127.0.0.1:$((MC_PEER + i))" --data-dir "$WORK/mc$i" --set log.level=warn)
    if [[ $i == 1 ]]; then args+=(--bootstrap); else args+=(--join "127.0.0.1:$((MC_API + 1))"); fi
    "$BIN/metacenter" "${args[@]}" >"$WORK/mc$i.log" 2>&1 &
    PIDS+=($!)
  done
  run "$BIN/loadgen" wait --system metacenter --targets "$MC_TARGETS" --voters 3 --timeout 90s
}

start_etcd() {
  local i cluster=""
  check_ports $((ETCD_CLIENT + 1)) $((ETCD_CLIENT + 2)) $((ETCD_CLIENT + 3)) \
    $((ETCD_PEER + 1)) $((ETCD_PEER + 2)) $((ETCD_PEER + 3))
  for i in 1 2 3; do cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ETCD_PEER + i))"; done
  for i in 1 2 3; do
    etcd --name "m$i" --data-dir "$WORK/m$i.etcd" \
      --listen-client-urls "http://127.0.0.1:$((ETCD_CLIENT + i))" \
      --advertise-client-urls "http://127.0.0.1:$((ETCD_CLIENT + i))" \
      --listen-peer-urls "http://127.0.0.1:$((ETCD_PEER + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PEER + i))" \
      --initial-cluster "$cluster" --initial-cluster-token bench --initial-cluster-state new \
      --logger=zap --log-level=warn >"$WORK/m$i.log" 2>&1 &
    PIDS+=($!)
  done
  run "$BIN/loadgen" wait --system "$ETCD_SYSTEM" --targets "$ETCD_TARGETS" --timeout 90s
}

stop_all() {
  if ((${#PIDS[@]})); then stop_pids "${PIDS[@]}"; fi
  PIDS=()
}

# The kv rows for one system: 1/64/256 clients to the leader, 64 spread over all nodes.
run_kv() {
  local system=$1 targets=$2 c
  for c in $CLIENTS; do
    run "$BIN/loadgen" kv --system "$system" --targets "$targets" --clients "$c" \
      --duration "$DURATION" --warmup "$WARMUP" --to-leader --json >>"$RESULTS"
  done
  run "$BIN/loadgen" kv --system "$system" --targets "$targets" --clients 64 \
    --duration "$DURATION" --warmup "$WARMUP" --json >>"$RESULTS"
}

main() {
  ensure_tools
  build
  log "work dir $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"
  log "metacenter: 3 nodes on $MC_TARGETS"
  start_metacenter
  run_kv metacenter "$MC_TARGETS"
  stop_all
  log "etcd $(etcd --version | awk 'NR==1 {print $3}'): 3 members on $ETCD_TARGETS"
  start_etcd
  run_kv "$ETCD_SYSTEM" "$ETCD_TARGETS"
  stop_all
  echo
  echo "workload $WORKLOAD, $DURATION per row after $WARMUP warm-up; $(nproc) cores;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
  "$BIN/loadgen" table "$RESULTS"
  cp "$RESULTS" "$TARGET_DIR/bench-results.jsonl"
}

main
