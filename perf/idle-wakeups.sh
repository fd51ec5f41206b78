#!/usr/bin/env bash
# Counts how often an idle sfu server (no participant) is scheduled onto a
# CPU, per second, for the whole process: the sum over its threads of the
# run count in /proc/PID/task/*/schedstat (third field), over a window.
#
#   perf/idle-wakeups.sh [SECONDS] [sfu flags...]     e.g. perf/idle-wakeups.sh 10 --io-backend epoll
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
shift || true
cargo build --release --locked -q -p sfu-sig
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/sfu --http-listen "127.0.0.1:$PORT" --rtc-listen-ip 127.0.0.1 --log warn "$@" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 2 # past start-up
runs() { awk '{s += $3} END {print s}' /proc/"$PID"/task/*/schedstat; }
A=$(runs)
sleep "$SECS"
B=$(runs)
THREADS=$(find /proc/"$PID"/task -mindepth 1 -maxdepth 1 | wc -l)
echo "idle wake-ups: $(( (B - A) / SECS )) per second over ${SECS} s, ${THREADS} threads (sfu $*)"
