#!/usr/bin/env bash
# Broadcasters in, viewers out, with clients nobody here wrote: aiortc
# (PyPI) over WHIP and WHEP, Debian's ffmpeg over RTMP, and real Chromium
# pages through the web client (scripts/e2e/ingest.js).
# Runs inside a fresh network namespace when the machine allows it, so no
# packet can leave; otherwise on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
# These tests run several servers at once: each worker's ICE-TCP listener
# takes any free port (the answers carry it) instead of 7881 + i.
export SFU_RTC_TCP_PORT="${SFU_RTC_TCP_PORT:-0}"
PY="$PWD/target/e2e-venv/bin/python"
"$PY" -c 'import aiortc' 2>/dev/null || { echo "ingest: aiortc is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "ingest: ffmpeg is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
cargo build --release --locked -p sfu-sig
BIN="$PWD/target/release/sfu"
scripts/in-netns.sh ingest timeout 600 node scripts/e2e/ingest.js "$BIN" "$PY"
