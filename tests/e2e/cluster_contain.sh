#!/usr/bin/env bash
# Containment across a NATS node loss (issue 13: "a HOLD decided by any worker is answered by
# every policy server within a second"), with real servers on loopback:
#
#   3 nats-server (JetStream, cluster routes on 127.0.0.1, monitoring ports)
#   edge e0: the sink (HTTP API: manual containment), publishes the containment bucket
#   edge e1: policy server (enforce), watches the bucket
#
# Round 0 contains an account on e0 and times the first HOLD from e1's policy server. Each
# further round kills one NATS server with kill -9 (in turn: the leader of the containment
# bucket's stream, the server holding e1's watch consumer, the server e1 is connected to, the
# server e0 is connected to), contains a new account on e0 right after the kill and another
# 3 s later, times both HOLDs on e1, then restarts the killed server; a last round kills the
# bucket's leader again and releases a containment at once (DUNNO from e1). Every change must be
# answered by e1 within 1 s of e0's answer. Then an edge e2 started last must answer every
# containment still in force (and not the released one) from the bucket alone: what the
# durable path stored. No logs, no workers: about a minute.
# Needs: nats-server (Debian), python3, curl. SMTPSCOPE_BIN selects the binary. KEEP=1 keeps $T.
# TLS=1: the servers speak TLS only (a CA and a server certificate made here with openssl), the
# nodes verify them with `tls_ca`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${SMTPSCOPE_BIN:-}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build -q -p smtpscope)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/smtpscope
fi
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$NATS" ] || { echo "cluster_contain: nats-server missing (apt-get install nats-server)"; exit 1; }
T=$(mktemp -d /tmp/smtpscope-contain.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$T/restarted.pids" ] && while read -r p; do kill "$p" 2>/dev/null || true; done < "$T/restarted.pids"
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
fail() { echo "FAILED: cluster_contain: $*"; for f in "$T"/*.err; do echo "== $f"; tail -5 "$f"; done; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

TLS=${TLS:-0}
SCHEME=nats; TLS_SERVER=""; TLS_NODE=""
if [ "$TLS" = 1 ]; then
    # A CA, a server certificate for 127.0.0.1 and a client certificate (mutual TLS), made here.
    command -v openssl >/dev/null || { echo "cluster_contain: openssl missing"; exit 1; }
    ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "$@" 2>/dev/null; }
    ec -x509 -days 2 -keyout "$T/ca.key" -out "$T/ca.pem" -subj "/CN=smtpscope test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    for who in server client; do
        ec -keyout "$T/$who.key" -out "$T/$who.csr" -subj "/CN=smtpscope test $who"
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\n%s\n' \
            "$( [ $who = server ] && echo serverAuth || echo clientAuth )" \
            "$( [ $who = server ] && echo subjectAltName=IP:127.0.0.1 )" > "$T/$who.ext"
        openssl x509 -req -in "$T/$who.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
            -days 2 -extfile "$T/$who.ext" -out "$T/$who.pem" 2>/dev/null
    done
    SCHEME=tls
    TLS_SERVER="tls { cert_file: \"$T/server.pem\", key_file: \"$T/server.key\", ca_file: \"$T/ca.pem\", verify: true, timeout: 5 }"
    TLS_NODE="tls_ca = \"$T/ca.pem\"
tls_cert = \"$T/client.pem\"
tls_key = \"$T/client.key\""
fi
N1=$(port); N2=$(port); N3=$(port); R1=$(port); R2=$(port); R3=$(port); M1=$(port); M2=$(port); M3=$(port)
for i in 1 2 3; do
    eval "p=\$N$i; r=\$R$i; m=\$M$i"
    cat > "$T/nats$i.conf" <<CONF
server_name: n$i
host: 127.0.0.1
port: $p
http: 127.0.0.1:$m
$TLS_SERVER
jetstream { store_dir: "$T/js$i", max_memory_store: 64MB, max_file_store: 256MB }
cluster { name: smtpscope-contain, host: 127.0.0.1, port: $r, routes: [nats://127.0.0.1:$R1, nats://127.0.0.1:$R2, nats://127.0.0.1:$R3] }
CONF
    "$NATS" -c "$T/nats$i.conf" > "$T/nats$i.err" 2>&1 &
    eval "NATS_PID$i=$!"; PIDS+=($!)
done
SERVERS="[\"$SCHEME://127.0.0.1:$N1\", \"$SCHEME://127.0.0.1:$N2\", \"$SCHEME://127.0.0.1:$N3\"]"
for _ in $(seq 100); do
    grep -q "JetStream cluster new metadata leader" "$T"/nats?.err && break
    sleep 0.1
done

HTTP=$(port); POLICY=$(port)
node() { # name extra-cluster-keys extra-serve-keys
    cat > "$T/$1.toml" <<CONF
[serve]
store = "$T/$1.db"
mode = "enforce"
$3
[cluster]
servers = $SERVERS
role = "edge"
name = "$1"
partitions = 4
edges = ["e0", "e1"]
replicas = 3
$TLS_NODE
$2
CONF
}
node e0 "sink = true" "token = \"secret\"
http = \"127.0.0.1:$HTTP\""
node e1 "" "http = \"\"
policy = [\"127.0.0.1:$POLICY\"]"
POLICY2=$(port)
node e2 "" "http = \"\"
policy = [\"127.0.0.1:$POLICY2\"]"
export BIN POLICY2
if [ "$TLS" = 1 ]; then
    # A CA file that is not there stops a node at start, naming the key.
    sed "s#^tls_ca = .*#tls_ca = \"$T/missing-ca.pem\"#" "$T/e1.toml" > "$T/bad.toml"
    if "$BIN" serve --config "$T/bad.toml" > "$T/bad.out" 2>&1; then fail "a missing tls_ca was accepted"; fi
    grep -q "cluster.tls_ca = $T/missing-ca.pem: must be a readable file" "$T/bad.out" \
        || fail "no clear error for a missing tls_ca: $(cat "$T/bad.out")"
    echo "cluster_contain: a missing tls_ca is refused at start: $(grep cluster.tls_ca "$T/bad.out")"
fi
for n in e0 e1; do
    SMTPSCOPE_LOG=${NODE_LOG:-warn,smtpscope::cluster::nats=info} "$BIN" serve --config "$T/$n.toml" >> "$T/$n.err" 2>&1 &
    PIDS+=($!)
done

python3 - "$T" "$HTTP" "$POLICY" "$NATS" "$N1:$M1:$NATS_PID1" "$N2:$M2:$NATS_PID2" "$N3:$M3:$NATS_PID3" <<'PY' || fail "containment did not reach e1 within 1 s"
import json, os, signal, socket, subprocess, sys, time, urllib.request
T, http, policy, nats = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
servers = {}
for i, a in enumerate(sys.argv[5:8], 1):
    p, m, pid = a.split(":")
    servers[f"n{i}"] = {"port": int(p), "mon": int(m), "pid": int(pid), "conf": f"{T}/nats{i}.conf"}
BUCKET = "KV_smtpscope-contain"

def mon(name, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{servers[name]['mon']}{path}", timeout=2) as r:
        return json.load(r)

def alive(name):
    try:
        mon(name, "/varz")
        return True
    except Exception:
        return False

def kv_leader():
    for n in servers:
        try:
            for a in mon(n, "/jsz?accounts=true&streams=true").get("account_details") or []:
                for s in a.get("stream_detail") or []:
                    if s["name"] == BUCKET and s.get("cluster", {}).get("leader"):
                        return s["cluster"]["leader"]
        except Exception:
            pass

def watch_host():
    # The server leading e1's watch consumer (an ephemeral push consumer on the bucket's stream).
    for n in servers:
        try:
            for a in mon(n, "/jsz?accounts=true&streams=true&consumers=true").get("account_details") or []:
                for s in a.get("stream_detail") or []:
                    if s["name"] != BUCKET:
                        continue
                    for c in s.get("consumer_detail") or []:
                        if c.get("cluster", {}).get("leader"):
                            return c["cluster"]["leader"]
        except Exception:
            pass

def connected(node):
    for n in servers:
        try:
            for c in mon(n, "/connz?limit=1000").get("connections") or []:
                if c.get("name") == f"smtpscope-{node}":
                    return n
        except Exception:
            pass

def ask(account, port=None):
    s = socket.create_connection(("127.0.0.1", port or policy), timeout=5)
    s.sendall(("request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=192.0.2.9\n"
               f"sasl_username={account}\nrecipient=x@example.net\n\n").encode())
    a = s.recv(4096).decode().split("\n")[0]
    s.close()
    return a

incidents = {}

def api(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{http}{path}", method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer secret", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)

def timed(account, release=False, limit=15.0, port=None):
    """Contain (or release) on e0, ask e1 every 20 ms: seconds from e0's answer to e1's first
    HOLD (DUNNO)."""
    want, before = ("action=DUNNO", "action=HOLD") if release else ("action=HOLD", "action=DUNNO")
    assert ask(account).startswith(before), f"{account}: not {before} before"
    if release:
        api(f"/api/incidents/{incidents[account]}/release", {"by": "contain-test"})
    else:
        r = api("/api/contain", {"kind": "account", "id": account, "minutes": 30, "by": "contain-test"})
        incidents[account] = r["incident"]
    t0 = time.monotonic()
    while True:
        el = time.monotonic() - t0
        if ask(account).startswith(want):
            return el
        if el > limit:
            return None
        time.sleep(0.02)

def up_everywhere():
    # e0's HTTP API and e1's policy server answer; the bucket has a leader.
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http}/health", timeout=2).read()
            ask("nobody@example.jp")
            if kv_leader() and watch_host() and connected("e0") and connected("e1"):
                return
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit("cluster_contain: the nodes did not come up")

up_everywhere()
results, bad = [], 0
el = timed("round0@example.jp")
results.append(("no failure", el))
for rnd, what in enumerate(["kv-leader", "watch-consumer", "e1-connection", "e0-connection", "kv-leader"], 1):
    victim = {"kv-leader": kv_leader, "watch-consumer": watch_host,
              "e1-connection": lambda: connected("e1"), "e0-connection": lambda: connected("e0")}[what]()
    if victim is None:
        sys.exit(f"cluster_contain: no server found for {what}")
    os.kill(servers[victim]["pid"], signal.SIGKILL)
    try:
        os.waitpid(servers[victim]["pid"], 0)
    except ChildProcessError:
        pass
    if rnd == 5:
        # A release during the loss of the bucket's leader.
        results.append((f"{what} ({victim}) killed, released at once",
                        timed("round1a@example.jp", release=True)))
    else:
        results.append((f"{what} ({victim}) killed, at once", timed(f"round{rnd}a@example.jp")))
        time.sleep(3)
        results.append((f"{what} ({victim}) killed, 3 s later", timed(f"round{rnd}b@example.jp")))
    p = subprocess.Popen([nats, "-c", servers[victim]["conf"]],
                         stdout=open(f"{T}/nats-{victim}-{rnd}.err", "w"), stderr=subprocess.STDOUT)
    servers[victim]["pid"] = p.pid
    with open(f"{T}/restarted.pids", "a") as f:
        f.write(f"{p.pid}\n")
    while not alive(victim):
        time.sleep(0.1)
    time.sleep(2)
    up_everywhere()
# An edge started now learns everything from the bucket alone (the published sets went out
# before it subscribed): every containment still in force, not the released one.
late = subprocess.Popen([os.environ["BIN"], "serve", "--config", f"{T}/e2.toml"],
                        stdout=open(f"{T}/e2.err", "w"), stderr=subprocess.STDOUT,
                        env=dict(os.environ, SMTPSCOPE_LOG="warn"))
with open(f"{T}/restarted.pids", "a") as f:
    f.write(f"{late.pid}\n")
t0 = time.monotonic()
want = {a: ("action=DUNNO" if a == "round1a@example.jp" else "action=HOLD") for a in incidents}
while True:
    try:
        got = {a: ask(a, int(os.environ["POLICY2"])).split(" ")[0] for a in want}
    except OSError:
        got = {}
    if got == want:
        break
    if time.monotonic() - t0 > 30:
        print(f"cluster_contain: the late edge e2 answers {got}, not {want}")
        sys.exit(1)
    time.sleep(0.2)
print(f"cluster_contain: edge e2 started last answers all {len(want)} from the bucket after {time.monotonic() - t0:.1f} s")
for what, el in results:
    ok = el is not None and el < 1.0
    bad += not ok
    print(f"cluster_contain: {what}: " + (f"answered after {el:.3f} s" if el is not None else "not answered within 15 s")
          + ("" if ok else "  <-- too late"))
sys.exit(1 if bad else 0)
PY
echo "cluster_contain: ok"
