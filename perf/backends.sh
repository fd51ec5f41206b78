#!/usr/bin/env bash
# Runs one sfu-load scenario against the server once per variant, in the
# same build and the same run, and prints server CPU per forwarded packet,
# latency, loss and RSS for each (no profiler attached). A variant is an IO
# backend, optionally followed by ":webrtc-srtp" (the old SRTP) and/or
# ":nogso" (UDP GSO off): epoll, uring, epoll:webrtc-srtp, epoll:nogso, ...
#
#   perf/backends.sh "epoll uring" [SFU-LOAD SCENARIO ARGS...]
#   perf/backends.sh "epoll:native epoll:webrtc-srtp" --subscribers 200 --duration 15 --ramp 4
#   perf/backends.sh "epoll uring" --rooms 1 --publishers 1 --subscribers 100 --duration 15 --ramp 4
#   perf/backends.sh "epoll uring" --subscribers 200 --duration 15 --ramp 4 --spawn-floor
#
# With --spawn-floor each run also measures the reference relay (the floor,
# perf/README.md) on the same CPU, before the server's part, and prints it.
#
# The server is pinned to CPU 0 with one worker, sfu-load to CPU 1. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKENDS=$1
shift
cargo build --release --locked -q -p sfu-sig -p sfu-bench
BIN=target/release
OUT=$(mktemp -d)
for V in $BACKENDS; do
  B=${V%%:*}
  SRTP=native
  GSO=on
  IFS=: read -r -a PARTS <<<"$V"
  for P in "${PARTS[@]:1}"; do
    case $P in
      nogso) GSO=off ;;
      native | webrtc-srtp) SRTP=$P ;;
      *) echo "unknown variant part $P in $V" >&2; exit 2 ;;
    esac
  done
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  taskset -c 0 "$BIN/sfu" --http-listen "127.0.0.1:$PORT" --announced-ip 127.0.0.1 --rtc-listen-ip 127.0.0.1 \
    --rtc-ports 44000-44999 --cores 1 --log warn --io-backend "$B" --srtp "$SRTP" --udp-gso "$GSO" --max-participants-per-room 1000 \
    --max-messages-per-second-per-ip 1000000 --max-joins-per-minute-per-ip 1000000 &
  SERVER=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
  done
  timeout 600 "$BIN/sfu-load" --server "ws://127.0.0.1:$PORT/ws" --server-pid "$SERVER" --cpu 1 \
    --json "$OUT/$V.json" "$@" >/dev/null
  kill "$SERVER"; wait "$SERVER" || true
  python3 - "$OUT/$V.json" "$V" "$*" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:18} {sys.argv[3]}: {d['forwarded_packets_per_second']:,.0f} pkt/s forwarded, "
      f"server CPU {d['server_cpu_us_per_forwarded_packet'] or 0:.2f} us/pkt, "
      f"latency p50 {d['latency_p50_ms']:.2f} p99 {d['latency_p99_ms']:.2f} ms, "
      f"loss {d['loss_ratio']:.4f}, join failures {len(d.get('join_failures', []))}, "
      f"server RSS {(d.get('server_rss_bytes') or 0)/1e6:.1f} MB")
if d.get("floor_cpu_us_per_forwarded_packet"):
    print(f"{'':18} floor relay {d['floor_cpu_us_per_forwarded_packet']:.2f} us/pkt, "
          f"server / floor {d['server_to_floor_cpu_ratio']:.2f}")
PY
done
rm -rf "$OUT"
