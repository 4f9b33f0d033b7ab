#!/usr/bin/env bash
# Policy server benchmark, side by side in one run on this machine:
#   floor      a do-nothing responder (answers DUNNO, threads, no parsing): what the machine,
#              the kernel's loopback and the load generator allow at all
#   smtpscope  `smtpscope serve` in enforce mode, every request also fed to the engine
#              (auth-hijack baselines per sasl_username, containment lookup, metrics)
#   postfwd    postfwd2 (Debian package) with an equivalent per-sasl_username rate limit
# The same load generator (bench/policy/loadgen: CONNECTIONS connections, each sending an RCPT
# request and waiting for the answer, like Postfix smtpd processes) runs SECONDS against each.
#
# Needs: postfwd (Debian), cargo. Prints one JSON line per server and a Markdown table; writes
# them to bench/policy/results/ with the date.
#   CONNECTIONS=16 SECONDS=10 USERS=1000 bench/policy/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CONNECTIONS=${CONNECTIONS:-16}
SECONDS_EACH=${SECONDS:-10}
USERS=${USERS:-1000}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

[ -n "${SMTPSCOPE_BIN:-}" ] || (cd "$ROOT" && cargo build -q --release -p smtpscope)
[ -n "${LOADGEN_BIN:-}" ] || (cd "$HERE/loadgen" && CARGO_TARGET_DIR="$TARGET/loadgen" cargo build -q --release)
SCOPE=${SMTPSCOPE_BIN:-$TARGET/release/smtpscope}
LG=${LOADGEN_BIN:-$TARGET/loadgen/release/policy-loadgen}

T=$(mktemp -d /tmp/smtpscope-bench.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -f "$T/postfwd.pid" ]; then kill "$(cat "$T/postfwd.pid")" 2>/dev/null || true; sleep 1; fi
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$1)).close()" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: port $1 never opened" >&2; return 1
}
OUT=$T/results.jsonl
bench() { # name port
    "$LG" run "127.0.0.1:$2" "$CONNECTIONS" "$SECONDS_EACH" "$USERS" | sed "s/^{/{\"server\":\"$1\",/" | tee -a "$OUT"
}

# floor
P=$(port); "$LG" floor "$P" & PIDS+=($!); wait_port "$P"
bench floor "$P"
kill "${PIDS[-1]}"

# smtpscope
P=$(port); HP=$(port)
NO_COLOR=1 SMTPSCOPE_LOG=warn "$SCOPE" serve --policy "127.0.0.1:$P" --store "$T/smtpscope.db" --http "127.0.0.1:$HP" --mode enforce 2> "$T/smtpscope.log" &
PIDS+=($!); wait_port "$P"
bench smtpscope "$P"
# Were the requests analysed, or answered without analysis (fail open)?
curl -sf "http://127.0.0.1:$HP/metrics" | grep -E '^smtpscope_(policy_fail_open_total|lines_total\{source="policy"\}|engine_queue_depth)' | sed 's/^/# /'
kill -TERM "${PIDS[-1]}"

# postfwd2: at most 100 messages per sasl_username per minute (never reached by this load:
# the check runs on every request, as smtpscope's does).
P=$(port)
cat > "$T/postfwd.cf" <<'EOF'
id=RATE01; sasl_username=~/./; action=rate(sasl_username/100/60/DEFER_IF_PERMIT rate limit exceeded)
EOF
postfwd2 --file "$T/postfwd.cf" --interface 127.0.0.1 --port "$P" --nodns --pidfile "$T/postfwd.pid" \
    -u nobody -g nogroup > "$T/postfwd.log" 2>&1
wait_port "$P"
bench postfwd "$P"

python3 - "$OUT" "$CONNECTIONS" "$SECONDS_EACH" <<'EOF' | tee "$T/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["server"]: r for r in rows}
print("\n%s connections, %s s each, %s\n" % (sys.argv[2], sys.argv[3], __import__("time").strftime("%Y-%m-%d")))
print("| server | requests/s | p50 ms | p99 ms | p99.9 ms | errors |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    print("| %s | %.0f | %.3f | %.3f | %.3f | %d |" % (r["server"], r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, r["p999_us"] / 1000, r["errors"]))
if "smtpscope" in by and "postfwd" in by and by["postfwd"]["rps"] > 0:
    print("\nsmtpscope / postfwd throughput: %.1fx" % (by["smtpscope"]["rps"] / by["postfwd"]["rps"]))
EOF
mkdir -p "$HERE/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cp "$OUT" "$HERE/results/$stamp.jsonl"
cp "$T/table.md" "$HERE/results/$stamp.md"
