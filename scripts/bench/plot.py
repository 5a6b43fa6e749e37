"""Plots and tables from `iii-stream bench` results (one JSON object per line).

Usage: plot.py RESULTS.jsonl OUTPUT_DIR

Writes OUTPUT_DIR/latency-vs-rate.png, OUTPUT_DIR/deliveries-vs-subscribers.png,
OUTPUT_DIR/writes.png and OUTPUT_DIR/results/summary.md (the tables of BENCHMARKS.md). Runs are
selected by the labels scripts/bench/run-all.sh gives them.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OURS = "#1f77b4"
REDIS = "#d62728"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def labelled(rows, label):
    return [r for r in rows if r.get("label") == label]


def lat(row, q):
    return (row.get("delivery_latency_ms") or {}).get(q)


def plot_latency_vs_rate(rows, out):
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, name, color in (("fanout-rate", "iii-stream", OURS), ("redis-rate", "Redis pub/sub", REDIS)):
        points = sorted(labelled(rows, label), key=lambda r: r["offered_deliveries_per_s"])
        if not points:
            continue
        x = [r["offered_deliveries_per_s"] for r in points]
        ax.plot(x, [lat(r, "p50") for r in points], "o-", color=color, label=f"{name} p50")
        ax.plot(x, [lat(r, "p99") for r in points], "s--", color=color, label=f"{name} p99")
        for r in points:
            if r.get("loss"):
                ax.annotate(f"loss {r['loss']}", (r["offered_deliveries_per_s"], lat(r, "p99")), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered deliveries/s (writes/s × 1,000 subscribers)")
    ax.set_ylabel("delivery latency (ms)")
    ax.set_title("Fan-out to 1,000 subscribers: delivery latency vs offered rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency-vs-rate.png", dpi=110)
    plt.close(fig)


def plot_deliveries_vs_subscribers(rows, out):
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, name, color in (("fanout-subs", "iii-stream", OURS), ("redis-subs", "Redis pub/sub", REDIS)):
        points = sorted(labelled(rows, label), key=lambda r: r["subscribers"])
        if not points:
            continue
        x = [r["subscribers"] for r in points]
        y = [r["deliveries_per_s"] for r in points]
        ax.plot(x, y, "o-", color=color, label=name)
        for r in points:
            note = f"{r['deliveries_per_s'] / 1e6:.2f}M"
            if r.get("loss"):
                note += f" (loss {r['loss']})"
            ax.annotate(note, (r["subscribers"], r["deliveries_per_s"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel("subscribers (one group / one channel)")
    ax.set_ylabel("deliveries/s (writer as fast as acknowledged)")
    ax.set_title("Fan-out throughput vs subscribers (zero loss required)")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "deliveries-vs-subscribers.png", dpi=110)
    plt.close(fig)


def plot_writes(rows, out):
    bars = []
    for r in labelled(rows, "writes-mem") + labelled(rows, "writes-file") + labelled(rows, "pinned-writes"):
        store = {"writes-mem": "in_memory", "writes-file": "file_based", "pinned-writes": "in_memory, pinned"}[r["label"]]
        bars.append((f"{r['function'].split('::')[1]} {r['connections']}×{r['in_flight']}\n{store}", r["calls_per_s"]))
    if not bars:
        return
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.bar(range(len(bars)), [b[1] for b in bars], color=OURS)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    for i, (_, v) in enumerate(bars):
        ax.annotate(f"{v / 1e3:.0f}k", (i, v), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("calls/s")
    ax.set_title("Write throughput (connections × calls in flight)")
    fig.tight_layout()
    fig.savefig(out / "writes.png", dpi=110)
    plt.close(fig)


def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float) and digits:
        return f"{v:,.{digits}f}"
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def tables(rows):
    md = []
    md.append("### Writes\n")
    md.append("| store | function | conns × in flight | calls/s | p50 ms | p99 ms | server cores | server µs/call |")
    md.append("|---|---|---|---|---|---|---|---|")
    for r in [r for r in rows if r["scenario"] == "writes"]:
        store = {"writes-mem": "in_memory", "writes-file": "file_based", "pinned-writes": "in_memory (pinned)"}.get(r["label"], r["label"])
        l = r["latency_ms"]
        md.append(f"| {store} | {r['function']} | {r['connections']} × {r['in_flight']} | {fmt(r['calls_per_s'])} | "
                  f"{fmt(l.get('p50'), 3)} | {fmt(l.get('p99'), 3)} | {fmt(r.get('server_cores'), 2)} | {fmt(r.get('server_cpu_us_per_op'), 2)} |")
    md.append("\n### Fan-out\n")
    md.append("| run | target | subscribers / groups | writes/s offered → done | deliveries/s | loss | p50 ms | p99 ms | max ms | server cores | server µs/delivery |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in [r for r in rows if r["scenario"] in ("fanout", "redis-fanout")]:
        offered = "max" if not r.get("rate") else fmt(r["rate"])
        md.append(f"| {r['label']} | {r['target']} | {fmt(r['subscribers'])} / {r['groups']} | {offered} → {fmt(r['writes_per_s'])} | "
                  f"{fmt(r['deliveries_per_s'])} | {r['loss']} | {fmt(lat(r, 'p50'), 1)} | {fmt(lat(r, 'p99'), 1)} | {fmt(lat(r, 'max'), 1)} | "
                  f"{fmt(r.get('server_cores'), 2)} | {fmt(r.get('server_cpu_us_per_op'), 3)} |")
    md.append("\n### Idle connections, join storm, resume\n")
    for r in rows:
        if r["scenario"] == "idle":
            md.append(f"- idle: {fmt(r['connections'])} connections ({r['groups']} groups): server RSS "
                      f"{r['server_rss_before_bytes'] / 2**20:.1f} → {r['server_rss_after_bytes'] / 2**20:.1f} MiB, "
                      f"**{r['server_rss_per_connection_bytes'] / 1024:.2f} KiB per connection** ({r['open_at_measurement']} open at measurement)")
        elif r["scenario"] == "joinstorm":
            t = r["time_to_sync_ms"]
            md.append(f"- joinstorm: {fmt(r['joined'])} joins ({r['concurrency']} at a time), **{fmt(r['joins_per_s'])} joins/s**, "
                      f"time to sync p50 {fmt(t.get('p50'), 1)} ms, p99 {fmt(t.get('p99'), 1)} ms, max {fmt(t.get('max'), 1)} ms; "
                      f"failed {r['failed']}; server {fmt(r.get('server_cores'), 2)} cores, generator {fmt(r.get('generator_cores'), 2)} cores")
        elif r["scenario"] == "resume":
            t = r["time_to_converge_ms"]
            md.append(f"- {r['label']} ({r['mode']}, {r['items']} items): {r['clients']} clients away {r['down_ms']} ms at {r['rate']} writes/s: "
                      f"converge p50 {fmt(t.get('p50'), 1)} ms, p99 {fmt(t.get('p99'), 1)} ms, all in {fmt(r['time_to_converge_all_ms'], 1)} ms; "
                      f"replayed {r['rejoins_replayed']}, synced {r['rejoins_synced']}, {fmt(r['frames_to_converge'])} frames / "
                      f"{r['bytes_to_converge'] / 2**20:.1f} MiB to converge, discontinuities {r['discontinuities']}")
    return "\n".join(md) + "\n"


def main():
    results, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = load(results)
    out.mkdir(parents=True, exist_ok=True)
    plot_latency_vs_rate(rows, out)
    plot_deliveries_vs_subscribers(rows, out)
    plot_writes(rows, out)
    summary = out / "results" / "summary.md"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(f"<!-- generated by scripts/bench/plot.py from {results.name} -->\n" + tables(rows))
    print(f"plots in {out}, tables in {summary}")


if __name__ == "__main__":
    main()
