#!/usr/bin/env python3
"""Summarise scripts/bench-compare.sh output as a Markdown table.

For each (op, clients) the row shows, per system, the run with the median throughput of the
rounds, and the lowest-highest throughput across rounds.

    scripts/bench-table.py OUT_DIR/results.jsonl
"""
import json
import sys
from collections import defaultdict

runs = defaultdict(list)
with open(sys.argv[1]) as f:
    for line in f:
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            runs[(r["op"], r["clients"], r["system"])].append(r)

print("| op | clients | system | req/s (median) | req/s range | p50 ms | p99 ms | max ms | errors |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for op in ("put", "range", "txn"):
    for clients in (1, 16, 128):
        for system in ("etcd", "flotilla"):
            rs = sorted(runs.get((op, clients, system), []), key=lambda r: r["throughput"])
            if not rs:
                continue
            m = rs[len(rs) // 2]
            print(f"| {op} | {clients} | {system} | {m['throughput']:.0f} | "
                  f"{rs[0]['throughput']:.0f}–{rs[-1]['throughput']:.0f} | {m['p50_ms']:.2f} | "
                  f"{m['p99_ms']:.2f} | {m['max_ms']:.1f} | {sum(r['errors'] for r in rs)} |")
