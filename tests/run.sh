#!/usr/bin/env bash
# Runs every test of smtpscope: the Rust tests of all crates (unit, corpus, integration), then
# the end-to-end tests with real servers on loopback (Postfix + Dovecot + smtpscope serve +
# headless Chromium; pmacct + smtpscope sflow), then a bounded fuzz run when a nightly toolchain
# and cargo-fuzz are present. Missing Debian packages are installed when run as root.
#
#   tests/run.sh            everything
#   QUICK=1 tests/run.sh    Rust tests only
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TERM_COLOR=never

echo "== cargo test (workspace)"
cargo test --workspace --all-targets 2>&1 | tee /tmp/smtpscope-cargo-test.log | grep -E "^test result|FAILED|panicked|error(\[|:)" || true
if grep -qE "^test result: FAILED|error: test failed|error(\[E[0-9]+\])?: " /tmp/smtpscope-cargo-test.log; then
    echo "cargo test failed"; tail -50 /tmp/smtpscope-cargo-test.log; exit 1
fi
passed=$(grep -E "^test result: ok" /tmp/smtpscope-cargo-test.log | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
echo "cargo tests passed: $passed"
[ "${QUICK:-0}" = 1 ] && exit 0

bash tests/install-deps.sh
cargo build -q -p smtpscope
export SMTPSCOPE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/smtpscope"
export SMTPSCOPE="$SMTPSCOPE_BIN"
e2e_pass=0; e2e_fail=0
for t in tests/e2e/run.sh tests/e2e/sflow_pmacct.sh; do
    echo "== $t"
    if timeout 600 bash "$t"; then e2e_pass=$((e2e_pass+1)); else echo "FAILED: $t"; e2e_fail=$((e2e_fail+1)); fi
done

if rustup toolchain list 2>/dev/null | grep -q nightly && command -v cargo-fuzz >/dev/null; then
    for t in sflow_decode sflow_collect; do
        echo "== fuzz $t (30 s)"
        mkdir -p fuzz/corpus/$t
        if (cd fuzz && unset CARGO_TARGET_DIR && timeout 600 cargo +nightly fuzz run $t corpus/$t ../../shared/corpus/sflow/vectors/gopacket -- -max_len=65536 -max_total_time=30 >/tmp/smtpscope-fuzz-$t.log 2>&1); then
            e2e_pass=$((e2e_pass+1)); tail -1 /tmp/smtpscope-fuzz-$t.log
        else
            echo "FAILED: fuzz $t"; tail -30 /tmp/smtpscope-fuzz-$t.log; e2e_fail=$((e2e_fail+1))
        fi
    done
else
    echo "== fuzz skipped: no nightly toolchain or cargo-fuzz here (see fuzz/README.md)"
fi

echo "$((passed + e2e_pass)) passed, $e2e_fail failed"
[ "$e2e_fail" = 0 ]
