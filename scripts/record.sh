#!/usr/bin/env bash
# Recording and playback end to end (scripts/e2e/record.js): Chromium
# pages publish, `sfu record` records, Debian's ffprobe and ffmpeg read the
# muxed files and Chromium plays them. Runs inside a fresh network
# namespace when the machine allows it, so no packet can leave; otherwise
# on loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
# These tests run several servers at once: each worker's ICE-TCP listener
# takes any free port (the answers carry it) instead of 7881 + i.
export SFU_RTC_TCP_PORT="${SFU_RTC_TCP_PORT:-0}"
command -v ffprobe >/dev/null || { echo "record: ffprobe is missing (scripts/install-deps.sh installs ffmpeg)" >&2; exit 1; }
cargo build --release --locked -p sfu-sig
BIN="$PWD/target/release/sfu"
DIR=$(mktemp -d /tmp/sfu-record-e2e.XXXXXX)
# A disk that fills: a 512 KiB tmpfs (needs root, as the rest of the
# end-to-end runs do for their network namespaces).
FULL="$DIR/full-disk"
mkdir -p "$FULL"
mount -t tmpfs -o size=512k tmpfs "$FULL" || { echo "record: cannot mount a tmpfs for the full-disk test (run as root)" >&2; exit 1; }
trap 'umount "$FULL" 2>/dev/null; rm -rf "$DIR"' EXIT
scripts/in-netns.sh record timeout 600 node scripts/e2e/record.js "$BIN" "$DIR" "$FULL"
