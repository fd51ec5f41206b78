#!/usr/bin/env bash
# Profiles the sfu server under an sfu-load scenario and writes a flamegraph.
#
#   perf/flamegraph.sh [SFU-LOAD SCENARIO ARGS...]
#   perf/flamegraph.sh --rooms 1 --publishers 1 --subscribers 100 --duration 15
#
# Builds with frame pointers (target/fp), starts the server pinned to CPU 0
# with one worker, records it with `perf record -e cpu-clock -g` (this VM has
# no hardware PMU) while sfu-load (pinned to CPU 1) drives it, then writes
# perf/out/<time>/{flamegraph.svg,summary.json,top.txt}. Installs Debian's
# linux-perf and crates.io's inferno when missing. Loopback only.
#
# The server allows 1000 participants per room (the default of 100 is too
# small for the 1->200 scenario) and lifts the per-address limits (all load
# clients share 127.0.0.1). Extra server flags: SFU_SERVER_ARGS="--udp-gso off".
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v perf >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q && $SUDO apt-get install -y -q linux-perf
fi
if ! command -v inferno-flamegraph >/dev/null; then
  cargo install inferno --locked
fi

OUT="perf/out/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --locked --target-dir target/fp -p sfu-sig -p sfu-bench
BIN=target/fp/release

read -r -a EXTRA <<<"${SFU_SERVER_ARGS:-}"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 "$BIN/sfu" --http-listen "127.0.0.1:$PORT" --announced-ip 127.0.0.1 --rtc-listen-ip 127.0.0.1 \
  --rtc-ports 44000-44999 --cores 1 --log warn --max-participants-per-room 1000 \
  --max-messages-per-second-per-ip 1000000 --max-joins-per-minute-per-ip 1000000 "${EXTRA[@]}" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done

perf record -e cpu-clock -F 999 -g -p "$SERVER" -o "$OUT/perf.data" 2>"$OUT/perf-record.log" &
PERF=$!
sleep 0.5
"$BIN/sfu-load" --server "ws://127.0.0.1:$PORT/ws" --server-pid "$SERVER" --cpu 1 \
  --json "$OUT/summary.json" "$@" >/dev/null
kill -INT "$PERF"
wait "$PERF" || true

perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf > "$OUT/stacks.folded"
inferno-flamegraph --title "sfu: $*" < "$OUT/stacks.folded" > "$OUT/flamegraph.svg"
# Self time per function (the leaf of each stack), the largest first.
awk '{ n=$NF; $NF=""; k=split($0, f, ";"); leaf=f[k]; gsub(/ +$/, "", leaf); self[leaf]+=n; total+=n }
     END { for (l in self) printf "%6.2f%%  %s\n", 100*self[l]/total, l }' "$OUT/stacks.folded" \
  | sort -rn | awk 'NR <= 25' > "$OUT/top.txt" # awk reads to the end: no SIGPIPE under pipefail

echo "summary:    $OUT/summary.json"
echo "flamegraph: $OUT/flamegraph.svg"
echo "top self-time frames ($OUT/top.txt):"
head -10 "$OUT/top.txt"
python3 - "$OUT/summary.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"forwarded {d['forwarded_packets']} pkts, loss {d['loss_ratio']:.4f}, "
      f"latency p50 {d['latency_p50_ms']:.2f} ms p99 {d['latency_p99_ms']:.2f} ms, "
      f"server CPU {d['server_cpu_us_per_forwarded_packet'] or 0:.2f} us/pkt")
PY
