#!/usr/bin/env bash
# End-to-end tests in real headless Chromium (and Firefox) against the real
# web client, once per data-plane backend: io_uring, and `auto` with io_uring
# refused by the kernel (as Docker's seccomp profile refuses it), which must
# fall back to epoll.
# Runs inside a fresh network namespace when the machine allows it, so no
# packet can leave; otherwise on loopback only.
#
#   scripts/e2e.sh            both runs
#   scripts/e2e.sh epoll      one run (uring | epoll)
set -euo pipefail
cd "$(dirname "$0")/.."
# These tests run several servers at once: each worker's ICE-TCP listener
# takes any free port (the answers carry it) instead of 7881 + i.
export SFU_RTC_TCP_PORT="${SFU_RTC_TCP_PORT:-0}"
[ -f scripts/e2e/run.js ] || { echo "no e2e tests yet"; exit 0; }
cargo build --release --locked -p sfu-sig -p sfu-bench
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

# `auto` must fall back to epoll where io_uring is refused. The kernel
# refuses it for everyone while kernel.io_uring_disabled is 2 (Linux 6.6+),
# as Docker's seccomp profile does for a container: set for this pass only.
refused() {
  local knob=/proc/sys/kernel/io_uring_disabled was
  if ! was=$(cat "$knob" 2>/dev/null) || ! echo 2 >"$knob" 2>/dev/null; then
    echo "e2e: cannot refuse io_uring here ($knob not writable): the epoll pass runs with --io-backend epoll, not auto's fallback"
    one "--io-backend epoll" epoll
    return
  fi
  # shellcheck disable=SC2064 # the value to restore is the one read now
  trap "echo $was >$knob 2>/dev/null || true" EXIT
  local rc=0
  one "--io-backend auto" epoll || rc=$?
  echo "$was" >"$knob"
  trap - EXIT
  return "$rc"
}

case "${1:-both}" in
  uring) one "--io-backend uring" uring ;;
  epoll) refused ;;
  both)
    one "--io-backend uring" uring
    refused
    ;;
  *) echo "usage: scripts/e2e.sh [uring|epoll|both]" >&2; exit 2 ;;
esac
