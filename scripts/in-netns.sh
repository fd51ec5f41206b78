#!/usr/bin/env bash
# Runs a command inside a fresh network namespace with only loopback up,
# so no packet it sends can leave the machine; where namespaces are not
# allowed, runs it on the host (loopback only, by the tests' own addresses)
# and says so. SFU_IN_NETNS=1 marks the inner run (and skips a nested one).
#
#   scripts/in-netns.sh NAME COMMAND [ARGS...]
set -euo pipefail
name=$1
shift
if [ -z "${SFU_IN_NETNS:-}" ] && unshare -n true 2>/dev/null; then
  # shellcheck disable=SC2016 # "$@" is the inner shell's
  SFU_IN_NETNS=1 exec unshare -n bash -c 'ip link set lo up && exec "$@"' bash "$@"
fi
[ -n "${SFU_IN_NETNS:-}" ] || echo "$name: no network namespace available here; running on loopback only"
exec "$@"
