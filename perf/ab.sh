#!/usr/bin/env bash
# Interleaved A/B of two server binaries on one sfu-load scenario: runs
# A, B, A, B, ... (PAIRS pairs), each like perf/backends.sh (server pinned to
# CPU 0 with one worker, sfu-load to CPU 1, loopback only), and prints each
# run's server CPU per forwarded packet and the two medians with their ratio.
#
#   perf/ab.sh OLD_SFU NEW_SFU PAIRS [SFU-LOAD SCENARIO ARGS...]
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p sfu-sig)
#   perf/ab.sh /tmp/base/target/release/sfu target/release/sfu 3 --rooms 1 --publishers 1 --subscribers 200 --duration 15 --ramp 4
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 PAIRS=$3
shift 3
cargo build --release --locked -q -p sfu-bench
LOAD=target/release/sfu-load
OUT=$(mktemp -d)
run() { # LABEL BINARY INDEX SCENARIO...
  local label=$1 bin=$2 idx=$3 port server
  shift 3
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  taskset -c 0 "$bin" --http-listen "127.0.0.1:$port" --announced-ip 127.0.0.1 --rtc-listen-ip 127.0.0.1 \
    --rtc-ports 44000-44999 --cores 1 --log warn --max-participants-per-room 1000 \
    --max-messages-per-second-per-ip 1000000 --max-joins-per-minute-per-ip 1000000 &
  server=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
  timeout 600 "$LOAD" --server "ws://127.0.0.1:$port/ws" --server-pid "$server" --cpu 1 \
    --json "$OUT/$label-$idx.json" "$@" >/dev/null
  kill "$server"; wait "$server" || true
}
for i in $(seq 1 "$PAIRS"); do
  run A "$A" "$i" "$@"
  run B "$B" "$i" "$@"
done
python3 - "$OUT" "$PAIRS" "$*" <<'PY'
import json, statistics, sys
out, pairs, scenario = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cpu = {"A": [], "B": []}
for i in range(1, pairs + 1):
    for v in "AB":
        d = json.load(open(f"{out}/{v}-{i}.json"))
        c = d["server_cpu_us_per_forwarded_packet"] or 0
        cpu[v].append(c)
        print(f"{v} run {i}: {c:.3f} us/pkt, {d['forwarded_packets_per_second']:,.0f} pkt/s, loss {d['loss_ratio']:.4f}")
ma, mb = statistics.median(cpu["A"]), statistics.median(cpu["B"])
print(f"{scenario}: median A {ma:.3f} us/pkt, B {mb:.3f} us/pkt, B/A {mb / ma:.3f}")
PY
rm -rf "$OUT"
