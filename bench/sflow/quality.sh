#!/usr/bin/env bash
# sFlow detection quality on simulated exchange points (issue 15).
#
# For each seed: `smtpscope simulate-sflow` writes three days of sFlow (1:2000) from a
# simulated exchange point with the truth about every sender; `smtpscope sflow analyze` runs
# on the capture twice, without and with `--labels verdicts.jsonl` (log verdicts for 30% of
# the bad senders plus 10% wrong ones); `smtpscope evaluate-sflow` scores each run (with
# verdicts, the told addresses are left out of the score; the run without verdicts is scored
# both on all addresses and, for a like-for-like comparison, without the told ones). Prints per seed and pooled over
# the seeds: recall by sampled packets (>= 1, 5, 20), precision, and the share of each
# class's addresses flagged; and the slowest analyze time.
#
# Usage: bench/sflow/quality.sh [SEEDS...]     (default: training seeds 1 2 3 4 5)
#        SEEDS="101 102 ..." bench/sflow/quality.sh     (test seeds: 101..110)
# Env: DAYS (3), SAMPLING (2000), SCALE (1.0), ANALYZE_ARGS (extra sflow analyze options),
#      NOISY_SHARE (0.1: wrong verdicts, as a share of the right ones, in verdicts.jsonl),
#      KEEP=DIR (keep the outputs there instead of deleting them).
# Needs: cargo, python3.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
DAYS=${DAYS:-3}
SAMPLING=${SAMPLING:-2000}
SCALE=${SCALE:-1.0}
NOISY_SHARE=${NOISY_SHARE:-0.1}
ANALYZE_ARGS=${ANALYZE_ARGS:-}
if [ $# -gt 0 ]; then SEEDS="$*"; else SEEDS=${SEEDS:-1 2 3 4 5}; fi

(cd "$ROOT" && cargo build -q --release -p smtpscope)
BIN="$TARGET/release/smtpscope"
if [ -n "${KEEP:-}" ]; then WORK=$KEEP; mkdir -p "$WORK"; else
    WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT; fi

for seed in $SEEDS; do
    d="$WORK/seed-$seed"
    "$BIN" simulate-sflow --seed "$seed" --days "$DAYS" --sampling "$SAMPLING" --scale "$SCALE" \
        --noisy-share "$NOISY_SHARE" --out "$d" 2>/dev/null
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$BIN" sflow analyze "$d/exchange.pcap" --jsonl "$d/alerts.jsonl" $ANALYZE_ARGS >/dev/null
    t1=$(date +%s.%N)
    # shellcheck disable=SC2086
    "$BIN" sflow analyze "$d/exchange.pcap" --labels "$d/verdicts.jsonl" \
        --jsonl "$d/alerts-told.jsonl" $ANALYZE_ARGS >/dev/null
    "$BIN" evaluate-sflow --json --truth "$d/sflow-truth.jsonl" --alerts "$d/alerts.jsonl" \
        >"$d/score.json"
    "$BIN" evaluate-sflow --json --truth "$d/sflow-truth.jsonl" --alerts "$d/alerts-told.jsonl" \
        --told "$d/verdicts.jsonl" >"$d/score-told.json"
    # The run without verdicts scored on the same addresses (the told ones left out): the
    # like-for-like comparison of "at least as good on the other 70%".
    "$BIN" evaluate-sflow --json --truth "$d/sflow-truth.jsonl" --alerts "$d/alerts.jsonl" \
        --told "$d/verdicts.jsonl" >"$d/score-untold.json"
    python3 -c "print(f'{$t1 - $t0:.2f}')" >"$d/analyze-secs"
    [ -n "${KEEP:-}" ] || rm -f "$d/exchange.pcap"
done

NOISY_SHARE=$NOISY_SHARE python3 - "$WORK" $SEEDS <<'PY'
import json, os, sys
work, seeds = sys.argv[1], sys.argv[2:]

def table(name):
    rows, pooled_r, pooled_p, classes = [], {}, [0, 0], {}
    for s in seeds:
        sc = json.load(open(f"{work}/seed-{s}/{name}"))
        rows.append((s, sc))
        for r in sc["recall"]:
            a = pooled_r.setdefault(r["min_sampled"], [0, 0])
            a[0] += r["flagged"]; a[1] += r["bad"]
        pooled_p[0] += sc["true_alarms"]; pooled_p[1] += sc["flagged"]
        for c in sc["classes"]:
            a = classes.setdefault(c["class"], [c["bad"], 0, 0, 0, 0])
            a[1] += c["addresses"]; a[2] += c["visible"]; a[3] += c["flagged"]; a[4] += c["flagged_visible"]
    print(f"{'seed':>6} {'rec>=1':>7} {'rec>=5':>7} {'rec>=20':>7} {'prec':>6} {'flagged':>8} {'false':>6}")
    for s, sc in rows:
        r = {x["min_sampled"]: x["recall"] for x in sc["recall"]}
        print(f"{s:>6} {r[1]:7.3f} {r[5]:7.3f} {r[20]:7.3f} {sc['precision']:6.3f} {sc['flagged']:8} {sc['false_alarms']:6}")
    r = {k: v[0] / v[1] if v[1] else 1.0 for k, v in pooled_r.items()}
    p = pooled_p[0] / pooled_p[1] if pooled_p[1] else 1.0
    print(f"{'pooled':>6} {r[1]:7.3f} {r[5]:7.3f} {r[20]:7.3f} {p:6.3f} {pooled_p[1]:8} {pooled_p[1] - pooled_p[0]:6}")
    print()
    print(f"{'class':<15} {'bad':>4} {'addresses':>9} {'>=5 smp':>8} {'flagged':>8} {'share':>7} {'share >=5':>9}")
    for c, (bad, n, vis, fl, flv) in classes.items():
        sh = 100 * fl / n if n else 0
        shv = 100 * flv / vis if vis else 0
        print(f"{c:<15} {'yes' if bad else 'no':>4} {n:>9} {vis:>8} {fl:>8} {sh:6.1f}% {shv:8.1f}%")

print(f"seeds: {' '.join(seeds)}")
print()
print("== without verdicts ==")
table("score.json")
print()
print("== without verdicts, scored like the run with them (told addresses not scored) ==")
table("score-untold.json")
print()
noisy = float(os.environ.get("NOISY_SHARE", "0.1"))
print(f"== with --labels verdicts.jsonl (30% of bad senders + {noisy:.0%} wrong ones; told addresses not scored) ==")
table("score-told.json")
secs = [float(open(f"{work}/seed-{s}/analyze-secs").read()) for s in seeds]
print()
print(f"sflow analyze wall time per capture: max {max(secs):.2f} s, mean {sum(secs) / len(secs):.2f} s")
PY
