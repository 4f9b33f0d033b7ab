#!/usr/bin/env bash
# The Debian package, end to end (root; run by tests/run.sh, not under QUICK=1):
#   1. cargo-deb (installed with `cargo install cargo-deb --version $CARGO_DEB_VERSION --locked`
#      if missing), the binary, the man pages and completions generated from the CLI definition;
#   2. `dpkg -i`: files, conffile, unit, user smtpscope in group adm, `config --check` of the
#      shipped /etc/smtpscope/smtpscope.toml, `systemd-analyze verify` of the unit, alone and
#      with the shipped hold-queue drop-in (/usr/share/smtpscope/hold-queue.conf) installed as
#      the operator would (what it lifts is read back; that sudo postsuper then works under
#      systemd is not tested: CI has no systemd);
#   3. the unit's own ExecStart command, run as the package's user with `runuser` (CI has no
#      systemd), on loopback ports of our own, answers /health;
#   4. `dpkg --purge` removes the files and the state directory.
# Prints the time of each step.
#
# PACKAGE_PROFILE (default `dev`) chooses the binary that goes into the test's package: `dev`
# packages the debug binary tests/run.sh has already built, because this test is about the
# package (files, user, unit, start-up), not the binary's speed, and a release build from
# scratch costs CI more than 20 minutes on two cores. `PACKAGE_PROFILE=release` builds and
# packages the release binary, as `cargo deb -p smtpscope` does for a real package.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "FAILED: package.sh installs a package: run as root"; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
step() { echo "package: $1 ($(( $(date +%s) - T0 )) s)"; }
T0=$(date +%s)
fail() { echo "FAILED: package: $*"; exit 1; }

# Pinned: packaging a dev-profile binary is accepted by this version (with a warning).
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked -q || fail "cannot install cargo-deb"
fi
PROFILE=${PACKAGE_PROFILE:-dev}
case "$PROFILE" in
    dev) PROFILE_DIR=debug ;;
    release) PROFILE_DIR=release ;;
    *) fail "PACKAGE_PROFILE must be dev or release, not $PROFILE" ;;
esac
step "cargo-deb $(cargo deb --version 2>/dev/null | head -1)"
cargo build -q --profile "$PROFILE" -p smtpscope
step "$PROFILE build"
BIN=$TARGET/$PROFILE_DIR/smtpscope
GEN=crates/smtpscope/debian/generated
rm -rf "$GEN"
mkdir -p "$GEN/man" "$GEN/completions"
"$BIN" man "$GEN/man"
gzip -9n "$GEN"/man/*.1
"$BIN" completions bash > "$GEN/completions/smtpscope.bash"
"$BIN" completions zsh > "$GEN/completions/_smtpscope"
"$BIN" completions fish > "$GEN/completions/smtpscope.fish"
# --fast: quicker compression (the test's package is thrown away).
DEB=$(cargo deb -p smtpscope --no-build --profile "$PROFILE" --fast -o "$TARGET/debian/" 2>/dev/null | tail -1)
[ -f "$DEB" ] || fail "cargo deb wrote no package"
step "built $(basename "$DEB") ($(du -k "$DEB" | cut -f1) KiB)"

DROPIN_DIR=/etc/systemd/system/smtpscope.service.d
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true
    rm -f "$DROPIN_DIR/hold-queue.conf"; rmdir "$DROPIN_DIR" 2>/dev/null || true
    dpkg --purge smtpscope >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -i "$DEB" >/dev/null || fail "dpkg -i"
UNIT=$(dpkg -L smtpscope | grep '/systemd/system/smtpscope.service$' || true)
[ -n "$UNIT" ] || fail "no systemd unit installed"
for f in /usr/bin/smtpscope /etc/smtpscope/smtpscope.toml "$UNIT" \
         /usr/share/man/man1/smtpscope.1.gz /usr/share/man/man1/smtpscope-serve.1.gz \
         /usr/share/bash-completion/completions/smtpscope /usr/share/zsh/vendor-completions/_smtpscope \
         /usr/share/fish/vendor_completions.d/smtpscope.fish /usr/share/smtpscope/hold-queue.conf; do
    [ -f "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}\n' smtpscope | grep -q /etc/smtpscope/smtpscope.toml || fail "the config is no conffile"
id -nG smtpscope | tr ' ' '\n' | grep -qx adm || fail "user smtpscope is not in group adm"
[ "$(stat -c %U /var/lib/smtpscope)" = smtpscope ] || fail "/var/lib/smtpscope is not smtpscope's"
/usr/bin/smtpscope config --check /etc/smtpscope/smtpscope.toml >/dev/null || fail "the shipped config is refused"
zcat /usr/share/man/man1/smtpscope-analyze.1.gz | grep -qF 'abuse\-reports' || fail "man page without the options"
if command -v systemd-analyze >/dev/null; then
    # Only this unit's own problems fail: other units on the host are not ours.
    out=$(systemd-analyze verify "$UNIT" 2>&1 || true)
    if echo "$out" | grep -i "smtpscope.service" | grep -qiv "postfix.service"; then
        echo "$out"; fail "systemd-analyze verify"
    fi
    step "systemd-analyze verify: ok"
    # The hold-queue drop-in, installed as docs/OPERATIONS.md says: verify reads it with the
    # unit (a bad key in it is reported with its path, which names smtpscope.service.d).
    [ ! -e "$DROPIN_DIR" ] || fail "$DROPIN_DIR exists already: not ours to touch"
    mkdir -p "$DROPIN_DIR"
    cp /usr/share/smtpscope/hold-queue.conf "$DROPIN_DIR/"
    out=$(systemd-analyze verify "$UNIT" 2>&1 || true)
    if echo "$out" | grep -i "smtpscope.service" | grep -qiv "postfix.service"; then
        echo "$out"; fail "systemd-analyze verify with the hold-queue drop-in"
    fi
    grep -qx 'NoNewPrivileges=no' "$DROPIN_DIR/hold-queue.conf" || fail "the drop-in does not lift NoNewPrivileges"
    grep -qx 'ReadWritePaths=/var/spool/postfix -/run/sudo' "$DROPIN_DIR/hold-queue.conf" \
        || fail "the drop-in does not open the spool"
    grep -qx 'NoNewPrivileges=yes' "$UNIT" || fail "the unit itself no longer sets NoNewPrivileges=yes"
    rm -f "$DROPIN_DIR/hold-queue.conf"; rmdir "$DROPIN_DIR"
    step "systemd-analyze verify with the hold-queue drop-in: ok"
else
    fail "systemd-analyze missing (apt-get install systemd)"
fi
step "installed"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); POLICY=$(free_port)
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
LOG=$(mktemp)
# The unit's command as is, with our own loopback ports laid over the config's.
# shellcheck disable=SC2086
runuser -u smtpscope -- $EXEC --http "127.0.0.1:$HTTP" --policy "127.0.0.1:$POLICY" >"$LOG" 2>&1 &
PID=$!
ok=""
for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$HTTP/health" | grep -q '"ok"'; then ok=1; break; fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
done
[ -n "$ok" ] || { cat "$LOG"; fail "the unit's command did not answer /health"; }
# The store the command created is the package user's: it ran as smtpscope.
[ "$(stat -c %U /var/lib/smtpscope/smtpscope.db)" = smtpscope ] || fail "not running as smtpscope"
kill "$PID"; wait "$PID" 2>/dev/null || true
PID=""
step "ExecStart as smtpscope answered /health"

dpkg --purge smtpscope >/dev/null || fail "dpkg --purge"
[ ! -e /usr/bin/smtpscope ] || fail "/usr/bin/smtpscope left after purge"
[ ! -e /var/lib/smtpscope ] || fail "/var/lib/smtpscope left after purge"
trap - EXIT
step "purged"
echo "package: ok"
