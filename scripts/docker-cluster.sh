#!/usr/bin/env bash
# Three metacenter containers on a private Docker network.
#
#   scripts/docker-cluster.sh up          build the static binary and image, start mc1..mc3, initialise
#   scripts/docker-cluster.sh down        remove containers, network and volumes
#   scripts/docker-cluster.sh status      role / term / applied index of each node
#   scripts/docker-cluster.sh partition N disconnect mcN from the network
#   scripts/docker-cluster.sh heal N      reconnect mcN
#   scripts/docker-cluster.sh kill N      docker kill mcN (its volume stays)
#   scripts/docker-cluster.sh start N     start mcN again from its volume
#
# Node N's API is published on 127.0.0.1:$((BASE_PORT+N)) (BASE_PORT default 18080).
# Environment: MC_PREFIX (container/network name prefix, default mc), MC_IMAGE,
# MC_SECRET (cluster secret), BASE_PORT, MC_SKIP_BUILD=1 to reuse an existing image.
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=${MC_PREFIX:-mc}
IMAGE=${MC_IMAGE:-metacenter:dev}
NET=${PREFIX}-net
SECRET=${MC_SECRET:-docker-cluster-secret}
BASE_PORT=${BASE_PORT:-18080}
TARGET=x86_64-unknown-linux-gnu

name() { echo "${PREFIX}$1"; }
port() { echo $((BASE_PORT + $1)); }

build() {
  [ "${MC_SKIP_BUILD:-0}" = 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1 && return
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$TARGET" --bin metacenter
  # The Dockerfile copies target/$TARGET/release/metacenter: bring it there when
  # CARGO_TARGET_DIR points elsewhere.
  built="${CARGO_TARGET_DIR:-target}/$TARGET/release/metacenter"
  mkdir -p "target/$TARGET/release"
  [ "$built" -ef "target/$TARGET/release/metacenter" ] || cp "$built" "target/$TARGET/release/metacenter"
  docker build -q -t "$IMAGE" . >/dev/null
}

run_node() {
  local n=$1; shift
  docker run -d --name "$(name "$n")" --hostname "$(name "$n")" --network "$NET" \
    -v "$(name "$n")-data:/data" -p "127.0.0.1:$(port "$n"):8080" \
    -e METACENTER_NODE_ID="$n" \
    -e METACENTER_NODE_ADVERTISE_API="$(name "$n"):8080" \
    -e METACENTER_NODE_ADVERTISE_PEER="$(name "$n"):8090" \
    -e METACENTER_CLUSTER_SECRET="$SECRET" \
    -e METACENTER_RAFT_FORWARD_TIMEOUT_MS=5000 \
    "$IMAGE" run "$@" >/dev/null
}

# Polls `cmd` until it succeeds or `secs` pass.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $what" >&2; return 1; fi
    sleep 0.2
  done
}

voters3() {
  curl -sf "http://127.0.0.1:$(port 1)/cluster/members" | grep -o '"id":[0-9]*' | wc -l | grep -q '^3$'
}

up() {
  build
  docker network inspect "$NET" >/dev/null 2>&1 || docker network create "$NET" >/dev/null
  run_node 1 --bootstrap
  wait_for "node 1 ready" 60 curl -sf "http://127.0.0.1:$(port 1)/ready"
  run_node 2 --join "$(name 1):8080"
  run_node 3 --join "$(name 1):8080"
  wait_for "three voters" 90 voters3
  wait_for "node 2 ready" 60 curl -sf "http://127.0.0.1:$(port 2)/ready"
  wait_for "node 3 ready" 60 curl -sf "http://127.0.0.1:$(port 3)/ready"
  echo "cluster up: API on 127.0.0.1:$(port 1), :$(port 2), :$(port 3)"
}

down() {
  for n in 1 2 3; do docker rm -f "$(name "$n")" >/dev/null 2>&1 || true; done
  for n in 1 2 3; do docker volume rm "$(name "$n")-data" >/dev/null 2>&1 || true; done
  docker network rm "$NET" >/dev/null 2>&1 || true
}

status() {
  for n in 1 2 3; do
    printf '%s: ' "$(name "$n")"
    docker exec "$(name "$n")" /metacenter cluster status --node 127.0.0.1:8080 2>/dev/null \
      | tr -d '\n ' | grep -o '"role":"[a-z]*"\|"term":[0-9]*\|"appliedIndex":[0-9]*' | tr '\n' ' ' || printf 'down'
    echo
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  partition) docker network disconnect "$NET" "$(name "$2")" ;;
  heal) docker network connect "$NET" "$(name "$2")" ;;
  kill) docker kill "$(name "$2")" >/dev/null ;;
  start) docker start "$(name "$2")" >/dev/null ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
