#!/usr/bin/env bash
# Instructions on the packet path of two server binaries, counted by
# valgrind's callgrind (repeatable whatever else the machine does, unlike
# CPU time): each binary runs under callgrind with collection on only inside
# Router::handle_datagram (a datagram's whole path: receive, decrypt,
# forward to every consumer, encrypt), while sfu-load runs the same scenario
# against it (1 publisher -> 20 subscribers at 300 kbit/s, 10 s). Prints each
# run's total and the ratio of the medians.
#
#   perf/callgrind-ab.sh OLD_SFU NEW_SFU [RUNS]
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release -p sfu-sig)
#   perf/callgrind-ab.sh /tmp/base/target/release/sfu target/release/sfu 2
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 RUNS=${3:-2}
command -v valgrind >/dev/null || { echo "callgrind-ab: apt-get install valgrind" >&2; exit 1; }
cargo build --release --locked -q -p sfu-bench
OUT=$(mktemp -d)
one() { # BINARY OUTFILE: prints "forwarded instructions"
  local bin=$1 out=$2 port server
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect='*Router*handle_datagram*' \
    "$bin" --http-listen "127.0.0.1:$port" --announced-ip 127.0.0.1 --rtc-listen-ip 127.0.0.1 \
    --rtc-ports 44500-44599 --cores 1 --log warn --max-messages-per-second-per-ip 1000000 \
    --max-joins-per-minute-per-ip 1000000 >"$out.server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  timeout 120 target/release/sfu-load --server "ws://127.0.0.1:$port/ws" --publishers 1 --subscribers 20 \
    --video-kbps 300 --duration 10 --ramp 2 --cpu 1 --json "$out.json" >"$out.load.log" 2>&1 || true
  kill -TERM "$server"
  wait "$server" || true
  python3 - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]
s = json.load(open(out + ".json"))
total = 0
for line in open(out):
    m = re.match(r"summary: (\d+)", line) or re.match(r"totals: (\d+)", line)
    if m:
        total = int(m.group(1))
print(s["forwarded_packets"], s["loss_ratio"], total)
PY
}
for r in $(seq 1 "$RUNS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    read -r fwd loss ir < <(one "$bin" "$OUT/$side$r.out")
    echo "$side run $r: $ir instructions in handle_datagram, $fwd packets forwarded in the window, loss $loss"
    echo "$ir" >>"$OUT/$side"
  done
done
python3 - "$OUT" <<'PY'
import statistics, sys
d = sys.argv[1]
a = statistics.median(int(x) for x in open(d + "/A"))
b = statistics.median(int(x) for x in open(d + "/B"))
print(f"median A {a:,.0f}, B {b:,.0f} instructions: B/A {b / a:.4f}")
PY
