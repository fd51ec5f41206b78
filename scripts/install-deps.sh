#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian 12 machine, if missing:
# Debian's chromium (the reference browser) and firefox-esr (the second
# browser the e2e suite joins), curl, nftables, shellcheck, and the e2e
# driver's npm packages; redis-server (the directory of nodes, which the
# directory's tests and the cluster test start on a free port); ffmpeg (the
# RTMP encoder of the ingest tests), cmake (builds the bundled libopus), and
# aiortc and websockets from PyPI in a virtualenv under target/ (the
# WHIP/WHEP client of the ingest tests, the data-channel client of the reach
# tests); coturn (the TURN server of the reach tests).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=()
[ -x /usr/lib/chromium/chromium ] || PKGS+=(chromium)
[ -x /usr/bin/firefox-esr ] || PKGS+=(firefox-esr)
command -v curl >/dev/null || PKGS+=(curl)   # the stress script's health checks
command -v nft >/dev/null || PKGS+=(nftables) # loss and rate limits in scripts/quality.sh
command -v shellcheck >/dev/null || PKGS+=(shellcheck) # scripts/lint-shell.sh
command -v redis-server >/dev/null || PKGS+=(redis-server) # the directory across nodes
command -v ffmpeg >/dev/null || PKGS+=(ffmpeg) # RTMP ingest tests (the encoder), recording tests (ffprobe)
command -v cmake >/dev/null || PKGS+=(cmake)   # opusic-sys builds the bundled libopus with it
command -v g++ >/dev/null || PKGS+=(g++)       # webm-sys builds the bundled libwebm with it
command -v turnserver >/dev/null || PKGS+=(coturn) # TURN for the reach tests (scripts/reach.sh)
python3 -c 'import venv' 2>/dev/null || PKGS+=(python3-venv)
if [ ${#PKGS[@]} -gt 0 ]; then
  echo "installing ${PKGS[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q -o DPkg::Lock::Timeout=300 "${PKGS[@]}"
fi

if ! command -v node >/dev/null; then
  echo "node (>= 18) is required for the browser tests" >&2
  exit 1
fi

if [ -f scripts/e2e/package.json ] && { [ ! -d scripts/e2e/node_modules/playwright-core ] ||
  [ ! -d scripts/e2e/node_modules/puppeteer-core ]; }; then
  echo "installing the e2e driver's npm packages"
  (cd scripts/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

# aiortc (PyPI), pinned: the WHIP publisher and WHEP player of
# scripts/ingest.sh, and with websockets the data-channel client of
# scripts/reach.sh.
VENV=target/e2e-venv
if ! "$VENV/bin/python" -c 'import aiortc, websockets' 2>/dev/null; then
  echo "installing aiortc and websockets (PyPI) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'aiortc==1.16.0' 'websockets==15.0.1'
fi
