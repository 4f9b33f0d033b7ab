#!/usr/bin/env bash
# Interleaved A/B of two smtpscope builds as policy servers, for a shared machine: ROUNDS rounds,
# each running the load generator (bench/policy/loadgen, CONNECTIONS connections, DURATION s)
# against build A and build B, each a fresh `serve --policy --mode enforce`, A first in odd
# rounds and B first in even ones (on the 2-core VM the first server after a pause came out
# ahead of the second in 7 of 8 rounds when the order never changed, docs/PERFORMANCE.md).
# With FLOOR=1 each round begins with the do-nothing responder, and each build's rate is also
# given as its share of that round's floor (the target's measure). Prints per run the
# requests/s, p50/p99 latency and the server's CPU per request (user+system of its process over
# the run, which other load disturbs far less than the rates), and the fail-open count.
#   A=/path/to/old/smtpscope B=target/release/smtpscope ROUNDS=3 DURATION=5 bench/policy/ab.sh
#   PERF=1 ...   # also record a perf profile (DWARF call graphs) of each B run to $OUT/perf-B-N.data
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
: "${A:?A=path of the first build}" "${B:?B=path of the second build}"
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-8}
# Not SECONDS: bash keeps its own SECONDS (seconds since the shell started), so a default for it
# never applies (a run without it was 0 s long).
SECONDS_EACH=${DURATION:-5}
if [ -n "${PERF:-}" ] && [ "$SECONDS_EACH" -lt 3 ]; then
    echo "PERF=1 needs DURATION >= 3 (perf records DURATION - 2 s of each run)" >&2
    exit 1
fi
USERS=${USERS:-1000}
[ -n "${LOADGEN_BIN:-}" ] || (cd "$HERE/loadgen" && CARGO_TARGET_DIR="$TARGET/loadgen" cargo build -q --release)
LG=${LOADGEN_BIN:-$TARGET/loadgen/release/policy-loadgen}
OUT=${OUT:-$(mktemp -d /tmp/smtpscope-ab.XXXXXX)}
# shellcheck source=bench/policy/common.sh
. "$HERE/common.sh"
one() { # label binary round
    local P HP PID c0 c1 fo
    P=$(port); HP=$(port)
    rm -rf "$OUT/store"; mkdir -p "$OUT/store"
    NO_COLOR=1 SMTPSCOPE_LOG=warn "$2" serve --policy "127.0.0.1:$P" --store "$OUT/store/db" \
        --http "127.0.0.1:$HP" --mode enforce 2>"$OUT/serve-$1.log" &
    PID=$!
    wait_port "$P"
    c0=$(awk '{print $14+$15}' "/proc/$PID/stat")
    "$LG" run "127.0.0.1:$P" "$CONNECTIONS" "$SECONDS_EACH" "$USERS" >"$OUT/run.json" &
    local LGP=$!
    if [ -n "${PERF:-}" ] && [ "$1" = B ]; then
        sleep 1
        perf record -F 999 --call-graph dwarf,16384 -p "$PID" -o "$OUT/perf-B-$3.data" -- sleep $((SECONDS_EACH - 2)) 2>/dev/null
    fi
    wait "$LGP"
    c1=$(awk '{print $14+$15}' "/proc/$PID/stat")
    fo=$(curl -sf "http://127.0.0.1:$HP/metrics" | awk '/^smtpscope_policy_fail_open_total/ {print $2}')
    kill "$PID"; wait "$PID" 2>/dev/null || true
    python3 - "$OUT/run.json" "$1" "$3" "$c0" "$c1" "$fo" "$(cut -d' ' -f1 /proc/loadavg)" "$(cat "$OUT/floor-rps" 2>/dev/null || true)" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
tick = os.sysconf("SC_CLK_TCK")
cpu_us = (float(sys.argv[5]) - float(sys.argv[4])) / tick * 1e6 / max(r["requests"], 1)
rate = "%d" % r["rps"]
if sys.argv[8]:
    rate += " (%.1f%%)" % (100 * r["rps"] / float(sys.argv[8]))
print("| %s | %s | %s | %.3f | %.3f | %.1f | %s | %s |" % (sys.argv[3], sys.argv[2], rate, r["p50_us"] / 1000, r["p99_us"] / 1000, cpu_us, sys.argv[6], sys.argv[7]))
PY
}
# The do-nothing responder's run of round $1: its row, and its rate for the builds' shares.
floor() {
    local P FP
    P=$(port)
    "$LG" floor "$P" & FP=$!
    wait_port "$P"
    "$LG" run "127.0.0.1:$P" "$CONNECTIONS" "$SECONDS_EACH" "$USERS" >"$OUT/run.json"
    kill "$FP"; wait "$FP" 2>/dev/null || true
    python3 - "$OUT/run.json" "$1" "$OUT/floor-rps" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
open(sys.argv[3], "w").write("%s\n" % r["rps"])
print("| %s | floor | %d | %.3f | %.3f | | | |" % (sys.argv[2], r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000))
PY
}
echo "A = $A"
echo "B = $B"
echo
rm -f "$OUT/floor-rps"
echo "| round | build | requests/s | p50 ms | p99 ms | server CPU µs/request | fail-open | load |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
    [ -z "${FLOOR:-}" ] || floor "$r"
    if [ $((r % 2)) = 1 ]; then
        one A "$A" "$r"
        one B "$B" "$r"
    else
        one B "$B" "$r"
        one A "$A" "$r"
    fi
done
