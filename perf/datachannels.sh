#!/usr/bin/env bash
# What relaying chat costs: a 10-person room where each participant sends
# RATE data-channel messages/s (100: 1,000 messages/s into the room, 9,000
# out), no video, through a one-worker server spawned by sfu-load on CPU 0;
# against the same room sending one message per 10 s (the associations'
# own upkeep). Prints the server's CPU share and delivery per round.
#
#   perf/datachannels.sh [ROUNDS] [SECONDS] [RATE]     default: 3 20 100
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"; SECS="${2:-20}"; RATE="${3:-100}"
cargo build --release --locked -q -p sfu-sig -p sfu-bench
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
one() { # RATE JSON
  timeout 300 target/release/sfu-load --spawn-server --server-cores 1 --rooms 1 --publishers 10 \
    --subscribers 0 --video-kbps 0 --datachannel-rate "$1" --duration "$SECS" --ramp 2 --json "$2" >/dev/null 2>&1
  python3 - "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exp = d["datachannel_messages_expected"]
print(f'{d["server_cpu_percent"]:.2f} % of a core, {d["datachannel_messages_received"]}/{exp} messages delivered, joined {d["joined"]}')
PY
}
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: upkeep (0.1 msg/s each): $(one 0.1 "$OUT/base-$r.json")"
  echo "round $r: $RATE msg/s each:        $(one "$RATE" "$OUT/chat-$r.json")"
done
