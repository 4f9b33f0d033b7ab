#!/usr/bin/env bash
# End-to-end test with REAL Postfix and Dovecot (see docs/OPERATIONS.md).
#
#   Python SMTP clients on 127.x.y.z --SASL (Dovecot)--> Postfix on 127.0.0.1:$SMTP
#        Postfix --check_policy_service--> smtpscope serve (policy, follows Postfix's maillog_file)
#        Postfix --relayhost--> sink.py on 127.0.0.1:$SINK (the "internet"; rejects bad* recipients)
#
# A hijacked account sends from rotating "foreign" addresses to mostly non-existent
# recipients while legitimate users send normally. Checks: the hijacked account is contained
# (HOLD) within a bounded number of messages, its later messages wait in Postfix's hold queue
# (postqueue -j), legitimate mail flows untouched, and smtpscope stops cleanly on SIGTERM.
# Then the hold queue (hold_queue.py): the incident lists the held queue ids, "delete held spam"
# removes them, and a false positive's held mail is released by its dismissal and delivered.
#
# Then the dashboard test in headless Chromium (browser.py).
#
# Needs (Debian): postfix dovecot-core chromium python3 curl. Installs nothing; runs as root (Postfix and
# Dovecot are started with private config, queue and state directories under a temp dir, on
# loopback only, and stopped at the end). SMTPSCOPE_BIN selects the binary (default: build
# the debug one). KEEP=1 keeps the temp dir.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${SMTPSCOPE_BIN:-}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build -q -p smtpscope)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/smtpscope
fi
# Upper bound on messages of the hijacked account that get through before containment.
MAX_LEAKED=${MAX_LEAKED:-12}

T=$(mktemp -d /tmp/smtpscope-e2e.XXXXXX)
chmod 755 "$T"
. "$HERE/postfix.sh"   # port, write_postfix_config
SMTP=$(port); SINK=$(port); POLICY=$(port); HTTP=$(port)
PF=$T/postfix
SINK_PID=; SCOPE_PID=; PF_UP=; DC_UP=
log() { echo "e2e: $*"; }
cleanup() {
    set +e
    [ -n "$PF_UP" ] && postfix -c "$PF" stop >/dev/null 2>&1
    [ -n "$DC_UP" ] && dovecot -c "$T/dovecot/dovecot.conf" stop >/dev/null 2>&1
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
    [ -n "$SCOPE_PID" ] && kill "$SCOPE_PID" 2>/dev/null
    wait 2>/dev/null
    if [ -n "${KEEP:-}" ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
fail() {
    echo "e2e: FAIL: $*" >&2
    echo "--- smtpscope log (tail)" >&2; tail -n 30 "$T/smtpscope.log" >&2 || true
    echo "--- maillog (tail)" >&2; tail -n 30 "$T/maillog" >&2 || true
    exit 1
}

# ---- Dovecot: SASL only, passwd-file ----
mkdir -p "$T/dovecot/run" "$T/dovecot/state"
: > "$T/dovecot/users"
for u in victim user0 user1 user2 user3 user4 user5 user6 user7; do
    echo "$u@e2e.test:{PLAIN}secret" >> "$T/dovecot/users"
done
mkdir -p "$T/spool"
cat > "$T/dovecot/dovecot.conf" <<EOF
protocols =
listen = 127.0.0.1
base_dir = $T/dovecot/run
state_dir = $T/dovecot/state
log_path = $T/dovecot/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $T/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $T/spool/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF

# ---- Postfix: private config and queue, loopback, relay everything to the sink ----
write_postfix_config "$PF" "$T" "$SMTP" "$SINK" "$POLICY" "127.0.0.1/32" no

# ---- geo override: the clients' 127.x ranges as countries and networks ----
cat > "$T/geo.csv" <<EOF
cidr,country,asn,label
127.20.0.0/16,JP,64500,e2e-home-isp
127.31.0.0/16,BR,64531,e2e-br
127.32.0.0/16,VN,64532,e2e-vn
127.33.0.0/16,NG,64533,e2e-ng
127.34.0.0/16,IN,64534,e2e-in
127.35.0.0/16,RU,64535,e2e-ru
127.36.0.0/16,US,64536,e2e-us
127.37.0.0/16,CN,64537,e2e-cn
127.38.0.0/16,ID,64538,e2e-id
EOF

# ---- smtpscope ----
cat > "$T/smtpscope.toml" <<EOF
[detect.delivery_failures]
threshold = 5
window = "1h"

[serve]
mode = "enforce"
policy = ["127.0.0.1:$POLICY"]
follow = ["$T/maillog"]
follow_start = "start"
store = "$T/smtpscope.db"
http = "127.0.0.1:$HTTP"
token = "e2e-token"
geo_override = "$T/geo.csv"
alerts_jsonl = "$T/alerts.jsonl"

[serve.containment]
# auth-hijack (spread over new networks/countries) or delivery-failures (the sink rejects
# most of the hijacked account's recipients): whichever sees it first.
detectors = ["auth-hijack", "delivery-failures"]
min_score = 0.0
duration = "1h"
action = "HOLD"
# The harness runs as root: postsuper itself, on the private instance.
postsuper_command = ["postsuper", "-c", "$PF"]
EOF
NO_COLOR=1 "$BIN" serve --config "$T/smtpscope.toml" 2> "$T/smtpscope.log" &
SCOPE_PID=$!
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$HTTP/health" >/dev/null 2>&1 && break
    kill -0 "$SCOPE_PID" 2>/dev/null || fail "smtpscope exited"
    sleep 0.1
done
curl -sf "http://127.0.0.1:$HTTP/health" >/dev/null || fail "smtpscope did not start"
log "smtpscope up (policy $POLICY, http $HTTP)"

python3 "$HERE/sink.py" "$SINK" "$T/sink.jsonl" &
SINK_PID=$!

postfix -c "$PF" check 2>&1 | grep -v "^$" || true
postfix -c "$PF" start >/dev/null 2>&1 || { postfix -c "$PF" start; fail "postfix did not start"; }
PF_UP=1
dovecot -c "$T/dovecot/dovecot.conf" || fail "dovecot did not start"
DC_UP=1
for _ in $(seq 1 100); do
    [ -S "$T/spool/private/auth" ] && python3 -c "import socket; socket.create_connection(('127.0.0.1',$SMTP)).close()" 2>/dev/null && break
    sleep 0.1
done
log "postfix (smtp $SMTP) and dovecot up; sink on $SINK"

# ---- traffic ----
python3 "$HERE/drive.py" "$SMTP" "$T/results.json" || fail "driver failed"
log "traffic sent; waiting for the queue to drain"
for _ in $(seq 1 300); do
    n=$(postqueue -c "$PF" -j | python3 -c 'import sys,json; print(sum(1 for l in sys.stdin if json.loads(l)["queue_name"]!="hold"))')
    [ "$n" = 0 ] && break
    sleep 0.2
done
postqueue -c "$PF" -j > "$T/queue.jsonl"
curl -sf "http://127.0.0.1:$HTTP/api/incidents" > "$T/incidents.json" || fail "API"
curl -sf "http://127.0.0.1:$HTTP/metrics" > "$T/metrics.txt" || fail "metrics"

# ---- checks ----
python3 - "$T" "$MAX_LEAKED" <<'EOF' || fail "checks failed"
import json, sys
T, max_leaked = sys.argv[1], int(sys.argv[2])
res = json.load(open(T + "/results.json"))
queue = [json.loads(l) for l in open(T + "/queue.jsonl") if l.strip()]
sink = [json.loads(l) for l in open(T + "/sink.jsonl")] if __import__("os").path.exists(T + "/sink.jsonl") else []
inc = json.load(open(T + "/incidents.json"))
metrics = {l.split(" ")[0]: float(l.split(" ")[1]) for l in open(T + "/metrics.txt") if l and not l.startswith("#")}
ok = True
def check(cond, what):
    global ok
    print(("ok   " if cond else "FAIL ") + what)
    ok &= bool(cond)

legit = [r for r in res if r["user"] != "victim@e2e.test"]
victim = [r for r in res if r["user"] == "victim@e2e.test"]
check(all(r["ok"] for r in legit), "all %d legitimate messages accepted by Postfix" % len(legit))
got = {to for m in sink if m["from"].startswith("user") for to in m["to"]}
want = {"friend%d@dest.test" % r["n"] for r in legit}
check(got == want, "all legitimate messages delivered to the sink (%d/%d)" % (len(got & want), len(want)))
held = [q for q in queue if q["queue_name"] == "hold"]
check(all(q["sender"] == "victim@e2e.test" for q in held), "only the hijacked account's mail is on hold")
check(len(held) > 0, "%d hijacked messages wait in Postfix's hold queue (postqueue -j)" % len(held))
delivered = sorted(int(to[len("target"):].split("@")[0]) for m in sink if m["from"] == "victim@e2e.test" for to in m["to"] if to.startswith("target"))
check(len(delivered) <= max_leaked, "hijacked account contained after %d messages (bound %d)" % (len(delivered), max_leaked))
check(len(delivered) + len(held) == len(victim), "every hijacked message either delivered before containment or held (%d + %d = %d)" % (len(delivered), len(held), len(victim)))
acc = [i for i in inc if i["entity_kind"] == "account"]
check(any(i["entity_id"] == "victim@e2e.test" and i["state"] == "contained" for i in acc), "incident for victim@e2e.test is contained")
check(not any(i["entity_id"].startswith("user") for i in inc), "no incident for legitimate users")
print("     detectors: " + ", ".join(sorted({i["detector"] for i in acc})))
check(metrics.get('smtpscope_policy_requests_total{answer="action"}', 0) >= len(held), "policy answered HOLD")
check(metrics.get("smtpscope_policy_fail_open_total", 1) == 0, "no fail-open")
check(metrics.get('smtpscope_parse_failures_total{source="follow"}', 1) == 0, "every maillog line parsed")
sys.exit(0 if ok else 1)
EOF

# ---- the hold queue, end to end (issue 11): delete held spam, release a false positive ----
python3 "$HERE/hold_queue.py" "$T" "$PF" "$SMTP" "$HTTP" || fail "hold-queue checks failed"
log "hold queue part PASS"

# ---- clean shutdown ----
kill -TERM "$SCOPE_PID"
rc=0; wait "$SCOPE_PID" || rc=$?
SCOPE_PID=
[ "$rc" = 0 ] || fail "smtpscope exited with $rc on SIGTERM"
grep -q "store closed" "$T/smtpscope.log" || fail "no clean store shutdown"
log "postfix part PASS"

# ---- the dashboard in headless Chromium ----
command -v chromium >/dev/null || fail "chromium is not installed"
python3 "$HERE/browser.py" "$BIN" || fail "browser test"
log "PASS"
echo "2 passed, 0 failed"
