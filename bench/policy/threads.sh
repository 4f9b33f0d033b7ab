#!/usr/bin/env bash
# Where the policy server's CPU goes, by thread: `smtpscope serve` (enforce mode) under the
# load of bench/policy/run.sh (CONNECTIONS connections, DURATION seconds, USERS accounts), with
# each thread's user and system CPU and context switches read from /proc one second into the
# load and one second before its end (bench/policy/threads.py), divided by the requests
# answered meanwhile. With SMTPSCOPE_BIN=floor the do-nothing responder is measured instead.
# Prints a Markdown table per server (docs/PERFORMANCE.md, "Policy server").
#   CONNECTIONS=8 DURATION=10 bench/policy/threads.sh
#   SMTPSCOPE_BIN=/path/to/smtpscope bench/policy/threads.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CONNECTIONS=${CONNECTIONS:-8}
SECONDS_EACH=${DURATION:-10}
USERS=${USERS:-1000}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ "$SECONDS_EACH" -ge 4 ] || { echo "DURATION must be at least 4 seconds" >&2; exit 1; }
[ -n "${SMTPSCOPE_BIN:-}" ] || (cd "$ROOT" && cargo build -q --release -p smtpscope)
[ -n "${LOADGEN_BIN:-}" ] || (cd "$HERE/loadgen" && CARGO_TARGET_DIR="$TARGET/loadgen" cargo build -q --release)
SCOPE=${SMTPSCOPE_BIN:-$TARGET/release/smtpscope}
LG=${LOADGEN_BIN:-$TARGET/loadgen/release/policy-loadgen}

# shellcheck source=bench/policy/common.sh
. "$HERE/common.sh"
scratch threads

if [ "$SCOPE" = floor ]; then
    POLICY_PORT=$(port)
    "$LG" floor "$POLICY_PORT" & SERVE_PID=$!
    wait_port "$POLICY_PORT"
else
    start_serve "$SCOPE" "$T"
fi
"$LG" run "127.0.0.1:$POLICY_PORT" "$CONNECTIONS" "$SECONDS_EACH" "$USERS" > "$T/run.json" & LP=$!
python3 "$HERE/threads.py" sample "$SERVE_PID" 1 $((SECONDS_EACH - 2)) > "$T/sample.json"
wait "$LP"
echo "## $(basename "$SCOPE") ($CONNECTIONS connections, $(date -u +%Y-%m-%dT%H:%MZ))"
python3 "$HERE/threads.py" report "$T/sample.json" "$T/run.json"
