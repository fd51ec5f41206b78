#!/usr/bin/env bash
# What recording costs the worker that forwards the tracks: sfu-load's
# publishers (5, each video and Opus-sized audio: 10 tracks) and
# subscribers in one room on a one-worker server pinned to CPU 0 (the
# generator on CPU 1); the worker thread's CPU time (utime + stime from
# /proc) is read over a window without a recording, then over the same
# window while `sfu record` records every track of the room. Repeated
# ROUNDS times; prints each round and the median of the worker's added
# share of a core, and the recording thread's own (it writes the files,
# on whatever CPU the scheduler gives it, not the worker's).
#
#   perf/recording.sh [ROUNDS] [WINDOW_SECONDS]      default: 3 rounds, 15 s
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
WINDOW=${2:-15}
WARMUP=6
cargo build --release --locked -q -p sfu-sig -p sfu-bench
TICK=$(getconf CLK_TCK)
HTTP=18480
DIR=$(mktemp -d /tmp/sfu-perf-rec.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
ticks() { awk '{print $14 + $15}' "$1"; }
pct() { awk -v t="$1" -v w="$WINDOW" -v k="$TICK" 'BEGIN{printf "%.2f", 100 * t / k / w}'; }
results=()
for r in $(seq 1 "$ROUNDS"); do
  taskset -c 0 target/release/sfu --http-listen 127.0.0.1:$HTTP --rtc-listen-ip 127.0.0.1 \
    --rtc-ports 47800-47899 --cores 1 --recordings-dir "$DIR" --record-mux off --log warn &
  SFU=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
  timeout $((2 * WINDOW + WARMUP + 60)) target/release/sfu-load --server "ws://127.0.0.1:$HTTP/ws" \
    --room perf --publishers 5 --audio --subscribers 5 --ramp 2 --duration $((2 * WINDOW + WARMUP + 10)) \
    --cpu 1 >/dev/null &
  LOAD=$!
  sleep "$WARMUP"
  worker=$(dirname "$(grep -l "sfu-worker" /proc/$SFU/task/*/comm | awk 'NR == 1')")
  a=$(ticks "$worker/stat")
  sleep "$WINDOW"
  b=$(ticks "$worker/stat")
  id=$(target/release/sfu record start perf --url "http://127.0.0.1:$HTTP" | awk -F'"' '/"id"/{print $4; exit}')
  sleep 1
  rec=$(dirname "$(grep -l "^rec-" /proc/$SFU/task/*/comm | awk 'NR == 1')")
  c=$(ticks "$worker/stat"); rc=$(ticks "$rec/stat")
  sleep "$WINDOW"
  d=$(ticks "$worker/stat"); rd=$(ticks "$rec/stat")
  tracks=$(curl -s "http://127.0.0.1:$HTTP/rooms/perf/recordings" | grep -o '"file"' | wc -l)
  target/release/sfu record stop perf "$id" --url "http://127.0.0.1:$HTTP" >/dev/null
  packets=$(curl -s "http://127.0.0.1:$HTTP/rooms/perf/recordings" | awk -F'"packets":' '{split($2, x, ","); print x[1]; exit}')
  kill "$LOAD" 2>/dev/null || true; wait "$LOAD" 2>/dev/null || true
  kill "$SFU"; wait "$SFU" 2>/dev/null || true
  without=$(pct $((b - a))); with=$(pct $((d - c))); thread=$(pct $((rd - rc)))
  added=$(awk -v x="$with" -v y="$without" 'BEGIN{printf "%.2f", x - y}')
  echo "round $r: worker ${without} % of a core without, ${with} % recording ${tracks} tracks (+${added}); recording thread ${thread} %; ${packets} packets written"
  results+=("$added $thread")
done
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1; t[NR]=$2} END {m=int((NR+1)/2); printf "median: recording adds %s %% of a core to the worker (the recording thread: %s %%)\n", a[m], t[m]}'
