#!/usr/bin/env bash
# Policy server benchmark, side by side in one run on this machine:
#   floor      a do-nothing responder (answers DUNNO, threads, no parsing): what the machine,
#              the kernel's loopback and the load generator allow at all
#   smtpscope  `smtpscope serve` in enforce mode, every request also fed to the engine
#              (auth-hijack baselines per sasl_username, containment lookup, metrics): a
#              policy-only deployment, which reads no log
#   smtpscope-with-log  the same, also following a log file (empty: no line comes), as a
#              deployment that reads its MTA's log beside the requests; the engine then keeps
#              each transaction's HELO for the log's messages (docs/PERFORMANCE.md, "Policy
#              server")
#   postfwd    postfwd2 (Debian package) with an equivalent per-sasl_username rate limit
# The same load generator (bench/policy/loadgen: CONNECTIONS connections, each sending an RCPT
# request and waiting for the answer, like Postfix smtpd processes) runs DURATION seconds against each.
#
# Needs: postfwd (Debian), cargo. Prints one JSON line per server and a Markdown table; writes
# them to bench/policy/results/ with the date.
#   CONNECTIONS=16 DURATION=10 USERS=1000 bench/policy/run.sh
#   SMTPSCOPE_BASELINE_BIN=/path/to/older/smtpscope bench/policy/run.sh   # also that build
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CONNECTIONS=${CONNECTIONS:-16}
# Not SECONDS: bash keeps its own SECONDS (seconds since the shell started), so a default for it
# never applies.
SECONDS_EACH=${DURATION:-10}
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
# shellcheck source=bench/policy/common.sh
. "$HERE/common.sh"
OUT=$T/results.jsonl
# CPU seconds (user + system, clock ticks of 1/100 s) of a process and all its descendants.
cpu_tree() {
    python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1]); kids = {}; cpu = {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        f = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    kids.setdefault(int(f[1]), []).append(int(d)); cpu[int(d)] = int(f[11]) + int(f[12])
tot, todo = 0, [root]
while todo:
    p = todo.pop(); tot += cpu.get(p, 0); todo += kids.get(p, [])
print("%.2f" % (tot / os.sysconf("SC_CLK_TCK")))
PY
}
bench() { # name port server-pid
    local c0 c1 load
    c0=$(cpu_tree "$3"); load=$(cut -d' ' -f1-3 /proc/loadavg)
    "$LG" run "127.0.0.1:$2" "$CONNECTIONS" "$SECONDS_EACH" "$USERS" > "$T/run.json"
    c1=$(cpu_tree "$3")
    sed "s/^{/{\"server\":\"$1\",\"server_cpu_s\":$(python3 -c "print(round($c1-$c0,2))"),\"load_before\":\"$load\",/" "$T/run.json" | tee -a "$OUT"
}

# floor
P=$(port); "$LG" floor "$P" & PIDS+=($!); wait_port "$P"
bench floor "$P" "${PIDS[-1]}"
kill "${PIDS[-1]}"

# smtpscope (and, with SMTPSCOPE_BASELINE_BIN, an earlier build of it, for an A/B in one run)
scope() { # name binary [serve arguments]
    start_serve "$2" "$T" "${@:3}"
    PIDS+=("$SERVE_PID")
    bench "$1" "$POLICY_PORT" "$SERVE_PID"
    # Were the requests analysed, or answered without analysis (fail open)?
    curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | grep -E '^smtpscope_(policy_fail_open_total|lines_total\{source="policy"\}|engine_queue_depth|engine_events_total)' | sed "s/^/# $1 /"
    kill -TERM "${PIDS[-1]}"
    wait "${PIDS[-1]}" 2>/dev/null || true
}
scope smtpscope "$SCOPE"
: > "$T/mail.log"
scope smtpscope-with-log "$SCOPE" --follow "$T/mail.log"
[ -z "${SMTPSCOPE_BASELINE_BIN:-}" ] || scope smtpscope-baseline "$SMTPSCOPE_BASELINE_BIN"

# postfwd2: at most 100 messages per sasl_username per minute (never reached by this load:
# the check runs on every request, as smtpscope's does).
P=$(port)
cat > "$T/postfwd.cf" <<'EOF'
id=RATE01; sasl_username=~/./; action=rate(sasl_username/100/60/DEFER_IF_PERMIT rate limit exceeded)
EOF
postfwd2 --file "$T/postfwd.cf" --interface 127.0.0.1 --port "$P" --nodns --pidfile "$T/postfwd.pid" \
    -u nobody -g nogroup > "$T/postfwd.log" 2>&1
wait_port "$P"
bench postfwd "$P" "$(cat "$T/postfwd.pid")"

python3 - "$OUT" "$CONNECTIONS" "$SECONDS_EACH" <<'EOF' | tee "$T/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["server"]: r for r in rows}
print("\n%s connections, %s s each, %s\n" % (sys.argv[2], sys.argv[3], __import__("time").strftime("%Y-%m-%d")))
print("| server | requests/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU s | server CPU µs/request | load before |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    print("| %s | %.0f | %.3f | %.3f | %.3f | %d | %.2f | %.1f | %s |" % (r["server"], r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, r["p999_us"] / 1000, r["errors"], r["server_cpu_s"], r["server_cpu_s"] * 1e6 / max(r["requests"], 1), r["load_before"]))
if "floor" in by and "smtpscope" in by and by["floor"]["rps"] > 0:
    print("\nsmtpscope / floor throughput: %.0f%%" % (100 * by["smtpscope"]["rps"] / by["floor"]["rps"]))
    if "smtpscope-with-log" in by:
        print("\nsmtpscope-with-log / floor throughput: %.0f%%" % (100 * by["smtpscope-with-log"]["rps"] / by["floor"]["rps"]))
if "smtpscope" in by and "postfwd" in by and by["postfwd"]["rps"] > 0:
    print("\nsmtpscope / postfwd throughput: %.1fx" % (by["smtpscope"]["rps"] / by["postfwd"]["rps"]))
EOF
mkdir -p "$HERE/results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cp "$OUT" "$HERE/results/$stamp.jsonl"
cp "$T/table.md" "$HERE/results/$stamp.md"
