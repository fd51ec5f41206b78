#!/usr/bin/env bash
# Media quality in headless Chromium through our page against a direct P2P
# pair, on networks shaped with nftables inside a network namespace of its
# own (nothing leaves it; the rules vanish with it).
#
#   scripts/quality.sh [clean] [loss5] [cap200]      default: all three
#   QUALITY_ASSERT=1 scripts/quality.sh loss5       check the scenario's target
#
# Needs root (for the namespace and nftables), chromium and nftables
# (scripts/install-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- clean loss5 cap200
if ! unshare -n true 2>/dev/null; then
  echo "quality: cannot create a network namespace (needs root); the nftables rules must not touch this host's network" >&2
  exit 1
fi
cargo build --release --locked -q -p sfu-sig
BIN="$PWD/target/release/sfu"
SFU_IN_NETNS=1 exec unshare -n bash -c 'ip link set lo up && exec node scripts/e2e/quality.js "$@"' quality "$BIN" "$@"
