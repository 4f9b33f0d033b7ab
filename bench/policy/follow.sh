#!/usr/bin/env bash
# Follow-mode throughput: `smtpscope serve --follow` on a simulated ISP's Postfix log (detection
# on), timed from start until every line went through the engine (smtpscope_lines_total), next
# to `smtpscope analyze` on the same file.
#   USERS=2000 DAYS=1 bench/policy/follow.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ -n "${SMTPSCOPE_BIN:-}" ] || (cd "$ROOT" && cargo build -q --release -p smtpscope)
SCOPE=${SMTPSCOPE_BIN:-$TARGET/release/smtpscope}
T=$(mktemp -d /tmp/smtpscope-follow.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
"$SCOPE" simulate --users "${USERS:-2000}" --days "${DAYS:-1}" --out "$T/sim" >/dev/null
LOG=$(ls "$T"/sim/*.log | head -1)
LINES=$(wc -l < "$LOG")
BYTES=$(stat -c %s "$LOG")
HTTP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$T/c.toml" <<EOF
[serve]
follow = ["$LOG"]
follow_start = "start"
store = "$T/s.db"
http = "127.0.0.1:$HTTP"
EOF
start=$(date +%s.%N)
NO_COLOR=1 SMTPSCOPE_LOG=warn "$SCOPE" serve --config "$T/c.toml" 2> "$T/serve.log" &
PID=$!
n=0
while [ "$n" -lt "$LINES" ]; do
    sleep 0.05
    n=$(curl -sf "http://127.0.0.1:$HTTP/metrics" | awk '/^smtpscope_lines_total\{source="follow"\}/ {print $2}' || true)
    n=${n:-0}
    kill -0 "$PID" || { cat "$T/serve.log"; exit 1; }
done
end=$(date +%s.%N)
fails=$(curl -sf "http://127.0.0.1:$HTTP/metrics" | awk '/^smtpscope_parse_failures_total\{source="follow"\}/ {print $2}')
alerts=$(curl -sf "http://127.0.0.1:$HTTP/metrics" | awk '/^smtpscope_alerts_total/ {s+=$2} END {print s}')
kill -TERM "$PID"; wait "$PID" || true; PID=
a0=$(date +%s.%N)
"$SCOPE" analyze --format jsonl -q "$LOG" > "$T/alerts.jsonl"
a1=$(date +%s.%N)
python3 - <<EOF
lines, b, s, a = $LINES, $BYTES, $end - $start, $a1 - $a0
print("follow:  %d lines (%.0f MB) in %.2f s = %.0f lines/s (includes start-up), %s parse failures, %s alerts" % (lines, b / 1e6, s, lines / s, "$fails", "$alerts"))
print("analyze: %d lines in %.2f s = %.0f lines/s" % (lines, a, lines / a))
EOF
