#!/usr/bin/env bash
# Container cluster suite (testing layer 5): cluster-tests/tests/container.rs.
#
#   scripts/ci-containers.sh
#
# Without a usable Docker engine it prints a loud SKIPPED line and exits 0. Otherwise it
# builds the static binary and the image once (tag $MC_IMAGE, default metacenter:dev),
# then runs the ignored container tests one at a time with MC_SKIP_BUILD=1 so that each
# test's `docker-cluster.sh up` reuses that image. Exits with cargo test's status.
set -uo pipefail
cd "$(dirname "$0")/.."

IMAGE=${MC_IMAGE:-metacenter:dev}
TARGET=x86_64-unknown-linux-gnu

skip() {
  local line="SKIPPED: container cluster suite: docker info failed ($1)"
  printf '\n%s\n%s\n%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
    "$line" "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "$line"
  exit 0
}

if ! command -v docker >/dev/null 2>&1; then
  skip "docker: command not found"
fi
if ! info=$(docker info 2>&1 >/dev/null); then
  reason=$(printf '%s' "$info" | grep -v '^\s*$' | tail -n 3 | tr '\n' ' ' | sed 's/ *$//' | cut -c1-300)
  skip "${reason:-no output}"
fi
# `docker info` may print server errors yet exit 0 when the daemon is unreachable.
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  skip "no Docker server answers"
fi

set -e
echo "== building the static binary (target $TARGET)"
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --target "$TARGET" --bin metacenter
echo "== building image $IMAGE"
# The Dockerfile copies target/$TARGET/release/metacenter: bring it there when
# CARGO_TARGET_DIR points elsewhere.
built="${CARGO_TARGET_DIR:-target}/$TARGET/release/metacenter"
mkdir -p "target/$TARGET/release"
[ "$built" -ef "target/$TARGET/release/metacenter" ] || cp "$built" "target/$TARGET/release/metacenter"
docker build -q -t "$IMAGE" . >/dev/null
set +e

echo "== running the container cluster suite"
start=$SECONDS
MC_IMAGE=$IMAGE MC_SKIP_BUILD=1 \
  cargo test -p cluster-tests --test container -- --ignored --test-threads=1
status=$?
echo "== container cluster suite: exit $status after $((SECONDS - start))s"
exit "$status"
