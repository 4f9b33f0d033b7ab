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

T=$(mktemp -d /tmp/smtpscope-threads.XXXXXX)
SP=
cleanup() {
    [ -z "$SP" ] || kill "$SP" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
# shellcheck source=bench/policy/common.sh
. "$HERE/common.sh"

P=$(port)
if [ "$SCOPE" = floor ]; then
    "$LG" floor "$P" & SP=$!
else
    HP=$(port)
    NO_COLOR=1 SMTPSCOPE_LOG=warn "$SCOPE" serve --policy "127.0.0.1:$P" --store "$T/smtpscope.db" \
        --http "127.0.0.1:$HP" --mode enforce 2> "$T/smtpscope.log" & SP=$!
fi
wait_port "$P"
"$LG" run "127.0.0.1:$P" "$CONNECTIONS" "$SECONDS_EACH" "$USERS" > "$T/run.json" & LP=$!
python3 "$HERE/threads.py" sample "$SP" 1 $((SECONDS_EACH - 2)) > "$T/sample.json"
wait "$LP"
echo "## $(basename "$SCOPE") ($CONNECTIONS connections, $(date -u +%Y-%m-%dT%H:%MZ))"
python3 "$HERE/threads.py" report "$T/sample.json" "$T/run.json"
