#!/usr/bin/env bash
# The Debian package, as an operator gets it: builds it with crates.io's
# cargo-deb (installed if missing), installs it on this machine with
# dpkg -i, runs `sfu --version` and `sfu --config /etc/sfu/sfu.toml --check`,
# checks the systemd unit with `systemd-analyze verify`, then purges it.
# Needs root (dpkg); CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'package: %s\n' "$*"; }

if ! command -v cargo-deb >/dev/null; then
  log "installing cargo-deb from crates.io"
  timeout 900 cargo install cargo-deb --locked --version '^3'
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
deb=$(timeout 1200 cargo deb -p sfu-sig --locked --strip 2>/dev/null | awk 'END { print }')
[ -f "$deb" ] || { echo "package: cargo deb made no package" >&2; exit 1; }
log "built $deb ($(du -h "$deb" | cut -f1))"

# Whatever happens, leave the machine as it was.
cleanup() { $SUDO dpkg --purge sfu >/dev/null 2>&1 || true; }
trap cleanup EXIT
$SUDO dpkg -i "$deb" >/dev/null

version=$(/usr/bin/sfu --version)
[ "$version" = "sfu $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | awk 'NR <= 1')" ] ||
  { echo "package: sfu --version says: $version" >&2; exit 1; }
log "installed: $version"
/usr/bin/sfu --config /etc/sfu/sfu.toml --check
# An invalid configuration is refused with its field, exit code 2.
rc=0; /usr/bin/sfu --config /etc/sfu/sfu.toml --check --rtc-ports 9-1 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "package: --check accepted a bad port range (exit $rc)" >&2; exit 1; }
unit=/usr/lib/systemd/system/sfu.service
[ -f "$unit" ] || unit=/lib/systemd/system/sfu.service
# verify prints nothing when the unit is sound; anything it says fails the test.
out=$(systemd-analyze verify "$unit" 2>&1 || true)
if [ -n "$out" ]; then
  echo "package: systemd-analyze verify $unit:" >&2
  echo "$out" >&2
  exit 1
fi
for want in DynamicUser=yes AmbientCapabilities=CAP_NET_BIND_SERVICE LimitNOFILE=; do
  grep -q "^$want" "$unit" || { echo "package: the unit lacks $want" >&2; exit 1; }
done
log "unit verified: $unit"
grep -q '^/etc/sfu/sfu.toml$' /var/lib/dpkg/info/sfu.conffiles ||
  { echo "package: /etc/sfu/sfu.toml is not a conffile" >&2; exit 1; }
log "ok"
