#!/usr/bin/env bash
# The project's test command (README.md): installs what it needs if missing,
# checks formatting and clippy (-D warnings), runs every Rust test, then the
# end-to-end tests in real headless Chromium and Firefox, a room across three
# nodes with a real redis-server (sfu-load and Chromium), broadcasters in and
# viewers out (aiortc over WHIP/WHEP, ffmpeg over RTMP), the Debian package
# (built, installed, checked), the media-quality
# check (Chromium through the server on a clean network,
# on 5 % loss and behind a 200 kbit/s downlink, against P2P) and 20
# start/stop stress cycles.
#
#   scripts/test.sh            everything
#   SFU_SKIP_E2E=1 scripts/test.sh   Rust tests only (no browser)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

if [ -z "${SFU_SKIP_E2E:-}" ]; then
  scripts/install-deps.sh
  log "shell scripts: shellcheck and the pipefail/head check"
  scripts/lint-shell.sh
fi

log "cargo fmt --check and cargo clippy --workspace --all-targets -- -D warnings"
cargo fmt --all --check
timeout 1800 cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz targets are a crate of their own (cargo-fuzz builds them with
# nightly flags); checking them here keeps them compiling with the API.
log "cargo check of the fuzz targets"
(cd fuzz && timeout 900 cargo check --bins --locked)

log "cargo test --workspace"
timeout 1800 cargo test --workspace --locked

if [ -z "${SFU_SKIP_E2E:-}" ]; then
  log "end-to-end tests in headless Chromium"
  timeout 900 scripts/e2e.sh
  log "the Debian package: cargo deb, dpkg -i, sfu --version and --check, systemd-analyze verify"
  timeout 1500 scripts/package.sh
  log "a room across three nodes: redis-server, sfu-load and Chromium; a node killed, Redis stopped"
  timeout 700 scripts/cluster.sh
  log "ingest: aiortc over WHIP and WHEP, ffmpeg over RTMP, Chromium pages watching"
  timeout 700 scripts/ingest.sh
  log "recording: Chromium calls recorded with sfu record, read by ffprobe/ffmpeg, played back in Chromium"
  timeout 700 scripts/record.sh
  log "reach: data channels (Chromium pages and aiortc), ICE over TCP with UDP blocked, TURN through coturn"
  timeout 700 scripts/reach.sh
  log "media quality in Chromium: clean, 5 % loss both ways, 200 kbit/s downlink (targets checked)"
  QUALITY_ASSERT=1 timeout 900 scripts/quality.sh clean loss5 cap200
  log "start/stop stress: 20 cycles of real clients on both workers, then SIGTERM"
  timeout 600 scripts/stress.sh 20
fi
