#!/usr/bin/env bash
# docs/examples/prometheus-rules.yml is valid for Prometheus: `promtool check rules` (Debian
# package prometheus, installed by tests/install-deps.sh). That every metric it names is
# exported is checked by crates/smtpscope/tests/prometheus_rules.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v promtool >/dev/null || { echo "FAILED: promtool missing (apt-get install prometheus)"; exit 1; }
promtool check rules docs/examples/prometheus-rules.yml
