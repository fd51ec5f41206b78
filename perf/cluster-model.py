#!/usr/bin/env python3
"""How many sfu nodes, and how deep a relay tree, a webinar needs.

A paper model from figures measured on this project's 2-core test machine
(perf/README.md gives the commands) and assumptions about the production
machines, printed first. Nothing here is measured by this script.

    perf/cluster-model.py                      # 1 -> 100,000 at 1.5 Mbit/s
    perf/cluster-model.py --viewers 20000 --cores 32 --nic-gbps 25

Each viewer receives the stream once; a node serves viewers and feeds at
most --fanout other nodes through relays (one copy of the stream each), so
the nodes form a tree under the origin. A node's viewers are limited by its
CPU (microseconds per forwarded packet, times packets per viewer) and by its
NIC (the stream's rate per viewer and per relay, under a utilisation cap).
"""

import argparse
import math


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--viewers", type=int, default=100_000, help="viewers of the one publisher")
    p.add_argument("--mbps", type=float, default=1.5, help="the stream, Mbit/s (video + audio)")
    p.add_argument("--packet-bytes", type=int, default=1200, help="mean RTP packet on the wire, bytes")
    p.add_argument("--cpu-us", type=float, default=6.74,
                   help="server CPU per forwarded packet, us (measured: the room of 10,000 on both cores)")
    p.add_argument("--relay-us", type=float, default=None,
                   help="server CPU per packet a relay carries, us, on each end "
                        "(default: --cpu-us times --relay-ratio)")
    p.add_argument("--relay-ratio", type=float, default=1.5,
                   help="a relayed packet's cost over a local forward's (the issue's ceiling; "
                        "perf/README.md has the measured ratio)")
    p.add_argument("--cores", type=int, default=16, help="cores per node (assumed)")
    p.add_argument("--cpu-headroom", type=float, default=0.7, help="share of CPU used at most (assumed)")
    p.add_argument("--nic-gbps", type=float, default=10.0, help="NIC per node, Gbit/s (assumed)")
    p.add_argument("--nic-headroom", type=float, default=0.7, help="share of the NIC used at most (assumed)")
    p.add_argument("--fanout", type=int, default=4, help="edges one node feeds (--relay-fanout)")
    p.add_argument("--hop-ms", type=float, default=0.5,
                   help="one-way network delay between two nodes, ms (assumed: one data centre)")
    p.add_argument("--server-ms", type=float, default=0.43,
                   help="a packet's time through one sfu, ms (measured: sfu-load latency p50 "
                        "through one node, loopback)")
    a = p.parse_args()

    relay_us = a.relay_us if a.relay_us is not None else a.cpu_us * a.relay_ratio
    pps = a.mbps * 1e6 / 8 / a.packet_bytes  # packets per second of the stream

    print("Assumptions")
    print(f"  webinar: 1 publisher -> {a.viewers:,} viewers at {a.mbps} Mbit/s "
          f"({pps:.0f} packets/s of {a.packet_bytes} B)")
    print(f"  server CPU per forwarded packet: {a.cpu_us} us (measured here); per relayed packet: "
          f"{relay_us:.2f} us on each end")
    print(f"  a node: {a.cores} cores used up to {a.cpu_headroom:.0%}, a {a.nic_gbps} Gbit/s NIC used "
          f"up to {a.nic_headroom:.0%}")
    print(f"  relay tree: each node feeds at most {a.fanout} nodes; {a.hop_ms} ms between nodes, "
          f"{a.server_ms} ms through a node")
    print()

    # One node's budget, in stream copies per second of CPU and of NIC.
    cpu_budget_us = a.cores * 1e6 * a.cpu_headroom  # CPU us per second
    nic_budget_bps = a.nic_gbps * 1e9 * a.nic_headroom
    # A feeding node pays for its relays out (CPU and NIC), and every node
    # but the origin for its relay in.
    relay_cpu = relay_us * pps  # us per second per relay end
    stream_bps = a.mbps * 1e6

    def viewers_on(relays_out, relay_in):
        cpu_left = cpu_budget_us - (relays_out + relay_in) * relay_cpu
        nic_left = nic_budget_bps - relays_out * stream_bps  # the relay in uses the receive side
        by_cpu = cpu_left / (a.cpu_us * pps)
        by_nic = nic_left / stream_bps
        return max(0, int(min(by_cpu, by_nic))), ("CPU" if by_cpu < by_nic else "NIC")

    leaf, leaf_limit = viewers_on(0, 1)
    inner, inner_limit = viewers_on(a.fanout, 1)
    origin, _ = viewers_on(a.fanout, 0)
    if leaf == 0:
        print("A node cannot serve a single viewer with these figures.")
        return

    # Grow the tree level by level until it holds every viewer.
    levels = [1]  # nodes at each depth: the origin alone at depth 0
    while True:
        nodes = sum(levels)
        # Every level but the last feeds the next one.
        capacity = origin if len(levels) == 1 else (
            origin + sum(levels[1:-1]) * inner + levels[-1] * leaf)
        if capacity >= a.viewers:
            break
        if len(levels) == 1:
            levels.append(1)
            continue
        feeders = levels[-2] if len(levels) >= 2 else 1
        if levels[-1] < feeders * a.fanout:
            levels[-1] += 1
        else:
            levels.append(1)
        if nodes > 1_000_000:
            print("No tree of under a million nodes holds them.")
            return
    nodes = sum(levels)
    depth = len(levels) - 1
    added = depth * (a.hop_ms + a.server_ms)

    print("One node serves at most")
    print(f"  {leaf:,} viewers as a leaf (limited by its {leaf_limit}), "
          f"{inner:,} while feeding {a.fanout} nodes ({inner_limit}), {origin:,} as the origin feeding {a.fanout}")
    print()
    print(f"Result for {a.viewers:,} viewers")
    print(f"  nodes: {nodes} ({' + '.join(str(n) for n in levels)} by depth)")
    print(f"  relay tree depth: {depth} (the origin's fan-out alone reaches {1 + a.fanout} nodes)")
    print(f"  relays: {nodes - 1}, {(nodes - 1) * a.mbps:.0f} Mbit/s between nodes in all")
    print(f"  latency added over one node: {added:.2f} ms at the deepest leaf "
          f"({a.hop_ms + a.server_ms:.2f} ms per level: {a.hop_ms} network + {a.server_ms} through a node)")
    print(f"  total forwarding: {a.viewers * pps / 1e6:.1f} M packets/s, "
          f"{a.viewers * a.mbps / 1e3:.0f} Gbit/s to viewers")


if __name__ == "__main__":
    main()
