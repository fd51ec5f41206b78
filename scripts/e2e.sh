#!/usr/bin/env bash
# End-to-end tests in real headless Chromium against the real web client.
# Runs inside a fresh network namespace when the machine allows it, so no
# packet can leave; otherwise on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/e2e/run.js ] || { echo "no e2e tests yet"; exit 0; }
cargo build --release --locked -p sfu-sig
BIN="$PWD/target/release/sfu"
if [ -z "${SFU_IN_NETNS:-}" ] && unshare -n true 2>/dev/null; then
  echo "e2e: running in a private network namespace (loopback only)"
  exec unshare -n env SFU_IN_NETNS=1 bash -c 'ip link set lo up && exec node scripts/e2e/run.js "$0"' "$BIN"
fi
echo "e2e: no network namespace available here; running on loopback only"
exec node scripts/e2e/run.js "$BIN"
