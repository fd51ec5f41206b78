#!/usr/bin/env bash
# A room across machines, on one: a real redis-server and three sfu nodes
# on loopback, tested with sfu-load and real Chromium (scripts/e2e/cluster.js).
# Runs inside a fresh network namespace when the machine allows it, so no
# packet can leave; otherwise on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
# These tests run several servers at once: each worker's ICE-TCP listener
# takes any free port (the answers carry it) instead of 7881 + i.
export SFU_RTC_TCP_PORT="${SFU_RTC_TCP_PORT:-0}"
command -v redis-server >/dev/null || { echo "cluster: redis-server is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
cargo build --release --locked -p sfu-sig -p sfu-bench
BIN="$PWD/target/release/sfu"
LOAD="$PWD/target/release/sfu-load"
scripts/in-netns.sh cluster timeout 600 node scripts/e2e/cluster.js "$BIN" "$LOAD"
