#!/usr/bin/env bash
# The HTML report (`analyze --format html`) in headless Chromium: report_browser.py simulates a
# small ISP, writes the report and checks it rendered (figures, sections, nothing fetched).
# The report and its screenshot (report.png) stay in target/e2e-report (REPORT_OUT) for a look.
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
OUT=${REPORT_OUT:-${CARGO_TARGET_DIR:-$ROOT/target}/e2e-report}
python3 "$HERE/report_browser.py" "$BIN" "$OUT"
echo "1 passed, 0 failed"
