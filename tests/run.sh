#!/usr/bin/env bash
# Runs every test of smtpscope: formatting and clippy, the Rust tests of all crates (unit,
# corpus, integration), then the end-to-end tests with real servers on loopback (Postfix +
# Dovecot + smtpscope serve + headless Chromium; the HTML report in Chromium,
# tests/e2e/report.sh; the dashboard's overview and incident pages, tests/e2e/dashboard.sh;
# the scenario library tests/e2e/scenarios/;
# pmacct + smtpscope sflow; promtool on the example alerting rules; the cluster on three
# nats-servers, tests/e2e/cluster.sh, and its containment across server losses, plain and with
# TLS, tests/e2e/cluster_contain.sh; the Debian package built,
# installed and its unit's command started: tests/e2e/package.sh), then every fuzz
# target for FUZZ_SECS seconds, as many at a time as cores (coverage-guided libFuzzer on the
# stable toolchain, fuzz/run.sh; the targets are built in the background at idle priority from
# the start, FUZZ_BUILD_IN_BACKGROUND=0 to build them only in the fuzz stage).
# Missing Debian packages are installed when run as root. Everything it reads is in the
# repository (tests/data/) or made by the tests.
#
#   tests/run.sh            everything
#   QUICK=1 tests/run.sh    fmt, clippy and the Rust tests only
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CARGO_TERM_COLOR=never
# Each stage's heading says when it began (UTC, and seconds since this script started), so a
# slow CI run shows where its time went.
stage() { echo "== $* [$(date -u +%T), ${SECONDS}s]"; }

# The fuzz build (instrumented, in fuzz/target, about 850 CPU-seconds on 2 cores) starts now, in
# the background at idle priority: it uses the CPU the tests leave idle (the end-to-end tests
# mostly wait on their servers: 230 of 700 core-seconds busy on the 2-core VM), and a test never
# waits for it. It needs its build dir (about 2 GB) beside the workspace's (about 3.6 GB), so it
# starts only with FUZZ_BACKGROUND_MIN_FREE_GB free; otherwise the fuzz stage builds as before.
fuzz_build_log=/tmp/smtpscope-fuzz-build.log
fuzz_build_pid=""
stop_fuzz_build() { [ -z "$fuzz_build_pid" ] || kill -- "-$fuzz_build_pid" 2>/dev/null || true; }
trap stop_fuzz_build EXIT
free_gb=$(df -Pk . | awk 'NR==2{print int($4 / 1048576)}')
if [ "${QUICK:-0}" != 1 ] && [ "${FUZZ_BUILD_IN_BACKGROUND:-1}" = 1 ]; then
    if ((free_gb >= ${FUZZ_BACKGROUND_MIN_FREE_GB:=8})); then
        # nice 19, and SCHED_IDLE where chrt exists: the build runs only on a core nothing else
        # wants. Not setsid: a new session is a new scheduler autogroup, which gets an equal
        # share of the CPU whatever its tasks' priority (clippy took 355 s instead of 190 so).
        # `set -m` gives the build a process group of its own instead, stopped as a whole if
        # this script stops early.
        idle=(nice -n 19)
        command -v chrt >/dev/null && idle+=(chrt --idle 0)
        command -v ionice >/dev/null && idle+=(ionice -c 2 -n 7)
        set -m
        FUZZ_BUILD_ONLY=1 "${idle[@]}" bash fuzz/run.sh >"$fuzz_build_log" 2>&1 &
        fuzz_build_pid=$!
        set +m
        echo "== fuzz build started in the background at idle priority (log: $fuzz_build_log)"
    else
        echo "== fuzz build not in the background: ${free_gb} GB free, under FUZZ_BACKGROUND_MIN_FREE_GB=$FUZZ_BACKGROUND_MIN_FREE_GB"
    fi
fi

lint_fail=0
if cargo fmt --version >/dev/null 2>&1 && cargo clippy --version >/dev/null 2>&1; then
    stage "cargo fmt --check"
    cargo fmt --all --check || { echo "FAILED: cargo fmt --all --check (run cargo fmt --all)"; lint_fail=1; }
    stage "cargo clippy -D warnings"
    cargo clippy -q --workspace --all-targets -- -D warnings || { echo "FAILED: cargo clippy"; lint_fail=1; }
else
    echo "FAILED: rustfmt or clippy missing (tests/install-deps.sh installs them with rustup)"
    lint_fail=1
fi

stage "cargo test (workspace)"
cargo test --workspace --all-targets 2>&1 | tee /tmp/smtpscope-cargo-test.log | grep -E "^test result|FAILED|panicked|error(\[|:)" || true
if grep -qE "^test result: FAILED|error: test failed|error(\[E[0-9]+\])?: " /tmp/smtpscope-cargo-test.log; then
    echo "cargo test failed"; tail -50 /tmp/smtpscope-cargo-test.log; exit 1
fi
passed=$(grep -E "^test result: ok" /tmp/smtpscope-cargo-test.log | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
echo "cargo tests passed: $passed"
if [ "${QUICK:-0}" = 1 ]; then
    echo "$passed passed, $lint_fail failed"
    exit "$lint_fail"
fi

bash tests/install-deps.sh
cargo build -q -p smtpscope
export SMTPSCOPE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/smtpscope"
export SMTPSCOPE="$SMTPSCOPE_BIN"
e2e_pass=0; e2e_fail=0
for t in tests/e2e/run.sh tests/e2e/report.sh tests/e2e/dashboard.sh tests/e2e/scenarios.sh tests/e2e/sflow_pmacct.sh tests/e2e/prometheus_rules.sh tests/e2e/cluster.sh tests/e2e/cluster_contain.sh "TLS=1 tests/e2e/cluster_contain.sh" tests/e2e/package.sh; do
    stage "$t"
    # The package test may install cargo-deb from source first: more time. The cluster tests
    # are bounded (issue 13: under 3 minutes).
    limit=600
    case "$t" in
        tests/e2e/package.sh) limit=1200 ;;
        *cluster*) limit=180 ;;
    esac
    # "VAR=value script": the script run with that variable.
    case "$t" in *" "*) vars=${t% *}; script=${t##* } ;; *) vars=""; script=$t ;; esac
    # shellcheck disable=SC2086
    if timeout "$limit" env $vars bash "$script"; then e2e_pass=$((e2e_pass+1)); else echo "FAILED: $t"; e2e_fail=$((e2e_fail+1)); fi
done

# What the build dirs take and what is left (CI's disk once ran out in the fuzz build).
disk_report() { echo "== disk: $(du -sh "${CARGO_TARGET_DIR:-$ROOT/target}" fuzz/target 2>/dev/null | cut -f1 | paste -sd' ') in build dirs, $(df -h . | awk 'NR==2{print $4}') free"; }
disk_report
# Nothing after this point uses the workspace's build dir; .ci/run asks for it to be freed
# before the fuzz build (a CI disk too small for both once stopped the fuzz build).
if [ "${FREE_BUILD_DIR_BEFORE_FUZZ:-0}" = 1 ]; then
    stage "freeing the workspace's build dir for the fuzz build (FREE_BUILD_DIR_BEFORE_FUZZ=1)"
    cargo clean -q
    disk_report
fi
if [ -n "$fuzz_build_pid" ]; then
    stage "waiting for the fuzz build begun in the background"
    if wait "$fuzz_build_pid"; then :; else echo "the background fuzz build failed; fuzz/run.sh builds again"; fi
    fuzz_build_pid=""
    cat "$fuzz_build_log"
fi
# 15 s a target in CI (fuzz/run.sh's own default is 25): a bounded smoke run; the build is
# most of the stage's time (fuzz/README.md, "Budget").
stage "fuzz (every target ${FUZZ_SECS:=15} s, fuzz/run.sh)"
export FUZZ_SECS
fuzz_log=/tmp/smtpscope-fuzz.log
if bash fuzz/run.sh 2>&1 | tee "$fuzz_log"; then :; fi
e2e_pass=$((e2e_pass + $(grep -c "^fuzz .*: ok" "$fuzz_log" || true)))
e2e_fail=$((e2e_fail + $(grep -c "^FAILED" "$fuzz_log" || true)))
grep -q "^fuzz: built" "$fuzz_log" || { echo "FAILED: fuzz build"; e2e_fail=$((e2e_fail+1)); }
disk_report

e2e_fail=$((e2e_fail + lint_fail))
stage "done"
echo "$((passed + e2e_pass)) passed, $e2e_fail failed"
[ "$e2e_fail" = 0 ]
