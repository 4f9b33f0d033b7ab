#!/usr/bin/env bash
# Instruction counts of `smtpscope analyze --threads 1` on a prefix of the benchmark log, for one
# or more binaries side by side: the measure of a step when wall time is noisier than the step
# (a shared VM varies by a third within minutes; callgrind counts the same instructions for the
# same binary and input whatever else runs).
#
#   bench/analyze/instructions.sh BIN [BIN ...]
#
# Environment:
#   PREFIX_MB=60        size of the prefix of the benchmark log to run on, in MB (cut at a line)
#   BENCH_DIR=bench/out/analyze   where bench/analyze/run.sh caches the log (run it first)
#   BENCH_MB=1500       which cached log (bench/analyze/run.sh's BENCH_MB)
#   TOP=15              how many functions to list by their own (exclusive) instructions
#
# Prints, per binary: total instructions, the md5 of its jsonl output (identical output is the
# first thing a speed step must keep) and the TOP functions by their own instructions (the
# exclusive counts; callgrind's inclusive ones, which follow calls through inlined frames and
# tail calls, differed by a third between two runs of one binary here). The
# binaries run two at a time (valgrind is single-threaded); each takes about 50 times its
# normal run time. Needs valgrind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
(($# > 0)) || { echo "usage: $0 BIN [BIN ...]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "need valgrind (apt-get install valgrind)" >&2; exit 1; }
PREFIX_MB=${PREFIX_MB:-60}
BENCH_MB=${BENCH_MB:-1500}
BENCH_DIR=${BENCH_DIR:-$ROOT/bench/out/analyze}
TOP=${TOP:-15}
LOG=$BENCH_DIR/mail-${BENCH_MB}mb.log
[[ -s $LOG ]] || { echo "no $LOG: run bench/analyze/run.sh first" >&2; exit 1; }
PREFIX=$BENCH_DIR/prefix-${PREFIX_MB}mb.log
if [[ ! -s $PREFIX ]]; then
    head -c $((PREFIX_MB * 1000000)) "$LOG" | head -n -1 >"$PREFIX"
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

run_one() { # run_one N BIN
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$1.cg" \
        "$2" analyze --format jsonl --quiet -o "$OUT/$1.jsonl" --tz UTC --threads 1 "$PREFIX" \
        >"$OUT/$1.log" 2>&1
}
pids=()
for ((i = 1; i <= $#; i++)); do
    run_one "$i" "${!i}" &
    pids+=($!)
    if ((${#pids[@]} == 2)); then
        wait "${pids[@]}"
        pids=()
    fi
done
((${#pids[@]} == 0)) || wait "${pids[@]}"

echo "Prefix: $(basename "$PREFIX"), $(stat -c %s "$PREFIX") bytes, $(wc -l <"$PREFIX") lines; $(date -u +%Y-%m-%dT%H:%MZ)"
for ((i = 1; i <= $#; i++)); do
    total=$(grep -o 'Collected : [0-9]*' "$OUT/$i.log" | awk '{print $3}')
    echo
    echo "== ${!i}"
    echo "instructions: $total"
    echo "output md5:   $(md5sum <"$OUT/$i.jsonl" | cut -d' ' -f1)"
    callgrind_annotate "$OUT/$i.cg" 2>/dev/null |
        sed -n '/file:function/,$p' | sed -n "3,$((TOP + 2))p" |
        sed -E 's/^ *([0-9,]+) +\( *([0-9.]+)%\) +[^:]*:(.*)$/  \1 (\2%)  \3/; s/ \[[^]]*\]$//' || true
done
