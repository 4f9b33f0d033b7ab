#!/usr/bin/env bash
# sFlow decode speed, side by side with tshark on the same file.
#
# Builds a large capture by replicating the datagrams of the corpus's overflowd/sflow.pcap
# (1,000 datagrams, 5,855 flow samples; a real 2011 capture of one agent) REPS times with
# renumbered sequence numbers (crates/sflow/examples/replicate_pcap.rs), then times:
#   1. smtpscope sflow decode --count   (read file, walk pcap, decode every datagram fully)
#   2. smtpscope sflow decode > /dev/null (the same plus one JSON object per datagram)
#   3. tshark -r FILE -T fields -e sflow_245.sampletype (tshark's dissection, fields only)
#   4. the in-process loop of crates/sflow/examples/bench_decode.rs (decode only, one core)
# and prints flow samples per second for each. Wall-clock, best of RUNS runs.
#
# Usage: bench/sflow/run.sh            (REPS=40 -> 234,200 flow samples; RUNS=3)
# Needs: cargo, tshark (apt-get install tshark), python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REPS=${REPS:-40}
RUNS=${RUNS:-3}
SRC="$ROOT/../shared/corpus/sflow/overflowd/sflow.pcap"

command -v tshark >/dev/null || { echo "tshark not installed (apt-get install tshark)"; exit 1; }
(cd "$ROOT" && cargo build -q --release -p smtpscope && cargo build -q --release -p sflow --example replicate_pcap --example bench_decode)
BIN="$TARGET/release/smtpscope"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$TARGET/release/examples/replicate_pcap" "$SRC" "$WORK/big.pcap" "$REPS"
SIZE=$(stat -c %s "$WORK/big.pcap")

now() { date +%s.%N; }
# best_of CMD...: run RUNS times, print the shortest wall time in seconds.
best_of() {
    local best="" t0 t1 d
    for _ in $(seq "$RUNS"); do
        t0=$(now)
        "$@"
        t1=$(now)
        d=$(python3 -c "print($t1 - $t0)")
        if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $d < $best else 1)"; then best=$d; fi
    done
    echo "$best"
}

COUNT_JSON=$("$BIN" sflow decode --count "$WORK/big.pcap")
FLOWS=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['flow_samples'])" "$COUNT_JSON")
TSHARK_FLOWS=$(tshark -r "$WORK/big.pcap" -T fields -e sflow_245.sampletype 2>/dev/null |
    tr ',' '\n' | grep -c -x -E '1|3' || true)
[ "$FLOWS" = "$TSHARK_FLOWS" ] || { echo "flow sample counts differ: smtpscope $FLOWS, tshark $TSHARK_FLOWS"; exit 1; }

T_COUNT=$(best_of sh -c "'$BIN' sflow decode --count '$WORK/big.pcap' >/dev/null")
T_JSON=$(best_of sh -c "'$BIN' sflow decode '$WORK/big.pcap' >/dev/null")
T_TSHARK=$(best_of sh -c "tshark -r '$WORK/big.pcap' -T fields -e sflow_245.sampletype >/dev/null 2>&1")
INPROC=$("$TARGET/release/examples/bench_decode" 3)

rate() { python3 -c "print(f'{$FLOWS / $1 / 1e6:8.3f} M flow samples/s  ({$1:7.3f} s)')"; }
echo
echo "capture: $REPS x overflowd/sflow.pcap = $((REPS * 1000)) datagrams, $FLOWS flow samples, $((SIZE / 1000000)) MB"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "tshark:  $(tshark --version 2>/dev/null | head -1)"
echo
echo "smtpscope sflow decode --count      $(rate "$T_COUNT")"
echo "smtpscope sflow decode (JSON)       $(rate "$T_JSON")"
echo "tshark -T fields -e sampletype      $(rate "$T_TSHARK")"
echo "sflow::decode in-process (1 core)   $INPROC"
