#!/usr/bin/env bash
# Memory per tracked account (issue 12): the engine fed a generated log of ACCOUNTS distinct
# authenticated accounts (each MSGS messages a day from IPS addresses of its own /24, its own
# HELO, one Dovecot login a day; crates/detect/examples/account_memory.rs), at 100,000 and
# 1,000,000 accounts. Prints one JSON line per run (the engine's live heap from a counting
# allocator, peak RSS, tracked accounts, bytes per account) and a Markdown table; writes them
# to bench/out/memory/ (gitignored).
#   bench/memory/run.sh                 # 100k and 1M accounts, 3 messages, 2 addresses, 1 day
#   SIZES="100000" MSGS=5 IPS=3 DAYS=2 bench/memory/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIZES=${SIZES:-"100000 1000000"}
MSGS=${MSGS:-3}
IPS=${IPS:-2}
DAYS=${DAYS:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ -n "${MEMORY_BIN:-}" ] || (cd "$ROOT" && cargo build -q --release -p detect --example account_memory)
BIN=${MEMORY_BIN:-$TARGET/release/examples/account_memory}
OUT=$ROOT/bench/out/memory
mkdir -p "$OUT"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
commit=$(cd "$ROOT" && git rev-parse --short HEAD)
for n in $SIZES; do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    "$BIN" "$n" "$MSGS" "$IPS" "$DAYS" | sed "s/^{/{\"commit\":\"$commit\",\"utc\":\"$(date -u +%H:%M)\",\"load_before\":\"$load\",/" | tee -a "$OUT/$stamp.jsonl"
done
python3 - "$OUT/$stamp.jsonl" <<'PY' | tee "$OUT/$stamp.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| accounts fed | msgs/day | addresses | days | lines | CPU s | engine state | hijack accounts tracked | extrusion entities | bytes per tracked account (heap + packing dictionaries) | peak RSS |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print("| {:,} | {} | {} | {} | {:,} | {:.1f} | {:.1f} MiB | {:,} | {:,} | **{:,.0f}** | {:.1f} MiB |".format(
        r["accounts"], r["msgs_per_day"], r["ips"], r["days"], r["lines"], r["cpu_s"],
        r["state_bytes"] / 2**20, r["hijack_accounts"], r["extrusion_entities"],
        r.get("bytes_per_tracked_account",
              (r["state_bytes"] + r.get("packing_dictionary_bytes", 0)) / max(r["hijack_accounts"], 1)),
        r["peak_rss_bytes"] / 2**20))
PY
