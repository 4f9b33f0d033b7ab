#!/usr/bin/env bash
# The dashboard's overview and incident pages in headless Chromium: dashboard_browser.py
# simulates a small ISP, has `smtpscope serve` follow its log (observe mode), and checks every
# figure against counts it takes from the log and from `analyze` (see its docstring).
# Screenshots (overview.png, incident.png) stay in target/e2e-dashboard (DASHBOARD_OUT).
#
# Needs (Debian): chromium python3. SMTPSCOPE_BIN selects the binary (default: build the debug one).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${SMTPSCOPE_BIN:-}
if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build -q -p smtpscope)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/smtpscope
fi
command -v chromium >/dev/null || { echo "FAIL: chromium is not installed"; exit 1; }
OUT=${DASHBOARD_OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/e2e-dashboard}
python3 "$HERE/dashboard_browser.py" "$BIN" "$OUT"
echo "1 passed, 0 failed"
