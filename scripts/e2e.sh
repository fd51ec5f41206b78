#!/usr/bin/env bash
# End-to-end tests in real headless Chromium against the real web client,
# once per data-plane backend: io_uring, and `auto` with io_uring refused (as
# Docker's seccomp profile refuses it), which must fall back to epoll.
# Runs inside a fresh network namespace when the machine allows it, so no
# packet can leave; otherwise on loopback only.
#
#   scripts/e2e.sh            both runs
#   scripts/e2e.sh epoll      one run (uring | epoll)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/e2e/run.js ] || { echo "no e2e tests yet"; exit 0; }
cargo build --release --locked -p sfu-sig
BIN="$PWD/target/release/sfu"

one() { # BACKEND EXPECTED [env...]
  local args=$1 want=$2
  shift 2
  echo "e2e: sfu $args (expecting the $want loop)"
  if [ -z "${SFU_IN_NETNS:-}" ] && unshare -n true 2>/dev/null; then
    # shellcheck disable=SC2016 # "$0" is the inner shell's: the binary's path
    env "$@" SFU_E2E_SERVER_ARGS="$args" SFU_E2E_EXPECT_BACKEND="$want" SFU_IN_NETNS=1 \
      unshare -n bash -c 'ip link set lo up && exec node scripts/e2e/run.js "$0"' "$BIN"
  else
    echo "e2e: no network namespace available here; running on loopback only"
    env "$@" SFU_E2E_SERVER_ARGS="$args" SFU_E2E_EXPECT_BACKEND="$want" node scripts/e2e/run.js "$BIN"
  fi
}

case "${1:-both}" in
  uring) one "--io-backend uring" uring ;;
  epoll) one "--io-backend auto" epoll SFU_TEST_REFUSE_IO_URING=1 ;;
  both)
    one "--io-backend uring" uring
    one "--io-backend auto" epoll SFU_TEST_REFUSE_IO_URING=1
    ;;
  *) echo "usage: scripts/e2e.sh [uring|epoll|both]" >&2; exit 2 ;;
esac
