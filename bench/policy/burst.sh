#!/usr/bin/env bash
# Connection-burst benchmark of the policy server: a fresh `smtpscope serve` gets BURST policy
# connections at once (as when many Postfix smtpd processes start together), and a client
# connecting right after, then one every 10 ms for a second, is timed (bench/policy/burst.py).
# With SMTPSCOPE_BASELINE_BIN the two builds alternate, ROUNDS times each, each round on a
# fresh server. Prints one JSON line per run and writes them to
# bench/policy/results/burst-<date>.jsonl.
#   BURST=500 ROUNDS=5 bench/policy/burst.sh
#   SMTPSCOPE_BIN=... SMTPSCOPE_BASELINE_BIN=/path/to/older/smtpscope bench/policy/burst.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BURST=${BURST:-500}
ROUNDS=${ROUNDS:-5}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ -n "${SMTPSCOPE_BIN:-}" ] || (cd "$ROOT" && cargo build -q --release -p smtpscope)
SCOPE=${SMTPSCOPE_BIN:-$TARGET/release/smtpscope}

# shellcheck source=bench/policy/common.sh
. "$HERE/common.sh"
scratch burst
OUT=$T/results.jsonl

run() { # name binary
    start_serve "$2" "$T"
    python3 "$HERE/burst.py" "$POLICY_PORT" "$BURST" "$SERVE_PID" | sed "s/^{/{\"server\":\"$1\",/" | tee -a "$OUT"
    kill -TERM "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=
}
for _ in $(seq 1 "$ROUNDS"); do
    run smtpscope "$SCOPE"
    [ -z "${SMTPSCOPE_BASELINE_BIN:-}" ] || run smtpscope-baseline "$SMTPSCOPE_BASELINE_BIN"
done
mkdir -p "$HERE/results"
cp "$OUT" "$HERE/results/burst-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
