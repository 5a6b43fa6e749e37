"""Before/after table from a compare-<stamp>.jsonl written by scripts/bench/compare.sh.

Usage: compare_table.py COMPARE.jsonl

Prints, per scenario, the median of each figure over the rounds for `before` and `after`, and
their ratio (after / before).
"""

import json
import statistics
import sys
from collections import defaultdict


def key(r):
    s = r["scenario"]
    if s == "writes":
        return f"writes {r['connections']}×{r['in_flight']} {r['function']}"
    if s == "fanout":
        rate = "max" if not r["rate"] else f"{r['rate']} writes/s"
        return f"fanout {r['subscribers']} subs, {rate}"
    if s == "joinstorm":
        return f"joinstorm {r['connections']}, {r['concurrency']} at a time"
    if s == "idle":
        return f"idle {r['connections']}"
    return s


def figures(r):
    s = r["scenario"]
    if s == "writes":
        return {"calls/s": r["calls_per_s"], "p99 ms": r["latency_ms"].get("p99"),
                "server µs/call": r.get("server_cpu_us_per_op")}
    if s == "fanout":
        l = r["delivery_latency_ms"]
        return {"deliveries/s": r["deliveries_per_s"], "loss": r["loss"], "p50 ms": l.get("p50"),
                "p99 ms": l.get("p99"), "server µs/delivery": r.get("server_cpu_us_per_op")}
    if s == "joinstorm":
        return {"joins/s": r["joins_per_s"], "p99 ms": r["time_to_sync_ms"].get("p99")}
    if s == "idle":
        return {"RSS bytes/conn": r["server_rss_per_connection_bytes"]}
    return {}


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    table = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    order = []
    for r in rows:
        k = key(r)
        if k not in order:
            order.append(k)
        for name, v in figures(r).items():
            if v is not None:
                table[k][name][r["label"]].append(v)
    print("| scenario | figure | before (median) | after (median) | after / before |")
    print("|---|---|---|---|---|")
    for k in order:
        for name, by in table[k].items():
            b = statistics.median(by["before"]) if by["before"] else None
            a = statistics.median(by["after"]) if by["after"] else None
            ratio = f"{a / b:.2f}×" if a is not None and b else "–"
            fmt = lambda v: "–" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}")
            print(f"| {k} | {name} | {fmt(b)} | {fmt(a)} | {ratio} |")


if __name__ == "__main__":
    main()
