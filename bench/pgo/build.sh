#!/usr/bin/env bash
# Profile-guided release build of smtpscope (rustc's PGO: -Cprofile-generate, a training run,
# llvm-profdata merge, -Cprofile-use). The compiler then lays out the hot paths of the parsers,
# the correlator and the detectors, and inlines, by what the training run did most, not by
# guesses (docs/PERFORMANCE.md, "A profile-guided build").
#
#   bench/pgo/build.sh        # writes target/pgo/smtpscope (the normal build is left alone)
#
# The training input is simulated here, with a seed, population and dates that
# bench/analyze/run.sh's log does not use (seeds 1-3 there, 90 here), so the benchmark
# measures a binary trained on other traffic; plus the repository's real third-party logs
# (Postfix, Exim, Dovecot, Sendmail) and sFlow captures, so that the formats the simulator does
# not write are trained too.
#
# Environment:
#   PGO_DIR=target/pgo     build dirs, profiles and the result
#   LLVM_PROFDATA=path     llvm-profdata of rustc's LLVM major version (default: found on PATH,
#                          llvm-profdata-<major> first; Debian: apt-get install llvm-<major>)
#   PGO_USERS=5000         simulated accounts of the training log (2 days)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PGO_DIR=${PGO_DIR:-$ROOT/target/pgo}
PGO_USERS=${PGO_USERS:-5000}
# The training population's seed and first day: apart from bench/analyze/run.sh's (1-3, from
# 2026-11-16), so the benchmark does not measure its own training input.
TRAIN_SEED=90
TRAIN_START=2026-10-05

HOST=$(rustc -vV | sed -n 's/^host: //p')
LLVM_MAJOR=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
PROFDATA=${LLVM_PROFDATA:-$(command -v "llvm-profdata-$LLVM_MAJOR" || command -v llvm-profdata || true)}
if [[ -z $PROFDATA ]]; then
    echo "llvm-profdata not found: apt-get install llvm-$LLVM_MAJOR (rustc uses LLVM $LLVM_MAJOR)" >&2
    exit 1
fi
have=$("$PROFDATA" --version | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p')
if [[ $have != "$LLVM_MAJOR" ]]; then
    echo "$PROFDATA is LLVM $have, rustc's is $LLVM_MAJOR: profiles would not merge" >&2
    exit 1
fi

PROFILES=$PGO_DIR/profiles
TRAIN=$PGO_DIR/train
rm -rf "$PROFILES" "$TRAIN"
mkdir -p "$PROFILES" "$TRAIN"

# An explicit --target keeps the flags off build scripts and proc macros, which would otherwise
# write profiles of their own while building.
echo "pgo: instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$PROFILES" \
    cargo build -q --release -p smtpscope --target "$HOST" --target-dir "$PGO_DIR/generate"
GEN=$PGO_DIR/generate/$HOST/release/smtpscope

echo "pgo: training" >&2
run() { "$GEN" "$@" >/dev/null; }
run simulate --users "$PGO_USERS" --days 2 --seed "$TRAIN_SEED" --start "$TRAIN_START" \
    --out "$TRAIN/sim"
for threads in 1 2; do
    run analyze --quiet --format jsonl --tz UTC --threads "$threads" "$TRAIN/sim/mail.log"
done
run analyze --quiet --format incidents --tz UTC "$TRAIN/sim/mail.log"
mkdir -p "$TRAIN/corpus"
zstd -qdc tests/data/corpus/mail.tar.zst | tar -xf - -C "$TRAIN/corpus"
zstd -qdc tests/data/corpus/sflow.tar.zst | tar -xf - -C "$TRAIN/corpus"
# One run per family of real logs (postfix, exim, dovecot, sendmail, other), every file of it
# but the corpus's own metadata (expected results, parser fixtures): most Exim logs have no
# extension (`mainlog`, the Exim test suite's `log/0005`...). Lines no parser knows are
# counted, not refused.
for family in "$TRAIN"/corpus/mail/*/; do
    logs=()
    while IFS= read -r -d '' f; do logs+=("$f"); done < <(find "$family" -type f \
        ! -name '*.assert' ! -name '*.json' ! -name '*.yaml' ! -name '*.ini' ! -name '*.csv' \
        ! -name '*.metrics' -print0 | sort -z)
    ((${#logs[@]})) || continue
    run analyze --quiet --format jsonl --tz UTC --threads 1 "${logs[@]}"
done
run simulate-sflow --days 1 --seed "$TRAIN_SEED" --scale 0.5 --out "$TRAIN/sflow"
run sflow analyze "$TRAIN/sflow/exchange.pcap"
while IFS= read -r -d '' cap; do
    run sflow decode "$cap" 2>/dev/null || true
done < <(find "$TRAIN/corpus/sflow" -type f -name '*.pcap*' -print0 | sort -z)

echo "pgo: merging $(find "$PROFILES" -name '*.profraw' | wc -l) profiles" >&2
"$PROFDATA" merge -o "$PGO_DIR/smtpscope.profdata" "$PROFILES"

echo "pgo: optimized build" >&2
RUSTFLAGS="-Cprofile-use=$PGO_DIR/smtpscope.profdata" \
    cargo build -q --release -p smtpscope --target "$HOST" --target-dir "$PGO_DIR/use"
cp "$PGO_DIR/use/$HOST/release/smtpscope" "$PGO_DIR/smtpscope"
echo "$PGO_DIR/smtpscope"
