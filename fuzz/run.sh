#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain: builds every target of this package as a
# libFuzzer program (libfuzzer-sys) with LLVM's SanitizerCoverage instrumentation — the flags
# cargo-fuzz passes, all of them stable rustc options — and runs each for FUZZ_SECS seconds,
# seeded from the repository's own test data. Fails when a target crashes (a panic, a failed
# assertion, an out-of-memory or a timeout); the input is saved in fuzz/artifacts/<target>/.
# See fuzz/README.md for why this and not cargo-fuzz.
#
#   fuzz/run.sh                    every target, FUZZ_SECS (default 25) seconds each
#   FUZZ_SECS=600 fuzz/run.sh exim  one target, longer
#   FUZZ_JOBS=1 fuzz/run.sh         one target at a time (default: as many as cores)
#   FUZZ_BUILD_ONLY=1 fuzz/run.sh   build the targets, run none (tests/run.sh builds them this
#                                   way in the background, then runs them with this script)
set -euo pipefail
FUZZ=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$FUZZ")
cd "$FUZZ"
SECS=${FUZZ_SECS:-25}
ALL="sflow_decode sflow_collect postfix exim dovecot sendmail filter syslog_frames policy_request config_file"
TARGETS=${*:-$ALL}

# The fuzz package is its own workspace with its own target directory.
export CARGO_TARGET_DIR="$FUZZ/target"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (they are not linked
# with libFuzzer), as cargo-fuzz does.
HOST=$(rustc -vV | sed -n 's/^host: //p')
# The targets build with the workspace's lock file, i.e. the crate versions the tests use; cargo
# adds only libFuzzer's own crates (libfuzzer-sys is pinned in Cargo.toml). A lock file of its
# own went stale, and the build refused, whenever a workspace crate gained a dependency.
cp "$ROOT/Cargo.lock" "$FUZZ/Cargo.lock"
echo "fuzz: building ($(rustc --version), $HOST)"
build_start=$(date +%s)
cargo build -q --release --target "$HOST" --bins
echo "fuzz: built in $(( $(date +%s) - build_start )) s"
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0
BIN="$CARGO_TARGET_DIR/$HOST/release"

# Seeds, generated afresh from tests/data and the few hand-written ones in fuzz/seeds.
SEEDS=$(mktemp -d)
trap 'rm -rf "$SEEDS"' EXIT
mkdir -p "$SEEDS/data"
zstd -dc "$ROOT/tests/data/corpus/mail.tar.zst" | tar -xf - -C "$SEEDS/data"
zstd -dc "$ROOT/tests/data/corpus/sflow.tar.zst" | tar -xf - -C "$SEEDS/data"
python3 "$FUZZ/seeds.py" "$SEEDS/data" "$ROOT" "$SEEDS"

# One target: its libFuzzer run, then its verdict (status 1 when it crashed).
fuzz_one() {
    local t=$1
    # A target may have hand-written seeds only (policy_request): libFuzzer refuses a missing
    # directory.
    mkdir -p "corpus/$t" "artifacts/$t" "$SEEDS/$t"
    local seeds=("$SEEDS/$t")
    [ -d "seeds/$t" ] && seeds+=("seeds/$t")
    local log="$CARGO_TARGET_DIR/fuzz-$t.log"
    # -rss_limit_mb: the harnesses bound their memory; 2 GiB leaves room on a 24 GiB machine
    # shared by two cores' worth of work. -timeout: one input taking 10 s is a hang.
    if "$BIN/$t" "corpus/$t" "${seeds[@]}" \
        -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
        local runs cov
        runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
        cov=$(grep -oE "cov: [0-9]+" "$log" | tail -1 || true)
        echo "fuzz $t: ok, $runs executions in ${SECS} s, $cov"
    else
        echo "FAILED: fuzz $t (log: $log; input in fuzz/artifacts/$t/)"
        grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -10 || tail -20 "$log"
        return 1
    fi
}

# FUZZ_JOBS targets at a time (default: one per core): each libFuzzer run is one process on
# one core, so on CI's two cores two runs take the wall time of one. Each job's verdict is
# printed when its group is done, in the targets' order.
JOBS=${FUZZ_JOBS:-$(nproc)}
((JOBS >= 1)) || JOBS=1
fail=0
set -- $TARGETS
while (($# > 0)); do
    group=("${@:1:JOBS}")
    shift $((${#group[@]}))
    outs=()
    pids=()
    for t in "${group[@]}"; do
        out=$(mktemp)
        outs+=("$out")
        fuzz_one "$t" >"$out" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || fail=1
        cat "${outs[$i]}"
        rm -f "${outs[$i]}"
    done
done
exit $fail
