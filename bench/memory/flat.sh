#!/usr/bin/env bash
# Is analyze's peak memory flat in the input's length (issue 12)? One simulated ISP population
# (USERS accounts, seed SEED) over DAYS days, so that a longer prefix of the log is more days of
# the same customers, not more customers; `analyze` on the first quarter, half, three quarters
# and the whole of it. Prints per prefix: days covered, peak RSS, the correlator's peak of
# messages in flight and the accounts auth-hijack tracks. Memory should stop growing once the
# log is longer than a deferred message stays in flight (the simulator's dead hosts are retried
# for about three days, then closed as idle a day later, `IDLE_CLOSE_SECS`; a real Postfix
# removes them after `maximal_queue_lifetime`, five days).
#   bench/memory/flat.sh                       # 20,000 users, 12 days (5.6 GB of log, ~5 min)
#   DAYS=8 USERS=10000 SMTPSCOPE=path bench/memory/flat.sh
# Writes the table to bench/out/memory/flat-<stamp>.md (gitignored); the log is cached in
# bench/out/memory/flat-<users>u-<days>d-s<seed>/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
USERS=${USERS:-20000}
DAYS=${DAYS:-12}
SEED=${SEED:-1}
THREADS=${THREADS:-2}
OUT=$ROOT/bench/out/memory
if [[ -z "${SMTPSCOPE:-}" ]]; then
    (cd "$ROOT" && cargo build -q --release -p smtpscope)
    SMTPSCOPE="${CARGO_TARGET_DIR:-$ROOT/target}/release/smtpscope"
fi
[[ -x /usr/bin/time ]] || { echo "need /usr/bin/time (apt-get install time)" >&2; exit 1; }
SIM=$OUT/flat-${USERS}u-${DAYS}d-s$SEED
if [[ ! -s $SIM/mail.log ]]; then
    echo "simulating $USERS users for $DAYS days (seed $SEED) into $SIM ..." >&2
    "$SMTPSCOPE" simulate --users "$USERS" --days "$DAYS" --seed "$SEED" --start 2026-11-10 \
        --out "$SIM" >/dev/null
fi
LOG=$SIM/mail.log
BYTES=$(stat -c %s "$LOG")
stamp=$(date -u +%Y%m%dT%H%M%SZ)
{
    echo "Date: $(date -u +%Y-%m-%dT%H:%MZ); $(cd "$ROOT" && git rev-parse --short HEAD); $USERS users, $DAYS days, seed $SEED, $BYTES bytes; --threads $THREADS; load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| prefix | bytes | ≈ days | wall s | peak RSS MiB | messages in flight (peak) | closed incomplete | accounts tracked (auth-hijack) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for q in 1 2 3 4; do
        n=$((BYTES * q / 4))
        tf=$(mktemp)
        st=$(mktemp)
        # The prefix ends on a whole line (head -c may cut one; the parser counts a cut line as
        # unrecognized, which changes nothing here).
        /usr/bin/time -f '%e %M' -o "$tf" sh -c "head -c $n '$LOG' | '$SMTPSCOPE' analyze --format jsonl --quiet -o /dev/null --tz UTC --threads $THREADS --stats - 2>'$st'"
        read -r wall rss <"$tf"
        python3 - "$st" "$q" "$n" "$wall" "$rss" "$DAYS" <<'PY'
import json, sys
st, q, n, wall, rss, days = sys.argv[1:]
d = None
for line in open(st):
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
c = d["correlator"]
print("| %s/4 | %s | %.1f | %s | %.0f | %s | %s | %s |" % (
    q, format(int(n), ","), int(days) * int(q) / 4, wall, int(rss) / 1024,
    format(c["peak_in_flight"], ","), format(c["incomplete"], ","),
    format(d["hijack_state"]["accounts"], ",")))
PY
        rm -f "$tf" "$st"
    done
} | tee "$OUT/flat-$stamp.md"
