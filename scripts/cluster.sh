#!/usr/bin/env bash
# Runs a three-node metacenter cluster on this machine.
#
#   scripts/cluster.sh start          start nodes 1-3; returns once a leader is elected
#                                     and all three are voters
#   scripts/cluster.sh stop           stop every node (SIGTERM, then SIGKILL after a deadline)
#   scripts/cluster.sh status         role, term, commit and applied index of each node
#   scripts/cluster.sh kill N         kill -9 node N (N may be `leader`)
#   scripts/cluster.sh restart N      start node N again with the same arguments
#
# Node N (1-3) serves its API on 127.0.0.1:808N and talks to its peers on 127.0.0.1:809N.
# Node 1 bootstraps the cluster on its first start; nodes 2 and 3 join through node 1.
# Data directories, logs (nodeN.log) and pid files (nodeN.pid) live under
# ${CLUSTER_DIR:-./cluster-data}. The binary is $METACENTER_BIN if set, else
# target/release/metacenter, rebuilt with cargo when the sources are newer.
# METACENTER_* variables (see docs/configuration.md) reach every node.
# The cluster secret is $METACENTER_CLUSTER_SECRET, else a random one kept in
# $CLUSTER_DIR/secret.
# START_TIMEOUT (seconds, default 60) bounds how long start and restart wait.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODES=(1 2 3)
START_TIMEOUT="${START_TIMEOUT:-60}"
STOP_TIMEOUT="${STOP_TIMEOUT:-20}"

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

command -v curl >/dev/null || die "curl is required (apt-get install -y curl)"

CLUSTER_DIR="$(realpath -m "${CLUSTER_DIR:-./cluster-data}")"

api_addr() { echo "127.0.0.1:$((8080 + $1))"; }
peer_addr() { echo "127.0.0.1:$((8090 + $1))"; }
pid_file() { echo "$CLUSTER_DIR/node$1.pid"; }
log_file() { echo "$CLUSTER_DIR/node$1.log"; }

check_node() {
    [[ "${1:-}" =~ ^[123]$ ]] || die "node must be 1, 2 or 3 (got '${1:-}')"
}

# The pid of node N if it is running, else nothing.
node_pid() {
    local f pid
    f="$(pid_file "$1")"
    [[ -f "$f" ]] || return 0
    pid="$(<"$f")"
    # A pid file can outlive its process and the pid can be reused: check the command.
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--id $1 "; then
        echo "$pid"
    fi
}

# GET http://<api of node N><path>; prints the body, fails when unreachable or not 2xx.
http_get() {
    curl -sf --max-time 2 "http://$(api_addr "$1")$2"
}

# The metacenter binary, built when missing or older than the sources.
binary() {
    if [[ -n "${METACENTER_BIN:-}" ]]; then
        [[ -x "$METACENTER_BIN" ]] || die "METACENTER_BIN=$METACENTER_BIN is not executable"
        echo "$METACENTER_BIN"
        return
    fi
    local bin="$ROOT/target/release/metacenter" newer=""
    if [[ -x "$bin" ]]; then
        newer="$(find "$ROOT/src" "$ROOT/storage" "$ROOT/raft" \
            "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" \
            \( -name '*.rs' -o -name 'Cargo.toml' -o -name 'Cargo.lock' \) \
            -newer "$bin" -print -quit)"
    fi
    if [[ ! -x "$bin" || -n "$newer" ]]; then
        echo "building $bin ..." >&2
        (cd "$ROOT" && cargo build --release --bin metacenter) >&2
    fi
    echo "$bin"
}

# The arguments node N is started with, one per line.
node_args() {
    local n="$1"
    printf '%s\n' run --id "$n" --listen "$(api_addr "$n")" \
        --peer-listen "$(peer_addr "$n")" --data-dir "$CLUSTER_DIR/node$n"
    if [[ "$n" == 1 ]]; then
        printf '%s\n' --bootstrap
    else
        printf '%s\n' --join "$(api_addr 1)"
    fi
}

# The cluster secret: $METACENTER_CLUSTER_SECRET if set, else one made on the first start
# and kept in $CLUSTER_DIR/secret (mode 600), so that restarts use the same one. It
# reaches the nodes through the environment, never the command line (which every local
# process can read).
cluster_secret() {
    local f="$CLUSTER_DIR/secret"
    if [[ -n "${METACENTER_CLUSTER_SECRET:-}" ]]; then
        echo "$METACENTER_CLUSTER_SECRET"
        return
    fi
    if [[ ! -s "$f" ]]; then
        mkdir -p "$CLUSTER_DIR"
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f")
    fi
    cat "$f"
}

start_node() {
    local n="$1" bin="$2" pid args=() secret
    pid="$(node_pid "$n")"
    if [[ -n "$pid" ]]; then
        echo "node $n already running (pid $pid)"
        return
    fi
    if http_get "$n" /health >/dev/null 2>&1; then
        die "something else already answers on $(api_addr "$n")"
    fi
    mapfile -t args < <(node_args "$n")
    mkdir -p "$CLUSTER_DIR/node$n"
    secret="$(cluster_secret)"
    echo "=== $(date -u +%FT%TZ) start: $bin ${args[*]}" >>"$(log_file "$n")"
    # A session of its own, so that the node outlives this script and its terminal.
    METACENTER_CLUSTER_SECRET="$secret" setsid "$bin" "${args[@]}" >>"$(log_file "$n")" 2>&1 </dev/null &
    echo $! >"$(pid_file "$n")"
    echo "node $n started (pid $!, api $(api_addr "$n"), log $(log_file "$n"))"
}

# Prints the last lines of node N's log.
log_tail() {
    echo "--- last lines of $(log_file "$1") ---" >&2
    tail -n 40 "$(log_file "$1")" >&2 2>/dev/null || true
}

# The ids of the voters in a /cluster/members body, space separated and sorted.
voters_of() {
    sed -n 's/.*"voters":\[\([^]]*\)\].*/\1/p' <<<"$1" |
        grep -o '"id":[0-9]*' | cut -d: -f2 | sort -n | tr '\n' ' ' | sed 's/ $//'
}

# Why the cluster is not up yet (nothing when it is): every node ready, a leader,
# voters 1 2 3 and no learners.
not_up_reason() {
    local n members
    for n in "${NODES[@]}"; do
        [[ -n "$(node_pid "$n")" ]] || { echo "node $n is not running"; return; }
        http_get "$n" /ready >/dev/null 2>&1 || { echo "node $n is not ready"; return; }
    done
    members="$(http_get 1 /cluster/members 2>/dev/null)" ||
        { echo "node 1 does not answer /cluster/members"; return; }
    if ! grep -q '"leader":[0-9]' <<<"$members"; then
        echo "no leader elected"
    elif [[ "$(voters_of "$members")" != "1 2 3" ]]; then
        echo "voters are [$(voters_of "$members")], not [1 2 3]"
    elif ! grep -q '"learners":\[\]' <<<"$members"; then
        echo "learners still catching up: $members"
    fi
}

# The node a reason names, if it names one.
failing_node() {
    sed -n 's/^node \([123]\) .*/\1/p' <<<"$1"
}

wait_up() {
    local deadline=$((SECONDS + START_TIMEOUT)) reason n
    while true; do
        reason="$(not_up_reason)"
        [[ -z "$reason" ]] && return 0
        if ((SECONDS >= deadline)); then
            echo "cluster.sh: cluster not up after ${START_TIMEOUT}s: $reason" >&2
            n="$(failing_node "$reason")"
            if [[ -n "$n" ]]; then
                log_tail "$n"
            else
                for n in "${NODES[@]}"; do log_tail "$n"; done
            fi
            return 1
        fi
        # A node that exited will not come up: say so at once.
        for n in "${NODES[@]}"; do
            if [[ -f "$(pid_file "$n")" && -z "$(node_pid "$n")" ]]; then
                echo "cluster.sh: node $n exited during start" >&2
                log_tail "$n"
                rm -f "$(pid_file "$n")"
                return 1
            fi
        done
        sleep 0.2
    done
}

stop_node() {
    local n="$1" pid deadline
    pid="$(node_pid "$n")"
    if [[ -z "$pid" ]]; then
        rm -f "$(pid_file "$n")"
        return
    fi
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "node $n did not stop within ${STOP_TIMEOUT}s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$n")"
    echo "node $n stopped"
}

kill_node() {
    local n="$1" pid deadline
    pid="$(node_pid "$n")"
    [[ -n "$pid" ]] || die "node $n is not running"
    kill -KILL "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.05
    done
    rm -f "$(pid_file "$n")"
    echo "node $n killed (kill -9 $pid)"
}

# The id of the current leader, asked of the running nodes.
leader_id() {
    local n id
    for n in "${NODES[@]}"; do
        [[ -n "$(node_pid "$n")" ]] || continue
        id="$(http_get "$n" /leader 2>/dev/null | sed -n 's/.*"id":"\{0,1\}\([0-9]*\).*/\1/p')" || true
        if [[ -n "$id" ]]; then
            echo "$id"
            return
        fi
    done
    die "no running node knows a leader"
}

# A number field of node N's /status ("commitIndex", "appliedIndex").
status_index() {
    http_get "$1" /status 2>/dev/null | grep -o "\"$2\":[0-9]*" | head -1 | cut -d: -f2
}

# Waits until node N has applied everything the leader had committed when asked
# (ready alone may mean only that it applied what it has heard of so far).
wait_caught_up() {
    local n="$1" deadline=$((SECONDS + START_TIMEOUT)) target applied
    target="$(status_index "$(leader_id)" commitIndex)"
    while true; do
        applied="$(status_index "$n" appliedIndex)"
        [[ -n "$target" && -n "$applied" ]] && ((applied >= target)) && return 0
        if ((SECONDS >= deadline)); then
            log_tail "$n"
            die "node $n applied ${applied:-?} of ${target:-?} after ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

# Waits until node N is ready and counted among the voters.
wait_node() {
    local n="$1" deadline=$((SECONDS + START_TIMEOUT)) members
    while true; do
        [[ -n "$(node_pid "$n")" ]] || { log_tail "$n"; die "node $n exited"; }
        if http_get "$n" /ready >/dev/null 2>&1 &&
            members="$(http_get "$n" /cluster/members 2>/dev/null)" &&
            [[ " $(voters_of "$members") " == *" $n "* ]]; then
            return 0
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$n"
            die "node $n not ready after ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

number() {
    sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p" <<<"$2"
}

status() {
    local n pid body role
    printf '%-5s %-8s %-22s %-10s %-6s %-8s %-8s\n' node pid api role term commit applied
    for n in "${NODES[@]}"; do
        pid="$(node_pid "$n")"
        if [[ -z "$pid" ]]; then
            printf '%-5s %-8s %-22s %s\n' "$n" - "$(api_addr "$n")" stopped
            continue
        fi
        if ! body="$(http_get "$n" /status 2>/dev/null)"; then
            printf '%-5s %-8s %-22s %s\n' "$n" "$pid" "$(api_addr "$n")" "not answering"
            continue
        fi
        role="$(sed -n 's/.*"role":"\([a-z]*\)".*/\1/p' <<<"$body")"
        printf '%-5s %-8s %-22s %-10s %-6s %-8s %-8s\n' "$n" "$pid" "$(api_addr "$n")" \
            "$role" "$(number term "$body")" "$(number commitIndex "$body")" \
            "$(number appliedIndex "$body")"
    done
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

main() {
    local cmd="${1:-}" n bin
    case "$cmd" in
    start)
        bin="$(binary)"
        for n in "${NODES[@]}"; do start_node "$n" "$bin"; done
        wait_up || exit 1
        echo "cluster up: leader is node $(leader_id), voters 1 2 3"
        ;;
    stop)
        for n in "${NODES[@]}"; do stop_node "$n"; done
        ;;
    status)
        status
        ;;
    kill)
        n="${2:-}"
        [[ "$n" == leader ]] && n="$(leader_id)"
        check_node "$n"
        kill_node "$n"
        ;;
    restart)
        n="${2:-}"
        check_node "$n"
        bin="$(binary)"
        stop_node "$n"
        start_node "$n" "$bin"
        wait_node "$n"
        wait_caught_up "$n"
        echo "node $n is back: ready, a voter, and caught up with the leader's commit index"
        ;;
    *)
        usage
        ;;
    esac
}

main "$@"
