#!/usr/bin/env bash
# What a relay hop between two nodes costs, against a local forward, in one
# run of this script: the same sfu-load scenario against one node and against
# two (--spawn-cluster 1, then 2, alternating, ROUNDS times each; every node
# one worker pinned to CPU 0, sfu-load on CPU 1, a redis-server per run).
# With two nodes each room's publisher joins the first and its subscriber the
# second, so every forwarded packet crossed one relay.
#
#   perf/relay.sh [ROUNDS] [SFU-LOAD SCENARIO ARGS...]
#   perf/relay.sh 3 --rooms 40 --publishers 1 --subscribers 1 --video-kbps 1000 --duration 15
#
# Prints, as medians over the rounds: server CPU per forwarded packet on one
# node (a local forward: receive, decrypt, forward, encrypt, send) and on two
# (all nodes' CPU summed), and the relay hop's own cost: the extra CPU of the
# two-node run over the packets the relays carried (encrypt and send on one
# node, receive and decrypt on the other), and that over a local forward.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
shift || true
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--rooms 40 --publishers 1 --subscribers 1 --video-kbps 1000 --duration 15 --ramp 2)
cargo build --release --locked -q -p sfu-sig -p sfu-bench
OUT=$(mktemp -d)
for r in $(seq 1 "$ROUNDS"); do
  for n in 1 2; do
    timeout 300 target/release/sfu-load --spawn-cluster "$n" --server-cores 1 --cpu 1 "${ARGS[@]}" \
      --json "$OUT/r$r-n$n.json" >"$OUT/r$r-n$n.log" 2>&1 ||
      { echo "relay.sh: sfu-load failed (round $r, $n node(s)):" >&2; tail -n 20 "$OUT/r$r-n$n.log" >&2; exit 1; }
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
one, two, hop, ratio, loss = [], [], [], [], []
for r in range(1, rounds + 1):
    a = json.load(open(f"{out}/r{r}-n1.json"))
    b = json.load(open(f"{out}/r{r}-n2.json"))
    for s in (a, b):
        if s["server_cpu_seconds"] is None or not s["forwarded_packets"]:
            sys.exit(f"relay.sh: round {r}: no CPU figure or nothing forwarded")
    local = a["server_cpu_us_per_forwarded_packet"]
    relayed = b["relayed_packets"] or 0
    if relayed == 0:
        sys.exit(f"relay.sh: round {r}: the two-node run relayed nothing")
    # The two-node run's CPU beyond what the one-node run spent for as many forwards.
    extra = b["server_cpu_seconds"] - a["server_cpu_seconds"] * b["forwarded_packets"] / a["forwarded_packets"]
    h = extra * 1e6 / relayed
    one.append(local); two.append(b["server_cpu_us_per_forwarded_packet"]); hop.append(h); ratio.append(h / local)
    loss.append(max(a["loss_ratio"], b["loss_ratio"]))
    print(f"round {r}: one node {local:.2f} us/forwarded, two nodes {two[-1]:.2f} us/forwarded, "
          f"{relayed} relayed, hop {h:.2f} us = {h / local:.2f}x a local forward, loss {loss[-1]:.4f}")
m = statistics.median
print(f"median of {rounds}: local forward {m(one):.2f} us, two nodes {m(two):.2f} us per forwarded packet "
      f"({m(two) / m(one):.2f}x), relay hop {m(hop):.2f} us = {m(ratio):.2f}x a local forward")
PY
