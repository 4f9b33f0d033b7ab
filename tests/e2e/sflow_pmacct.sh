#!/usr/bin/env bash
# End-to-end test of the sFlow collector against an independent exporter.
#
# pmacct's pmacctd samples real SMTP traffic on the loopback interface with its sfprobe
# plugin and exports sFlow v5 to `smtpscope sflow --listen` on 127.0.0.1. A tiny asyncio
# SMTP sink listens on 127.0.0.1:25 (or 2525 when 25 is taken; the port is passed to
# smtpscope with --smtp-port), and Python's smtplib sends it mail. The test passes when
# smtpscope accepted sFlow datagrams from agent 127.0.0.1, saw TCP samples to the SMTP
# port, and lists 127.0.0.1 in its per-IP table with SYNs and estimated bytes.
#
# Needs: pmacct (pmacctd), python3, and a built smtpscope (SMTPSCOPE=path, default
# target/debug/smtpscope, built with cargo when missing). Installs nothing. Runs as root
# (pmacctd captures on lo). Loopback only. Under 60 s.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SMTPSCOPE:-"${CARGO_TARGET_DIR:-$ROOT/target}/debug/smtpscope"}
MESSAGES=${MESSAGES:-20}

command -v pmacctd >/dev/null || { echo "FAIL: pmacctd not installed (apt-get install pmacct)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not installed"; exit 1; }
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && cargo build -q -p smtpscope)
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$rc" -ne 0 ]; then
        for f in "$WORK"/*.log "$WORK"/report.txt; do
            [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
        done
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT INT TERM

fail() { echo "FAIL: $*"; exit 1; }

# Wait (up to $2 tenths of a second) for a file to contain a pattern.
wait_for() {
    local file=$1 pattern=$2 tries=${3:-100}
    for _ in $(seq "$tries"); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# A free UDP port for sFlow.
SFLOW_PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# 1. The SMTP sink: 25 if free, else 2525. Writes the port it bound to smtp.port.
cat >"$WORK/sink.py" <<'EOF'
import asyncio, sys

async def session(reader, writer):
    writer.write(b"220 sink.localhost ESMTP test sink\r\n")
    in_data = False
    while True:
        line = await reader.readline()
        if not line:
            break
        if in_data:
            if line in (b".\r\n", b".\n"):
                in_data = False
                writer.write(b"250 2.0.0 queued\r\n")
            continue
        verb = line[:4].upper()
        if verb == b"EHLO":
            writer.write(b"250-sink.localhost\r\n250 SIZE 10485760\r\n")
        elif verb == b"DATA":
            in_data = True
            writer.write(b"354 end with .\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            break
        else:
            writer.write(b"250 ok\r\n")
        await writer.drain()
    writer.close()

async def main():
    for port in (25, 2525):
        try:
            server = await asyncio.start_server(session, "127.0.0.1", port)
        except OSError:
            continue
        with open(sys.argv[1], "w") as f:
            f.write(str(port))
        async with server:
            await server.serve_forever()
    sys.exit("no SMTP port free")

asyncio.run(main())
EOF
python3 "$WORK/sink.py" "$WORK/smtp.port" >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$WORK/smtp.port" ] && break; sleep 0.1; done
[ -s "$WORK/smtp.port" ] || fail "SMTP sink did not start"
SMTP_PORT=$(cat "$WORK/smtp.port")

# 2. smtpscope: the collector, accepting agent 127.0.0.1 only.
"$BIN" sflow --listen "127.0.0.1:$SFLOW_PORT" --duration 40 \
    --agent 127.0.0.1 --smtp-port "$SMTP_PORT" --min-samples 1 \
    --stats "$WORK/stats.json" --table "$WORK/hosts.tsv" --jsonl "$WORK/alerts.jsonl" \
    -o "$WORK/report.txt" 2>"$WORK/smtpscope.log" &
SMTPSCOPE_PID=$!
PIDS+=($SMTPSCOPE_PID)
wait_for "$WORK/smtpscope.log" "listening on" || fail "smtpscope did not start listening"

# 3. pmacctd on lo with sfprobe to smtpscope; only SMTP is sampled (1 in 1), so its own
# sFlow export on lo is not sampled back.
cat >"$WORK/pmacctd.conf" <<EOF
daemonize: false
pcap_interface: lo
pcap_filter: tcp port $SMTP_PORT
plugins: sfprobe
sfprobe_receiver: 127.0.0.1:$SFLOW_PORT
sfprobe_agentip: 127.0.0.1
sampling_rate: 1
EOF
pmacctd -f "$WORK/pmacctd.conf" >"$WORK/pmacctd.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/pmacctd.log" "Exporting flows" || fail "pmacctd did not start exporting"
sleep 1 # pmacctd opens the capture after it logs the plugin

# 4. Real SMTP traffic on loopback: $MESSAGES messages of about 30 kB.
python3 - "$SMTP_PORT" "$MESSAGES" <<'EOF' || fail "sending mail failed"
import smtplib, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
body = "Subject: e2e\r\n\r\n" + ("x" * 76 + "\r\n") * 400
for i in range(n):
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
        s.sendmail("sender@example.net", [f"rcpt{i}@example.org"], body)
print(f"sent {n} messages")
EOF

# 5. Let sfprobe flush, stop smtpscope (it writes its report on SIGTERM) and check.
sleep 3
kill -TERM "$SMTPSCOPE_PID"
wait "$SMTPSCOPE_PID" || fail "smtpscope exited with an error"

[ -s "$WORK/stats.json" ] || fail "no stats written"
python3 - "$WORK/stats.json" "$WORK/hosts.tsv" "$MESSAGES" <<'EOF' || fail "checks failed"
import json, sys
st = json.load(open(sys.argv[1]))
c, a = st["collector"], st["activity"]
print("collector:", json.dumps(c))
print("activity:", json.dumps(a))
assert c["accepted"] > 0, "no sFlow datagrams accepted"
assert c["rejected_agent"] == 0 and c["malformed"] == 0, "datagrams rejected"
assert c["flow_samples"] > 0, "no flow samples"
assert a["smtp_samples"] > 0, "no TCP samples to the SMTP port"
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
head, rows = rows[0], rows[1:]
hosts = {r[0]: dict(zip(head, r)) for r in rows}
assert "127.0.0.1" in hosts, f"127.0.0.1 not in the per-IP table: {list(hosts)}"
h = hosts["127.0.0.1"]
print("127.0.0.1:", h)
n = int(sys.argv[3])
# At 1 in 1, every client packet to the SMTP port is a sample: at least one SYN and one
# data-carrying packet per message.
assert int(h["syn_samples"]) >= n, f"expected >= {n} SYN samples"
assert int(h["est_bytes"]) >= n * 30000, "expected the 30 kB bodies in the byte estimate"
EOF
echo "PASS: sflow e2e (pmacctd sfprobe -> smtpscope), SMTP port $SMTP_PORT"
