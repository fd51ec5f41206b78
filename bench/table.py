#!/usr/bin/env python3
"""Prints the latest criterion medians (target/criterion) as a markdown table.

    cargo bench -p sfu-bench && python3 bench/table.py
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    median_ns = json.loads(est.read_text())["median"]["point_estimate"]
    tp = bench.get("throughput") or {}
    elems = tp.get("Elements")
    per_elem = median_ns / elems if elems else median_ns
    rate = 1e9 / per_elem if per_elem else 0
    rows.append((bench["full_id"], median_ns, elems or 1, per_elem, rate))
print("| benchmark | median per iteration | elements | per element | elements/s |")
print("|---|---:|---:|---:|---:|")
fmt = lambda ns: f"{ns/1000:.2f} µs" if ns >= 1000 else f"{ns:.1f} ns"
for name, med, el, per, rate in rows:
    print(f"| `{name}` | {fmt(med)} | {el} | {fmt(per)} | {rate/1e6:.2f} M |")
