#!/usr/bin/env bash
# Reach end to end (scripts/e2e/reach.js): data channels between Chromium
# pages and an aiortc client, ICE over TCP when UDP is blocked, TURN through
# Debian's coturn. Runs inside a fresh network namespace when the machine
# allows it, so no packet can leave; otherwise on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/e2e-venv/bin/python ] || { echo "reach: aiortc is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
cargo build --release --locked -p sfu-sig
BIN="$PWD/target/release/sfu"
DIR=$(mktemp -d /tmp/sfu-reach-e2e.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
scripts/in-netns.sh reach timeout 600 node scripts/e2e/reach.js "$BIN" "$DIR"
