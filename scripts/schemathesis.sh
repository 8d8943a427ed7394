#!/usr/bin/env bash
# Schema testing: starts a dev node (debug build, data in a temporary directory,
# loopback ports the kernel picks), waits for /ready, and runs schemathesis against its /openapi.json:
# generated requests for every documented operation, each answer checked for
#   not_a_server_error            no 5xx (bad input gets a 4xx in the area's envelope)
#   status_code_conformance       the status is documented for the operation
#   content_type_conformance      the Content-Type is the documented one
#   response_schema_conformance   the body matches the documented schema
#   response_headers_conformance  documented headers (ETag, X-Trace-ID...) match
# The node is stopped on exit. Exits non-zero when a check fails.
#
# Needs schemathesis 4.x on PATH (`python3 -m pip install schemathesis`); installs
# nothing itself. Skipped operations: the WebSocket stream (GET /ws/metrics/{run_id},
# documented, not an HTTP exchange schemathesis can check) and POST /cluster/add and
# /cluster/remove (they would change the membership of the node under test: adding
# unreachable members or removing the node itself). Parameters pinned for every run
# are in scripts/schemathesis.toml.
#
# Environment:
#   ST_MAX_EXAMPLES=20   test cases per operation and phase (schemathesis --max-examples)
#   ST_SEED              a seed, to replay a run (default: random, printed at the end)
#   ST_WORKERS=1         concurrent schemathesis workers (threads; CPython 3.11 can fail
#                        with "AST constructor recursion depth mismatch" with more)
#   ST_REPORT_DIR        keep schemathesis' JUnit report and the node's log there
#   METACENTER_BIN       a metacenter binary to start instead of the debug build

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() {
    echo "schemathesis.sh: $*" >&2
    exit 2
}

command -v schemathesis >/dev/null ||
    die "schemathesis is not installed: python3 -m pip install schemathesis"

if [[ -z "${METACENTER_BIN:-}" ]]; then
    cargo build --quiet --bin metacenter
    METACENTER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/metacenter"
fi

WORK="$(mktemp -d)"
mkdir -p "$WORK/files"
echo "a file for /file/cid" >"$WORK/files/sample.txt"
NODE_PID=""
stop_node() {
    if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill "$NODE_PID"
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [[ -n "${ST_REPORT_DIR:-}" ]]; then
        mkdir -p "$ST_REPORT_DIR"
        cp "$WORK/node.log" "$ST_REPORT_DIR/node.log" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap stop_node EXIT

# Ports chosen by the kernel (port 0); the node logs the address it bound.
"$METACENTER_BIN" dev --data-dir "$WORK/data" --listen 127.0.0.1:0 \
    --peer-listen 127.0.0.1:0 --set "files.root=$WORK/files" --set log.format=json \
    >"$WORK/node.log" 2>&1 &
NODE_PID=$!

# Poll for the bound address, then /ready, with a deadline.
deadline=$((SECONDS + 60))
API=""
until [[ -n "$API" ]] && "$METACENTER_BIN" health --node "$API" >/dev/null 2>&1; do
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$WORK/node.log" >&2; die "the node exited"; }
    ((SECONDS < deadline)) || { cat "$WORK/node.log" >&2; die "the node was not ready in 60 s"; }
    API="$(grep -o -m 1 '"api":"127\.0\.0\.1:[0-9]*"' "$WORK/node.log" | cut -d'"' -f4 || true)"
    sleep 0.1
done
echo "=== node ready on $API; schemathesis $(schemathesis --version | awk '{print $NF}')"

args=(
    --config-file "$ROOT/scripts/schemathesis.toml"
    run "http://$API/openapi.json"
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
    --max-examples "${ST_MAX_EXAMPLES:-20}"
    --workers "${ST_WORKERS:-1}"
    --request-timeout 30
    --exclude-path-regex '^/(ws/|cluster/(add|remove)$)'
    --generation-database none
    --no-color
)
[[ -n "${ST_SEED:-}" ]] && args+=(--seed "$ST_SEED")
[[ -n "${ST_REPORT_DIR:-}" ]] && args+=(--report junit --report-dir "$ST_REPORT_DIR")
status=0
# From the temporary directory: schemathesis and hypothesis keep caches in the cwd.
(cd "$WORK" && schemathesis "${args[@]}") || status=$?
kill -0 "$NODE_PID" 2>/dev/null || { echo "schemathesis.sh: the node died during the run" >&2; status=1; }
exit "$status"
