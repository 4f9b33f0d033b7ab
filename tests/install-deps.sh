#!/usr/bin/env bash
# Installs what the end-to-end tests need from Debian's packages (idempotent; needs root).
#   postfix dovecot-core  — the real MTA and SASL server of the service's end-to-end test
#   chromium              — the dashboard's browser test
#   pmacct                — the independent sFlow exporter of the sFlow end-to-end test
#   python3, curl         — test drivers
#   zstd, g++             — the fuzz run: unpacking its seeds from tests/data, building libFuzzer
#   prometheus            — promtool, which checks docs/examples/prometheus-rules.yml
#   systemd               — systemd-analyze, which verifies the Debian package's unit
#   nats-server           — the NATS JetStream servers of the cluster test (tests/e2e/cluster.sh)
# and, through rustup, the rustfmt and clippy components that tests/run.sh runs.
set -euo pipefail
if command -v rustup >/dev/null; then
    for c in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
            rustup component add "$c" || { echo "install-deps: cannot install the $c component" >&2; exit 1; }
        fi
    done
fi
PKGS="postfix dovecot-core dovecot-imapd chromium pmacct python3 curl zstd g++ prometheus systemd nats-server"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing:$missing (run as root, or install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# Debian starts daemons on install where it can; the tests run their own private instances.
(postfix stop || true) >/dev/null 2>&1
(pkill -x dovecot || true) >/dev/null 2>&1
(systemctl stop nats-server || true) >/dev/null 2>&1
echo "install-deps: installed$missing"
