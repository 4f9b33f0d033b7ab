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
# and prints flow samples per second for each, per second of CPU time (user + system: the
# per-core figure, meaningful on a shared machine) and per wall second; best of RUNS runs.
#
# Usage: bench/sflow/run.sh            (REPS=40 -> 234,200 flow samples; RUNS=3)
# Needs: cargo, tshark (apt-get install tshark), python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
REPS=${REPS:-40}
RUNS=${RUNS:-3}

command -v tshark >/dev/null || { echo "tshark not installed (apt-get install tshark)"; exit 1; }
(cd "$ROOT" && cargo build -q --release -p smtpscope && cargo build -q --release -p sflow --example replicate_pcap --example bench_decode)
BIN="$TARGET/release/smtpscope"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The capture from the repository's corpus (tests/data/corpus/sflow.tar.zst).
SRC="$WORK/overflowd-sflow.pcap"
zstd -dc "$ROOT/tests/data/corpus/sflow.tar.zst" | tar -xOf - sflow/overflowd/sflow.pcap >"$SRC"
"$TARGET/release/examples/replicate_pcap" "$SRC" "$WORK/big.pcap" "$REPS"
SIZE=$(stat -c %s "$WORK/big.pcap")

# best_of CMD...: run RUNS times; print "WALL CPU" (seconds) of the run with the least CPU
# time (user + system of the child). On a shared machine the CPU time is the per-core cost.
best_of() {
    python3 - "$RUNS" "$@" <<'PY'
import resource, subprocess, sys, time
runs, cmd = int(sys.argv[1]), sys.argv[2:]
best = None
for _ in range(runs):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if best is None or cpu < best[1]:
        best = (wall, cpu)
print(f"{best[0]:.4f} {best[1]:.4f}")
PY
}

COUNT_JSON=$("$BIN" sflow decode --count "$WORK/big.pcap")
FLOWS=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['flow_samples'])" "$COUNT_JSON")
TSHARK_FLOWS=$(tshark -r "$WORK/big.pcap" -T fields -e sflow_245.sampletype 2>/dev/null |
    tr ',' '\n' | grep -c -x -E '1|3' || true)
[ "$FLOWS" = "$TSHARK_FLOWS" ] || { echo "flow sample counts differ: smtpscope $FLOWS, tshark $TSHARK_FLOWS"; exit 1; }

T_COUNT=$(best_of "$BIN" sflow decode --count "$WORK/big.pcap")
T_JSON=$(best_of "$BIN" sflow decode "$WORK/big.pcap")
T_TSHARK=$(best_of tshark -r "$WORK/big.pcap" -T fields -e sflow_245.sampletype)
INPROC=$("$TARGET/release/examples/bench_decode" 3)

# rate "WALL CPU": flow samples per CPU second (per core) and per wall second.
rate() {
    python3 -c "w, c = map(float, '$1'.split()); print(f'{$FLOWS / c / 1e6:8.3f} M/s per CPU s ({c:7.3f} s CPU) {$FLOWS / w / 1e6:8.3f} M/s wall ({w:7.3f} s)')"
}
echo
echo "capture: $REPS x overflowd/sflow.pcap = $((REPS * 1000)) datagrams, $FLOWS flow samples, $((SIZE / 1000000)) MB"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "tshark:  $(tshark --version 2>/dev/null | head -1)"
echo
echo "smtpscope sflow decode --count      $(rate "$T_COUNT")"
echo "smtpscope sflow decode (JSON)       $(rate "$T_JSON")"
echo "tshark -T fields -e sampletype      $(rate "$T_TSHARK")"
echo "sflow::decode in-process (1 core)   $INPROC"
