#!/usr/bin/env bash
# The scenario library (issue 9, Build 4): REAL Postfix + Dovecot on loopback, driven by Python
# SMTP and IMAP clients from many 127.x.y.z addresses, with `smtpscope serve` in its DEFAULT
# detection and containment configuration (only [network] own_networks = Postfix's mynetworks,
# what an MX's operator states: local_domains and one known good network, and a geo override
# for the test ranges) as Postfix's policy server, following the one mail
# log that Postfix (maillog_file) and Dovecot (log_path, syslog-style time stamp) both write.
#
#   clients on 127.x.y.z --SMTP, SASL via Dovecot--> Postfix 127.0.0.1:$SMTP --> sink.py ("the internet")
#                        --IMAP--> Dovecot 127.0.0.1:$IMAP
#   Postfix --check_policy_service--> smtpscope serve (follows $T/maillog from its start)
#
# The same Postfix is also the MX of our domain e2e.test (virtual mailboxes, one per account;
# unknown local parts refused at RCPT), so internet hosts (127.x outside 127.60.0.0/16) and
# looped-back customers (inside it) deliver to our users on the same port. Internet hosts have
# addresses of the benchmarking range 198.18.0.0/15, handed to Postfix with XCLIENT from
# 127.99.0.1 (smtpscope takes a loopback client outside own_networks for this host itself).
#
# The scenarios are tests/e2e/scenarios/s*.py (see scenarios/README.md). All run against one
# set of servers, each with its own accounts and addresses; a scenario may also write log lines
# of the day BEFORE the run into the log (generated, in the servers' own format) — they are
# written before anything starts, so the log stays in time order. Then every scenario drives its
# live traffic, the queue drains, and each scenario's expectations are checked against the
# alerts (alerts.jsonl), the incidents (API) and Postfix's hold queue, and `smtpscope analyze`
# over the same mail log afterwards must give the incoming detectors' alerts serve gave.
#
# Needs (Debian): postfix dovecot-core dovecot-imapd python3 curl; runs as root. SMTPSCOPE_BIN
# selects the binary (default: build the debug one). KEEP=1 keeps the temp dir;
# ONLY=s3_hosting,s5_list runs some scenarios.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${SMTPSCOPE_BIN:-}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build -q -p smtpscope)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/smtpscope
fi
START=$(date +%s)

T=$(mktemp -d /tmp/smtpscope-scen.XXXXXX)
chmod 755 "$T"
. "$HERE/postfix.sh"   # port, write_postfix_config
SMTP=$(port); IMAP=$(port); SINK=$(port); POLICY=$(port); HTTP=$(port)
PF=$T/postfix
SINK_PID=; SCOPE_PID=; PF_UP=; DC_UP=
log() { echo "scenarios: $*"; }
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
    echo "scenarios: FAIL: $*" >&2
    echo "--- smtpscope log (tail)" >&2; tail -n 30 "$T/smtpscope.log" >&2 || true
    echo "--- maillog (tail)" >&2; tail -n 30 "$T/maillog" >&2 || true
    exit 1
}
export SCEN_T=$T SCEN_SMTP=$SMTP SCEN_IMAP=$IMAP SCEN_HTTP=$HTTP SCEN_PF=$PF

# ---- accounts (password "secret") and the day before, from the scenarios ----
mkdir -p "$T/dovecot/run" "$T/dovecot/state" "$T/spool" "$T/mail"
chmod 1777 "$T/mail"
python3 "$HERE/scenarios/run.py" setup || fail "scenario setup"

# ---- Dovecot: SASL for Postfix and IMAP on loopback, logging into the mail log ----
cat > "$T/dovecot/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $T/dovecot/run
state_dir = $T/dovecot/state
log_path = $T/maillog
# The syslog shape (time stamp, host, program) so that one file holds both servers' lines,
# as /var/log/mail.log does on a Debian mail server.
log_timestamp = "%b %d %H:%M:%S mx dovecot: "
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Answer failed logins at once (default 2 s), so a dictionary attack takes seconds.
auth_failure_delay = 0
mail_location = maildir:$T/mail/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $T/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$T/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP
  }
  inet_listener imaps {
    port = 0
  }
}
# No auth penalty either (Dovecot delays every login from an address with recent failures by up
# to 15 s; documented way to turn it off): the servers' log lines are the same, the run faster.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
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
# 127.60.0.0/16 is "our customers' network" (mynetworks = own_networks): web hosting, an
# infected PC, a list server, webmail. The server is also the MX of e2e.test.
write_postfix_config "$PF" "$T" "$SMTP" "$SINK" "$POLICY" "127.0.0.1/32 127.60.0.0/16" yes e2e.test

# ---- geo override: the 127.x and 198.18.x ranges as countries and networks ----
cat > "$T/geo.csv" <<EOF
cidr,country,asn,label
127.20.0.0/16,JP,64500,e2e-home-isp
127.21.0.0/16,JP,64500,e2e-home-isp
127.22.0.0/16,JP,64500,e2e-home-isp
127.41.0.0/16,RU,64541,e2e-ru
127.42.0.0/16,CN,64542,e2e-cn
127.51.0.0/16,VN,64551,e2e-vn
127.52.0.0/16,BR,64552,e2e-br
127.53.0.0/16,IN,64553,e2e-in
127.54.0.0/16,ID,64554,e2e-id
127.60.0.0/16,JP,64510,e2e-our-isp
198.18.5.0/24,CN,64570,e2e-botnet-cn
198.18.8.0/24,RU,64571,e2e-botnet-ru
198.18.9.0/24,BR,64572,e2e-botnet-br
198.19.60.0/24,FR,64560,e2e-office-isp
198.19.61.0/24,FR,64561,e2e-smallfirm
198.19.80.0/24,DE,64580,e2e-university
198.19.90.0/24,US,64590,e2e-bigmail
EOF

# ---- smtpscope: default detection and containment ----
# Besides own_networks, what an MX's operator states: the domain delivered locally, and the
# big provider's outbound network as a known good sender (s8c_mx_provider).
cat > "$T/smtpscope.toml" <<EOF
[network]
own_networks = ["127.60.0.0/16"]
local_domains = ["e2e.test"]

[detect.incoming]
known_good_networks = ["198.19.90.0/24"]

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
EOF
NO_COLOR=1 "$BIN" serve --config "$T/smtpscope.toml" 2> "$T/smtpscope.log" &
SCOPE_PID=$!
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$HTTP/health" >/dev/null 2>&1 && break
    kill -0 "$SCOPE_PID" 2>/dev/null || fail "smtpscope exited"
    sleep 0.1
done
curl -sf "http://127.0.0.1:$HTTP/health" >/dev/null || fail "smtpscope did not start"
# Wait until smtpscope has read every line of the mail log and its engine queue is empty.
caught_up() {
    local want got depth
    for _ in $(seq 1 600); do
        want=$(wc -l < "$T/maillog")
        curl -sf "http://127.0.0.1:$HTTP/metrics" > "$T/metrics.now" || true
        got=$(sed -n 's/^smtpscope_lines_total{source="follow"} //p' "$T/metrics.now")
        depth=$(sed -n 's/^smtpscope_engine_queue_depth //p' "$T/metrics.now")
        [ "${got:-0}" -ge "$want" ] && [ "${depth:-1}" = 0 ] && return 0
        sleep 0.1
    done
    fail "smtpscope read ${got:-0} of $want mail log lines within 60 s"
}
# The day before must be read before live lines follow it.
caught_up
log "smtpscope up (policy $POLICY, http $HTTP); read the $(wc -l < "$T/maillog") lines of the day before"

python3 "$HERE/sink.py" "$SINK" "$T/sink.jsonl" &
SINK_PID=$!
postfix -c "$PF" check 2>&1 | grep -v "^$" || true
postfix -c "$PF" start >/dev/null 2>&1 || { postfix -c "$PF" start; fail "postfix did not start"; }
PF_UP=1
dovecot -c "$T/dovecot/dovecot.conf" || fail "dovecot did not start"
DC_UP=1
for _ in $(seq 1 100); do
    [ -S "$T/spool/private/auth" ] && python3 -c "import socket; [socket.create_connection(('127.0.0.1',p)).close() for p in ($SMTP,$IMAP)]" 2>/dev/null && break
    sleep 0.1
done
log "postfix (smtp $SMTP), dovecot (imap $IMAP) up; sink on $SINK"

# ---- traffic ----
python3 "$HERE/scenarios/run.py" drive || fail "driver failed"
log "traffic sent; waiting for the queue to drain"
for _ in $(seq 1 600); do
    n=$(postqueue -c "$PF" -j | python3 -c 'import sys,json; print(sum(1 for l in sys.stdin if json.loads(l)["queue_name"]!="hold"))')
    [ "$n" = 0 ] && break
    sleep 0.2
done
# Let smtpscope read the last delivery lines (Postfix writes them once the queue is empty).
sleep 1
caught_up
postqueue -c "$PF" -j > "$T/queue.jsonl"
curl -sf -H "Authorization: Bearer e2e-token" "http://127.0.0.1:$HTTP/api/incidents" > "$T/incidents.json" || fail "API"
curl -sf "http://127.0.0.1:$HTTP/metrics" > "$T/metrics.txt" || fail "metrics"

# ---- the same log through analyze (one engine, two clocks) ----
NO_COLOR=1 "$BIN" analyze -q --config "$T/smtpscope.toml" --geo-override "$T/geo.csv" --format jsonl \
    -o "$T/analyze.jsonl" "$T/maillog" 2> "$T/analyze.log" || fail "smtpscope analyze"

# ---- checks ----
rc=0
python3 "$HERE/scenarios/run.py" check || rc=$?
log "took $(( $(date +%s) - START )) s"
[ "$rc" = 0 ] || fail "scenario checks failed"
