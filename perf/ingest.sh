#!/usr/bin/env bash
# What RTMP ingest costs the server: Debian's ffmpeg pushes the issue's
# stream (1280x720 30 fps H.264 without B-frames, 2 s GOP, 440 Hz AAC) into
# a room nobody watches, and the sfu process's CPU time (all threads; utime
# + stime from /proc) is read over a window after a warm-up. ffmpeg runs on
# CPU 1, the server on CPU 0 (one worker), so the encoder's own work does
# not land on the figure. Repeated ROUNDS times; the median is printed, and
# the split between the data plane's worker thread and the rest (the
# RTMP task: FLV parsing, H.264 packetization, the AAC -> Opus transcode).
#
#   perf/ingest.sh [ROUNDS] [WINDOW_SECONDS]      default: 3 rounds, 20 s
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
WINDOW=${2:-20}
WARMUP=5
cargo build --release --locked -q -p sfu-sig
TICK=$(getconf CLK_TCK)
HTTP=18380
RTMP=19380
ticks() { awk '{print $14 + $15}' "$1"; }
results=()
for r in $(seq 1 "$ROUNDS"); do
  taskset -c 0 target/release/sfu --http-listen 127.0.0.1:$HTTP --rtc-listen-ip 127.0.0.1 \
    --rtc-ports 47900-47999 --cores 1 --rtmp-listen 127.0.0.1:$RTMP --log warn &
  SFU=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
  taskset -c 1 timeout $((WINDOW + WARMUP + 30)) ffmpeg -hide_banner -loglevel error -re \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 \
    -t $((WINDOW + WARMUP + 2)) -c:v libx264 -bf 0 -g 60 -c:a aac -f flv "rtmp://127.0.0.1:$RTMP/live/perf" &
  FF=$!
  sleep "$WARMUP"
  worker_tid=$(dirname "$(grep -l "sfu-worker" /proc/$SFU/task/*/comm | awk 'NR == 1')")
  a=$(ticks /proc/$SFU/stat); aw=$(ticks "$worker_tid/stat")
  sleep "$WINDOW"
  b=$(ticks /proc/$SFU/stat); bw=$(ticks "$worker_tid/stat")
  frames=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^sfu_ingest_video_frames_total /{print $2}')
  wait "$FF" || true
  kill "$SFU"; wait "$SFU" 2>/dev/null || true
  pct=$(awk -v t=$((b - a)) -v w="$WINDOW" -v k="$TICK" 'BEGIN{printf "%.2f", 100 * t / k / w}')
  wpct=$(awk -v t=$((bw - aw)) -v w="$WINDOW" -v k="$TICK" 'BEGIN{printf "%.2f", 100 * t / k / w}')
  echo "round $r: sfu ${pct} % of a core (worker ${wpct} %), ${frames} video frames in"
  results+=("$pct $wpct")
done
printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1; w[NR]=$2} END {m=int((NR+1)/2); printf "median: %s %% of a core for one 720p30 H.264 + AAC stream (the worker thread: %s %%)\n", a[m], w[m]}'
