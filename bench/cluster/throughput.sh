#!/usr/bin/env bash
# Events per second through the cluster's workers (docs/SCALE.md), on this machine:
# one nats-server (JetStream, file storage, R1) on 127.0.0.1; one edge publishes LINES lines of a
# simulated day (`smtpscope simulate --users 300 --days 1 --seed 3`) into the event stream and
# goes idle; then K workers (K in WORKERS, 12 partitions) are started on the full stream and
# timed until it is empty (work-queue retention: an event leaves the stream when its worker
# acknowledges it, after the snapshot that covers it; snapshot_interval 1 s). Each K gets its
# own streams (prefix bK). Prints: publish rate of the edge, then per K the events/s.
#   SMTPSCOPE_BIN=target/release/smtpscope LINES=300000 WORKERS="1 2 4" bench/cluster/throughput.sh
set -euo pipefail
BIN=${SMTPSCOPE_BIN:-target/release/smtpscope}
LINES=${LINES:-300000}
WORKERS=${WORKERS:-"1 2 4"}
T=$(mktemp -d /tmp/smtpscope-bench-cluster.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$T"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$BIN" simulate --users 300 --days 1 --seed 3 --out "$T/sim" >/dev/null
head -n "$LINES" "$T/sim/mail.log" > "$T/day.log"
N=$(port); M=$(port)
nats-server -a 127.0.0.1 -p "$N" -m "$M" -js -sd "$T/js" > "$T/nats.err" 2>&1 & PIDS+=($!)
sleep 1
msgs() { # messages in stream $1
    curl -s "http://127.0.0.1:$M/jsz?streams=true" | python3 -c "
import json,sys
d=json.load(sys.stdin)
n=0
for a in d.get('account_details') or []:
    for s in a.get('stream_detail') or []:
        if s['name']==sys.argv[1]: n=s['state']['messages']
print(n)" "$1"
}
conf() { # name role prefix workers index
    cat > "$T/$1.toml" <<CONF
[input]
year = 2026
tz = "UTC"
[serve]
store = "$T/$1.db"
http = ""
follow = [$( [ "$2" = edge ] && echo "\"$T/day.log\"" )]
follow_start = "start"
[cluster]
servers = ["nats://127.0.0.1:$N"]
role = "$2"
name = "$1"
prefix = "$3"
partitions = 12
workers = $4
worker_index = $5
edges = ["e0"]
snapshot_interval = "1s"
CONF
}
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for K in $WORKERS; do
    P="b$K"
    conf "e$K" edge "$P" 1 0
    sed -i "s/name = \"e$K\"/name = \"e0\"/" "$T/e$K.toml"
    t0=$(date +%s.%N)
    SMTPSCOPE_LOG=warn "$BIN" serve --config "$T/e$K.toml" 2>>"$T/e$K.err" & EPID=$!; PIDS+=($EPID)
    last=-1; stable=0
    while :; do
        n=$(msgs "${P}_EVENTS"); [ "$n" = "$last" ] && [ "$n" -gt 0 ] && stable=$((stable+1)) || stable=0
        last=$n; [ $stable -ge 3 ] && break; sleep 1
    done
    t1=$(date +%s.%N)
    kill "$EPID"; wait "$EPID" 2>/dev/null || true
    echo "K=$K: edge published $n events in $(python3 -c "print(round($t1-$t0-3,1))") s ($(python3 -c "print(int($n/($t1-$t0-3)))") events/s incl. marks)"
    t0=$(date +%s.%N)
    wp=()
    for i in $(seq 0 $((K-1))); do
        conf "w$K-$i" worker "$P" "$K" "$i"
        SMTPSCOPE_LOG=warn "$BIN" serve --config "$T/w$K-$i.toml" 2>>"$T/w$K-$i.err" & wp+=($!); PIDS+=($!)
    done
    while [ "$(msgs "${P}_EVENTS")" -gt 0 ]; do sleep 0.5; done
    t1=$(date +%s.%N)
    for p in "${wp[@]}"; do kill "$p"; done
    echo "K=$K workers: $n events in $(python3 -c "print(round($t1-$t0,1))") s = $(python3 -c "print(int($n/($t1-$t0)))") events/s"
done
