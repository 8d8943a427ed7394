#!/usr/bin/env bash
# bench.sh — benchmarks of metacenter against its peers, same machine, same run.
#
#   scripts/bench.sh [kv|heartbeat|load|points|ws|failover|search|storage|one-node|backup|all] [--quick]
#
# Builds the release binaries, starts a three-node metacenter cluster on loopback (data in a
# temporary directory under target/), runs the chosen workloads against it, stops it, runs
# the peer of each workload, and prints one table with the throughput ratio metacenter/peer:
#   kv         `loadgen kv`, 1/64/256 clients to the leader and 64 spread over all nodes;
#              peer: a three-member etcd (default fsync durability).
#   heartbeat  `loadgen heartbeat`: 10,000 services registered, 64 clients heartbeating;
#              then the same while one more client reads the whole list (`GET /services`
#              on node 1) 5 times a second (`--list-every 200ms`); then heartbeats of
#              services nobody registered (`--unregistered`, each answered 404 by apply:
#              the whole path, raft round included, without the write). No peer.
#   load       `loadgen load`: 64 clients of add/first-token/done updates over 100 engines
#              in 4 clusters, then GET of a cluster of 1,000 engines (1 and 8 clients);
#              then the same updates 10 and 100 per `POST /v1/load/batch` (updates/s),
#              and the HTTP floor: GET of a one-engine cluster, 64 clients;
#              peer (ceiling): a single redis-server, `redis-benchmark -t incr -c 64`.
#   points     `loadgen points`: 8 writers, batches of 1,000 points, then history of
#              10,000 points, latest and stats (1 and 8 clients); peer: a single VictoriaMetrics
#              (`/api/v1/import`, same writers and batches).
#   ws         `loadgen ws`: 5,000 WebSocket subscribers (BENCH_WS_SUBSCRIBERS) on node 1, one
#              per run, while 10,000 points/s are ingested through all nodes in batches
#              of 1,000; delivery latency per point, send to push. No peer.
#   failover   `loadgen failover` on a fresh three-node cluster: 64 writers put unique keys
#              over all nodes (a failed put is retried on the next node); after the warm-up
#              the leader gets kill -9; writing goes on for BENCH_DURATION after the first
#              write acknowledged after the kill; then every acknowledged key is read back
#              from the survivors (linearizable); then the same with the leader paused
#              (SIGSTOP; workload `failover-pause`). Reports the time from the fault to that
#              first acknowledgement, the longest gap without any, and lost writes;
#              BENCH_FAILOVER_ROUNDS rounds (5; 1 with --quick), each on fresh clusters,
#              and their medians. Peer: the same against a fresh three-member etcd.
#   search     metric metadata search: VictoriaMetrics (the sync source) holds 100,000
#              series of one tenant, then 1,000 tenants of 100; each tenant is full-synced
#              through the 3-node cluster (time reported), then 1 and 8 clients search
#              (two-word queries, random tenants); the nodes' RSS is logged.
#   storage    bytes per point: the same points (`loadgen points`, 8 writers, batches of
#              1,000, BENCH_STORAGE_MPOINTS million, default "20"; "2" with --quick) of
#              each shape in BENCH_STORAGE_SHAPES ("flat curves": one f64 metric, or five
#              float32 training metrics a step with jittered times) written to one
#              metacenter node and to one VictoriaMetrics; then history, latest and stats
#              on metacenter, its /status (snapshots built and written, log bytes), and
#              the time it takes to answer /ready after kill -9 and a restart. After each
#              system stops, its data directory is measured: metacenter's sled `db/` alone
#              and all-in (db, raft log, snapshots), against VictoriaMetrics' whole data
#              directory; printed after the table.
#   one-node   the heartbeat, heartbeat-unregistered and load-update rows again, against a
#              cluster of one node (no replication, no forwarding; labelled `-one-node`):
#              a bound that a three-node cluster on the same cores cannot pass. No peer.
#   backup     a three-node cluster filled with metadata (`loadgen kv`, values of 4 KiB,
#              BENCH_BACKUP_KEYS puts over as many keys, default 400,000: about 2 GB with
#              the points) and points (`loadgen points`, BENCH_BACKUP_MPOINTS million,
#              default 20); `metacenter backup` of node 1 alone (MB/s), then the p99 of
#              puts to the leader (64 clients) without a backup and while backups run back
#              to back, in the same run; `metacenter restore` of the file (s/GB). Peer: a
#              three-member etcd filled with the same puts, `etcdctl snapshot save` (MB/s)
#              and `etcdutl snapshot restore` (s/GB). Printed after the table.
#   all        all of the above.
# Peers are installed with apt-get when missing. Everything it started is stopped on exit.
# `--quick` runs ~2 s per row (CI smoke mode); no timing is ever asserted, but the script
# fails when a workload fails, and (after printing the table) when a failover run lost or
# changed an acknowledged write.
#
# Environment: BENCH_PORT_BASE (default 18400), BENCH_REDIS_PORT (6390), BENCH_VM_PORT
# (8428), BENCH_DURATION, BENCH_WARMUP, BENCH_CLIENTS ("1 64 256", kv), BENCH_SERVICES
# (10000), BENCH_FAILOVER_ROUNDS, BENCH_MC_SET ("key=value ..." passed to every metacenter
# node as --set key=value), BENCH_KEEP=1 keeps the data directory and logs, BENCH_BIN=DIR
# uses prebuilt `metacenter` and `loadgen` from DIR instead of building.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORKLOAD=kv
QUICK=0
for arg in "$@"; do
  case "$arg" in
    kv | heartbeat | load | points | ws | failover | search | storage | one-node | backup | all) WORKLOAD=$arg ;;
    --quick) QUICK=1 ;;
    -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$arg' (usage: bench.sh [kv|heartbeat|load|points|ws|failover|search|storage|one-node|backup|all] [--quick])" >&2; exit 2 ;;
  esac
done

if [[ $QUICK == 1 ]]; then
  STORAGE_MPOINTS=${BENCH_STORAGE_MPOINTS:-2}; STORAGE_SHAPES=${BENCH_STORAGE_SHAPES:-flat curves}
  DURATION=${BENCH_DURATION:-2s}; WARMUP=${BENCH_WARMUP:-500ms}
  SERVICES=${BENCH_SERVICES:-1000}; REDIS_N=20000; HISTORY=1000
  WS_SUBSCRIBERS=${BENCH_WS_SUBSCRIBERS:-1000}
  ROUNDS=${BENCH_FAILOVER_ROUNDS:-1}
  BACKUP_KEYS=${BENCH_BACKUP_KEYS:-20000}; BACKUP_MPOINTS=${BENCH_BACKUP_MPOINTS:-1}
else
  STORAGE_MPOINTS=${BENCH_STORAGE_MPOINTS:-20}; STORAGE_SHAPES=${BENCH_STORAGE_SHAPES:-flat curves}
  DURATION=${BENCH_DURATION:-10s}; WARMUP=${BENCH_WARMUP:-2s}
  SERVICES=${BENCH_SERVICES:-10000}; REDIS_N=200000; HISTORY=10000
  WS_SUBSCRIBERS=${BENCH_WS_SUBSCRIBERS:-5000}
  ROUNDS=${BENCH_FAILOVER_ROUNDS:-5}
  BACKUP_KEYS=${BENCH_BACKUP_KEYS:-400000}; BACKUP_MPOINTS=${BENCH_BACKUP_MPOINTS:-20}
fi
REDIS_PORT=${BENCH_REDIS_PORT:-6390}
VM_PORT=${BENCH_VM_PORT:-8428}
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
GEN=0      # clusters started so far: each gets fresh data directories
# The cluster secret of every metacenter cluster this run starts (through the
# environment: the command line is readable by every local process).
MC_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
LOST=()    # systems whose failover run lost or changed acknowledged writes

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

# Whether workload $1 is selected.
wants() { [[ $WORKLOAD == all || $WORKLOAD == "$1" ]]; }
# Whether any of the workloads that share one metacenter cluster is selected.
wants_shared() { wants kv || wants heartbeat || wants load || wants points || wants ws; }

# gRPC etcd client when protoc is (or can be made) available, else etcd's JSON gateway.
ETCD_SYSTEM=etcd
FEATURES=(--features cluster-tests/etcd-client)
ensure_tools() {
  if wants load; then
    if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
      apt_install redis-server
    fi
  fi
  if wants points || wants search || wants storage; then command -v victoria-metrics >/dev/null || apt_install victoria-metrics; fi
  if ! wants kv && ! wants failover && ! wants backup; then FEATURES=(); return; fi
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

# Starts a metacenter cluster of $1 nodes (default 3) on the first of MC_TARGETS' ports.
start_metacenter() {
  local i args kv n=${1:-3} targets
  GEN=$((GEN + 1))
  for ((i = 1; i <= n; i++)); do check_ports $((MC_API + i)) $((MC_PEER + i)); done
  targets=$(echo "$MC_TARGETS" | cut -d, -f1-"$n")
  for ((i = 1; i <= n; i++)); do
    args=(run --id "$i" --listen "127.0.0.1:$((MC_API + i))"
      --peer-listen "127.0.0.1:$((MC_PEER + i))" --data-dir "$WORK/mc$i.$GEN" --set log.level=warn)
    if [[ $i == 1 ]]; then args+=(--bootstrap); else args+=(--join "127.0.0.1:$((MC_API + 1))"); fi
    for kv in ${BENCH_MC_SET:-}; do args+=(--set "$kv"); done
    METACENTER_CLUSTER_SECRET="$MC_SECRET" "$BIN/metacenter" "${args[@]}" >"$WORK/mc$i.$GEN.log" 2>&1 &
    PIDS+=($!)
  done
  run "$BIN/loadgen" wait --system metacenter --targets "$targets" --voters "$n" --timeout 90s
}

start_etcd() {
  local i cluster=""
  GEN=$((GEN + 1))
  check_ports $((ETCD_CLIENT + 1)) $((ETCD_CLIENT + 2)) $((ETCD_CLIENT + 3)) \
    $((ETCD_PEER + 1)) $((ETCD_PEER + 2)) $((ETCD_PEER + 3))
  for i in 1 2 3; do cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ETCD_PEER + i))"; done
  for i in 1 2 3; do
    etcd --name "m$i" --data-dir "$WORK/m$i.$GEN.etcd" \
      --listen-client-urls "http://127.0.0.1:$((ETCD_CLIENT + i))" \
      --advertise-client-urls "http://127.0.0.1:$((ETCD_CLIENT + i))" \
      --listen-peer-urls "http://127.0.0.1:$((ETCD_PEER + i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PEER + i))" \
      --initial-cluster "$cluster" --initial-cluster-token bench --initial-cluster-state new \
      --logger=zap --log-level=warn >"$WORK/m$i.$GEN.log" 2>&1 &
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

# Options every non-kv loadgen run shares.
timing() { echo --duration "$DURATION" --warmup "$WARMUP" --json; }

run_heartbeat() {
  # shellcheck disable=SC2046
  run "$BIN/loadgen" heartbeat --targets "$MC_TARGETS" --clients 64 --services "$SERVICES" \
    $(timing) >>"$RESULTS"
  # shellcheck disable=SC2046
  run "$BIN/loadgen" heartbeat --targets "$MC_TARGETS" --clients 64 --services "$SERVICES" \
    --list-every 200ms $(timing) >>"$RESULTS"
  # shellcheck disable=SC2046
  run "$BIN/loadgen" heartbeat --targets "$MC_TARGETS" --clients 64 --services "$SERVICES" \
    --unregistered --prefix bench-none --label heartbeat-unregistered $(timing) >>"$RESULTS"
}

run_load() {
  # shellcheck disable=SC2046
  run "$BIN/loadgen" load --targets "$MC_TARGETS" --clients 64 --engines 100 --clusters 4 \
    --read-engines 1000 --read-clients 1,8 $(timing) >>"$RESULTS"
  local n
  for n in 10 100; do
    # shellcheck disable=SC2046
    run "$BIN/loadgen" load --targets "$MC_TARGETS" --clients 64 --engines 100 --clusters 4 \
      --batch "$n" --read-engines 0 $(timing) >>"$RESULTS"
  done
  # The HTTP floor for the update rows: a local read of a one-engine cluster (no raft, no
  # disk, a few hundred bytes) from as many clients. No update through the same HTTP
  # stack and load generator can go faster on this machine.
  # shellcheck disable=SC2046
  run "$BIN/loadgen" load --targets "$MC_TARGETS" --reads-only --read-engines 1 \
    --read-clients 64 $(timing) >>"$RESULTS"
}

# The one-node rows (see the header), against the cluster start_metacenter 1 started.
run_one_node() {
  local one=${MC_TARGETS%%,*}
  # shellcheck disable=SC2046
  run "$BIN/loadgen" heartbeat --targets "$one" --clients 64 --services "$SERVICES" \
    --label heartbeat-one-node $(timing) >>"$RESULTS"
  # shellcheck disable=SC2046
  run "$BIN/loadgen" heartbeat --targets "$one" --clients 64 --services "$SERVICES" \
    --unregistered --prefix bench-none --label heartbeat-unregistered-one-node \
    $(timing) >>"$RESULTS"
  # shellcheck disable=SC2046
  run "$BIN/loadgen" load --targets "$one" --clients 64 --engines 100 --clusters 4 \
    --read-engines 0 --label load-update-one-node $(timing) >>"$RESULTS"
}

run_points() {
  # shellcheck disable=SC2046
  run "$BIN/loadgen" points --sink metacenter --targets "$MC_TARGETS" --clients 8 \
    --batch 1000 --history "$HISTORY" --read-clients 1,8 $(timing) >>"$RESULTS"
}

run_ws() {
  # shellcheck disable=SC2046
  run "$BIN/loadgen" ws --targets "$MC_TARGETS" --subscribers "$WS_SUBSCRIBERS" --rate 10000 \
    --batch 1000 $(timing) >>"$RESULTS"
}

# Kills (or with $3 = pause, SIGSTOPs) the leader of the running cluster of $1
# (addresses $2) under 64 writers, then stops the cluster. Status 3 from loadgen (acknowledged writes lost) is remembered and
# reported after the table; any other failure ends the run.
run_failover() {
  local system=$1 targets=$2 fault=${3:-kill} rc=0
  # No "Killed" job notice from bash for the leader; stop_pids still stops the rest.
  disown "${PIDS[@]}" 2>/dev/null || true
  # shellcheck disable=SC2046
  run "$BIN/loadgen" failover --system "$system" --targets "$targets" --clients 64 \
    --pids "$(IFS=,; echo "${PIDS[*]}")" --fault "$fault" $(timing) >>"$RESULTS" || rc=$?
  if ((rc == 3)); then
    LOST+=("$system")
  elif ((rc != 0)); then
    exit "$rc"
  fi
  stop_all
}

# Waits until `curl URL` succeeds (30 s).
wait_http() {
  local deadline=$((SECONDS + 30))
  until curl -sf -o /dev/null "$1"; do
    ((SECONDS < deadline)) || { log "$1 did not answer"; exit 1; }
    sleep 0.2
  done
}

# Ceiling of the load updates: INCR on a single redis-server, no consensus, no durability.
run_redis() {
  check_ports "$REDIS_PORT"
  log "$(redis-server --version | awk '{print $1, $3}'): port $REDIS_PORT, INCR x $REDIS_N"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$WORK/redis.log" &
  PIDS+=($!)
  local deadline=$((SECONDS + 30))
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { log "redis did not start"; exit 1; }
    sleep 0.1
  done
  run redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t incr -c 64 -n "$REDIS_N" --csv \
    >"$WORK/redis.csv"
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
  # "p99_latency_ms","max_latency_ms"
  awk -F, -v n="$REDIS_N" 'NR == 2 {
      gsub(/"/, ""); printf "{\"workload\":\"load-update\",\"system\":\"redis-incr\",\"clients\":64," \
        "\"conns\":64,\"to\":\"all\",\"ops\":%d,\"seconds\":%f,\"ops_per_sec\":%s," \
        "\"p50_ms\":%s,\"p99_ms\":%s,\"p999_ms\":0,\"max_ms\":%s,\"errors\":0," \
        "\"error_kinds\":{}}\n", n, n / $2, $2, $5, $7, $8 }' "$WORK/redis.csv" >>"$RESULTS"
  tail -n 1 "$RESULTS" >&2
  stop_all
}

# The same points into a single VictoriaMetrics.
run_victoria() {
  check_ports "$VM_PORT"
  log "VictoriaMetrics $(dpkg-query -W -f '${Version}' victoria-metrics 2>/dev/null): 127.0.0.1:$VM_PORT"
  victoria-metrics -storageDataPath "$WORK/vm" -httpListenAddr "127.0.0.1:$VM_PORT" \
    -loggerLevel ERROR >"$WORK/vm.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$VM_PORT/health"
  # shellcheck disable=SC2046
  run "$BIN/loadgen" points --sink victoria-metrics --targets "127.0.0.1:$VM_PORT" \
    --clients 8 --batch 1000 $(timing) >>"$RESULTS"
  curl -sf -o /dev/null "http://127.0.0.1:$VM_PORT/internal/force_flush" || true
  log "VictoriaMetrics rows ingested: $(curl -sf "http://127.0.0.1:$VM_PORT/metrics" |
    awk '/^vm_rows_inserted_total\{type="vmimport"\}/ {print $2}')"
  stop_all
}

# Bytes of the files under $1 (0 when missing).
bytes_of() {
  local b
  b=$(du -sb "$1" 2>/dev/null | cut -f1)
  echo "${b:-0}"
}

# Restarts node 1 of the running one-node cluster after kill -9; sets RESTART_MS to the
# milliseconds until it answers /ready again.
restart_after_kill() {
  local t0 args=(run --id 1 --listen "127.0.0.1:$((MC_API + 1))"
    --peer-listen "127.0.0.1:$((MC_PEER + 1))" --data-dir "$WORK/mc1.$GEN" --set log.level=warn)
  for kv in ${BENCH_MC_SET:-}; do args+=(--set "$kv"); done
  kill -9 "${PIDS[0]}"
  wait "${PIDS[0]}" 2>/dev/null || true
  PIDS=()
  t0=$(date +%s%N)
  METACENTER_CLUSTER_SECRET="$MC_SECRET" "$BIN/metacenter" "${args[@]}" >>"$WORK/mc1.$GEN.log" 2>&1 &
  PIDS+=($!)
  local deadline=$((SECONDS + 600))
  until curl -sf -o /dev/null "http://127.0.0.1:$((MC_API + 1))/ready"; do
    ((SECONDS < deadline)) || { log "node 1 did not come back after kill -9"; exit 1; }
    sleep 0.05
  done
  RESTART_MS=$((($(date +%s%N) - t0) / 1000000))
}

# One storage round of $1 million points of shape $2 (flat or curves): metacenter (one
# node), then VictoriaMetrics.
storage_round() {
  local m=$1 shape=$2 label="storage-${2}-${1}M" batches=$(($1 * 1000)) dir vm n db all vmb
  local write=(--clients 8 --batch 1000 --shape "$shape" --ops "$batches" --warmup 0s --json --timeout 60s)
  local status
  start_metacenter 1
  dir="$WORK/mc1.$GEN"
  run "$BIN/loadgen" points --sink metacenter --targets "${MC_TARGETS%%,*}" "${write[@]}" \
    --history 10000 --read-clients 1 --label "$label" >>"$RESULTS"
  status=$(curl -sf "http://${MC_TARGETS%%,*}/status")
  restart_after_kill
  stop_all
  n=$((batches * 1000))
  db=$(bytes_of "$dir/db")
  all=$(($(bytes_of "$dir/db") + $(bytes_of "$dir/raft-log") + $(bytes_of "$dir/snapshots")))
  check_ports "$VM_PORT"
  vm="$WORK/vm-storage.$shape.$m"
  victoria-metrics -storageDataPath "$vm" -httpListenAddr "127.0.0.1:$VM_PORT" \
    -loggerLevel ERROR >"$WORK/vm-storage.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$VM_PORT/health"
  run "$BIN/loadgen" points --sink victoria-metrics --targets "127.0.0.1:$VM_PORT" \
    "${write[@]}" --label "$label" >>"$RESULTS"
  curl -sf -o /dev/null "http://127.0.0.1:$VM_PORT/internal/force_flush" || true
  stop_all
  vmb=$(bytes_of "$vm")
  echo "$status" | python3 -c '
import json, sys
n, db, all_, vm, m, shape, restart = sys.argv[1:]
n, db, all_, vm = int(n), int(db), int(all_), int(vm)
s = json.load(sys.stdin)
snap, log, chunks = s["snapshots"], s["log"]["appendedBytes"], s["points"]["chunkBytes"]
built, written, last, last_ms = snap["built"], snap["totalBytes"], snap["lastBytes"], snap["lastBuildMs"]
print(f"storage {shape} {m}M points: metacenter sled db {db / n:.2f} B/point, all-in (db + raft log + snapshots) "
      f"{all_ / n:.2f} B/point; VictoriaMetrics {vm / n:.2f} B/point; ratio db {db / vm:.2f}x, all-in {all_ / vm:.2f}x; "
      f"chunks {chunks / n:.2f} B/point; snapshots built {built}, written "
      f"{written / 2**20:.0f} MiB = {written / max(log, 1):.2f}x the log bytes appended "
      f"({log / n:.1f} B/point), last {last / 2**20:.0f} MiB in {last_ms} ms; "
      f"restart after kill -9 {restart} ms")
' "$n" "$db" "$all" "$vmb" "$m" "$shape" "$RESTART_MS" >>"$WORK/storage.txt"
  tail -n 1 "$WORK/storage.txt" >&2
}

run_storage() {
  local m shape
  for m in $STORAGE_MPOINTS; do
    for shape in $STORAGE_SHAPES; do storage_round "$m" "$shape"; done
  done
}

# Metric metadata search: VictoriaMetrics as the sync source of a 3-node metacenter.
# Round 1: SEARCH_SERIES series in one tenant; round 2: SEARCH_TENANTS tenants of 100.
search_round() {
  local series=$1 tenants=$2 sources="" i t pid
  check_ports "$VM_PORT"
  # /api/v1/series refuses more than 30,000 series by default (-search.maxSeries).
  victoria-metrics -storageDataPath "$WORK/vm-search.$GEN" -httpListenAddr "127.0.0.1:$VM_PORT" \
    -search.maxSeries=10000000 -loggerLevel ERROR >"$WORK/vm-search.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$VM_PORT/health"
  for ((i = 0; i < tenants; i++)); do
    printf -v t "t%04d" "$i"
    sources+="${sources:+,}$t=http://127.0.0.1:$VM_PORT#{tenant=\"$t\"}"
  done
  METACENTER_SYNC_SOURCES=$sources METACENTER_SYNC_ENABLED=false start_metacenter
  # shellcheck disable=SC2046
  run "$BIN/loadgen" search --targets "$MC_TARGETS" --vm "127.0.0.1:$VM_PORT" \
    --series "$series" --tenants "$tenants" --search-clients 1,8 $(timing) --timeout 600s >>"$RESULTS"
  for pid in "${PIDS[@]}"; do
    if grep -q metacenter "/proc/$pid/cmdline" 2>/dev/null; then
      log "search ($tenants tenants): metacenter pid $pid RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
    fi
  done
  stop_all
}

run_search() {
  if ((QUICK)); then
    search_round 2000 1
    search_round 2000 20
  else
    search_round "${SEARCH_SERIES:-100000}" 1
    search_round $((${SEARCH_TENANTS:-1000} * 100)) "${SEARCH_TENANTS:-1000}"
  fi
}

# The p99 (ms) of a `loadgen kv` JSON report in file $1.
p99_of() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["p99_ms"])' "$1"; }

# Seconds since $1 (from `date +%s%N`), with milliseconds.
since() { python3 -c 'import sys, time; print(f"{(time.time_ns() - int(sys.argv[1])) / 1e9:.3f}")' "$1"; }

# $1 / $2 * $3, two decimals.
ratio() { python3 -c 'import sys; a, b, c = map(float, sys.argv[1:]); print(f"{a / b * c:.2f}")' "$1" "$2" "$3"; }

# Puts to the leader of the running system $1 (targets $2) for DURATION; JSON to $3.
backup_puts() {
  # shellcheck disable=SC2046
  run "$BIN/loadgen" kv --system "$1" --targets "$2" --clients 64 --to-leader \
    $(timing) >"$3"
}

# The metacenter half of the backup workload; leaves its figures in $WORK/backup.txt.
backup_metacenter() {
  local node=${MC_TARGETS%%,*} file=$WORK/state.mcbak t0 secs bytes loop idle busy rs
  start_metacenter
  run "$BIN/loadgen" kv --targets "$MC_TARGETS" --clients 64 --value-size 4096 \
    --key-space "$BACKUP_KEYS" --ops "$BACKUP_KEYS" --warmup 0s --timeout 60s --json >/dev/null
  run "$BIN/loadgen" points --sink metacenter --targets "$MC_TARGETS" --clients 8 --batch 1000 \
    --ops $((BACKUP_MPOINTS * 1000)) --warmup 0s --timeout 60s --json >/dev/null
  t0=$(date +%s%N)
  run "$BIN/metacenter" backup --node "$node" --out "$file" >&2
  secs=$(since "$t0"); bytes=$(bytes_of "$file")
  backup_puts metacenter "$MC_TARGETS" "$WORK/backup-idle.json"
  (while :; do "$BIN/metacenter" backup --node "$node" --out "$WORK/again.mcbak" >/dev/null 2>&1 || true; done) &
  loop=$!
  backup_puts metacenter "$MC_TARGETS" "$WORK/backup-busy.json"
  kill "$loop"; wait "$loop" 2>/dev/null || true
  stop_all
  t0=$(date +%s%N)
  run "$BIN/metacenter" restore --from "$file" --data-dir "$WORK/restored" --id 1 \
    --members 1=127.0.0.1:1@127.0.0.1:2 >&2
  rs=$(since "$t0")
  idle=$(p99_of "$WORK/backup-idle.json"); busy=$(p99_of "$WORK/backup-busy.json")
  echo "backup metacenter: $((bytes / 1048576)) MiB in ${secs}s =" \
    "$(ratio "$bytes" "$secs" 0.00000095367) MB/s; put p99 ${idle} ms idle," \
    "${busy} ms during backups; restore ${rs}s = $(ratio "$rs" "$bytes" 1073741824) s/GB" \
    >>"$WORK/backup.txt"
}

# The etcd half: the same puts, `etcdctl snapshot save`, `etcdutl snapshot restore`.
backup_etcd() {
  local file=$WORK/etcd.snap t0 secs bytes rs restore=(etcdutl snapshot restore)
  command -v etcdutl >/dev/null || restore=(etcdctl snapshot restore)
  start_etcd
  run "$BIN/loadgen" kv --system "$ETCD_SYSTEM" --targets "$ETCD_TARGETS" --clients 64 \
    --value-size 4096 --key-space "$BACKUP_KEYS" --ops "$BACKUP_KEYS" --warmup 0s \
    --timeout 60s --json >/dev/null
  t0=$(date +%s%N)
  run etcdctl --endpoints "http://127.0.0.1:$((ETCD_CLIENT + 1))" snapshot save "$file" >/dev/null
  secs=$(since "$t0"); bytes=$(bytes_of "$file")
  stop_all
  t0=$(date +%s%N)
  run "${restore[@]}" "$file" --data-dir "$WORK/etcd-restored" >/dev/null 2>&1
  rs=$(since "$t0")
  echo "backup etcd: $((bytes / 1048576)) MiB in ${secs}s =" \
    "$(ratio "$bytes" "$secs" 0.00000095367) MB/s; restore ${rs}s =" \
    "$(ratio "$rs" "$bytes" 1073741824) s/GB" >>"$WORK/backup.txt"
}

main() {
  ensure_tools
  build
  log "work dir $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"
  if wants_shared; then
    log "metacenter: 3 nodes on $MC_TARGETS"
    start_metacenter
    if wants kv; then run_kv metacenter "$MC_TARGETS"; fi
    if wants heartbeat; then run_heartbeat; fi
    if wants load; then run_load; fi
    if wants points; then run_points; fi
    if wants ws; then run_ws; fi
    stop_all
  fi
  if wants one-node; then
    log "metacenter: 1 node on ${MC_TARGETS%%,*}"
    start_metacenter 1
    run_one_node
    stop_all
  fi
  if wants search; then run_search; fi
  if wants storage; then run_storage; fi
  if wants backup; then
    log "backup: metacenter, then etcd"
    backup_metacenter
    backup_etcd
  fi
  if wants failover; then
    for ((round = 1; round <= ROUNDS; round++)); do
      for fault in kill pause; do
        log "failover ($fault) $round/$ROUNDS: metacenter, a fresh cluster on $MC_TARGETS"
        start_metacenter
        run_failover metacenter "$MC_TARGETS" "$fault"
      done
    done
  fi
  if wants kv || wants failover; then
    log "etcd $(etcd --version | awk 'NR==1 {print $3}'): 3 members on $ETCD_TARGETS"
  fi
  if wants kv; then
    start_etcd
    run_kv "$ETCD_SYSTEM" "$ETCD_TARGETS"
    stop_all
  fi
  if wants failover; then
    for ((round = 1; round <= ROUNDS; round++)); do
      for fault in kill pause; do
        log "failover ($fault) $round/$ROUNDS: etcd, a fresh cluster on $ETCD_TARGETS"
        start_etcd
        run_failover "$ETCD_SYSTEM" "$ETCD_TARGETS" "$fault"
      done
    done
  fi
  if wants load; then run_redis; fi
  if wants points; then run_victoria; fi
  echo
  echo "workload $WORKLOAD, $DURATION per row after $WARMUP warm-up; $(nproc) cores;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
  if wants failover; then
    echo "failover: $ROUNDS round(s) per system, each on fresh clusters; writes for $WARMUP" \
      "before the kill and $DURATION after the first write acknowledged after it"
  fi
  "$BIN/loadgen" table "$RESULTS"
  if [[ -s "$WORK/storage.txt" ]]; then cat "$WORK/storage.txt"; fi
  if [[ -s "$WORK/backup.txt" ]]; then cat "$WORK/backup.txt"; fi
  cp "$RESULTS" "$TARGET_DIR/bench-results.jsonl"
  if ((${#LOST[@]})); then
    log "!!! FAILOVER LOST OR CHANGED ACKNOWLEDGED WRITES: ${LOST[*]} (see the table) !!!"
    exit 1
  fi
}

main
