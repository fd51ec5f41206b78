#!/usr/bin/env bash
# Captures the RTP in testdata/rtp/ from Chromium through our page
# (scripts/e2e/capture.js), in a fresh network namespace when the machine
# allows it. Not part of the test command: the captures are committed, and
# the tests read them. Run it again to refresh them (a new Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
export SFU_RTC_TCP_PORT="${SFU_RTC_TCP_PORT:-0}"
cargo build --release --locked -p sfu-sig
BIN="$PWD/target/release/sfu"
DIR=$(mktemp -d /tmp/sfu-capture.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
capture() { # OUT QUERY
  scripts/in-netns.sh capture timeout 180 node scripts/e2e/capture.js "$BIN" "$DIR" "$PWD/testdata/rtp/$1" "$2"
}
# VP8 simulcast, each layer L1T3 (the page's default): the top layer.
capture vp8-l1t3.sfurec ""
# VP9 SVC at 960x540: L3T3_KEY (K-SVC; a top-layer consumer gets the keyframe,
# then the top layer alone) and L3T3 (full SVC: every layer).
capture vp9-l3t3-key.sfurec "&codec=vp9&svc=L3T3_KEY"
capture vp9-l3t3.sfurec "&codec=vp9&svc=L3T3"
# AV1 SVC, L3T3 (libaom): the recording keeps each packet's dependency
# descriptor (extension id 12).
capture av1-l3t3.sfurec "&codec=av1&svc=L3T3"
