#!/usr/bin/env bash
# Fuzzing: builds the cargo-fuzz targets of cluster-tests/fuzz (one per decoder or
# request parser; see metacenter::fuzzing) and runs each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
#   SECONDS_PER_TARGET  default 30 (libFuzzer's -max_total_time)
#   TARGET...           default: every target in cluster-tests/fuzz/fuzz_targets
#
# Each run starts from the target's committed seeds (cluster-tests/fuzz/seeds/<target>/)
# and the corpus earlier runs grew (cluster-tests/fuzz/corpus/<target>/, not committed).
# A crash, a panic, a violated property, an input slower than FUZZ_TIMEOUT or memory
# over FUZZ_RSS_MB fails the run: the script goes on with the other targets, then
# exits 1 and prints where each failing input is (cluster-tests/fuzz/artifacts/...).
# Keep such an input as a regression: copy it to cluster-tests/fuzz/regressions/<target>/,
# where `cargo test --test fuzz_regressions` replays it, and fix the code.
#
# Leaks are not checked (-detect_leaks=0): safe Rust leaks only on purpose, memory that
# grows without bound trips the RSS limit anyway, and libFuzzer's per-input leak scan
# (run whenever mallocs and frees of an input differ, as sled's caches make them) took
# nine tenths of the time of command_apply.
#
# Environment:
#   FUZZ_SANITIZER   cargo fuzz -s: address (default) or none (faster, no ASan)
#   FUZZ_TIMEOUT     seconds one input may take (default 10)
#   FUZZ_RSS_MB      memory limit of a run, MB (default 2048)
#   FUZZ_PROFILE     release (default: optimised, as cargo fuzz builds) or dev
#                    (unoptimised: builds in a fraction of the time, runs slower;
#                    what CI uses for its short run)
#   FUZZ_TARGET_DIR  build directory (default cluster-tests/fuzz/target); kept apart
#                    from the workspace's, whose artifacts have other compiler flags
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler (libFuzzer
# is built from source). cargo-fuzz passes nightly-only rustc flags; RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-30}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi

fuzz_dir=cluster-tests/fuzz
sanitizer="${FUZZ_SANITIZER:-address}"
timeout="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_MB:-2048}"
target_dir="${FUZZ_TARGET_DIR:-$fuzz_dir/target}"
profile="${FUZZ_PROFILE:-release}"
export RUSTC_BOOTSTRAP=1
# The workspace's shared target directory must not receive instrumented builds.
unset CARGO_TARGET_DIR

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

all=()
for f in "$fuzz_dir"/fuzz_targets/*.rs; do
    all+=("$(basename "$f" .rs)")
done
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
    if [[ ! -f "$fuzz_dir/fuzz_targets/$t.rs" ]]; then
        echo "unknown target $t; targets: ${all[*]}" >&2
        exit 2
    fi
done

opts=(--fuzz-dir "$fuzz_dir" -s "$sanitizer" --target-dir "$target_dir")
case "$profile" in
release) ;;
dev) opts+=(--dev) ;;
*)
    echo "FUZZ_PROFILE must be release or dev, not $profile" >&2
    exit 2
    ;;
esac

echo "=== cargo fuzz build (sanitizer: $sanitizer, profile: $profile)"
if ((${#targets[@]} == ${#all[@]})); then
    cargo fuzz build "${opts[@]}"
else
    for t in "${targets[@]}"; do
        cargo fuzz build "${opts[@]}" "$t"
    done
fi

# The built targets are run directly: `cargo fuzz run` would check the build again
# for every target. It adds only this ASan option (Rust's codegen trips its ODR check).
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$triple/$([[ "$profile" == dev ]] && echo debug || echo release)"
asan_options="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

mkdir -p "$fuzz_dir/logs"
failed=()
for t in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$t"
    artifacts="$fuzz_dir/artifacts/$t"
    log="$fuzz_dir/logs/$t.log"
    scratch="$(mktemp -d)"
    mkdir -p "$corpus" "$artifacts"
    stamp="$scratch/.started"
    touch "$stamp"
    echo "=== $t: ${seconds}s"
    status=0
    # The harnesses keep scratch state (a store, a file tree) under TMPDIR.
    ASAN_OPTIONS="$asan_options" TMPDIR="$scratch" "$bin_dir/$t" "$corpus" "$fuzz_dir/seeds/$t" \
        -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss_mb" \
        -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 ||
        status=$?
    # The last status line: "#execs DONE cov: .. ft: .. corp: ..", then the totals.
    grep -aE '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$log" | tail -1 || true
    grep -aE '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" |
        tr '\n' ' ' || true
    echo
    if ((status != 0)); then
        found="$(find "$artifacts" -type f -newer "$stamp" | sort)"
        echo "--- $t FAILED (exit $status); log: $log"
        tail -n 40 "$log"
        for f in $found; do
            echo "crashing input: $f"
            echo "  replay it: $bin_dir/$t $f"
        done
        failed+=("$t")
    fi
    rm -rf "$scratch"
done

if ((${#failed[@]})); then
    echo "=== fuzzing found failures in: ${failed[*]}"
    echo "    keep each input under $fuzz_dir/regressions/<target>/ and fix the code"
    exit 1
fi
echo "=== fuzzing: no failures in ${targets[*]}"
