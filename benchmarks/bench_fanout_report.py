"""The fan-out benchmark's report: the machine, the targets, the tables and the chart
(``results/fanout.md``, ``.json``, ``.png``), from what ``bench_fanout.py`` measured.

    python benchmarks/bench_fanout_report.py benchmarks/results/fanout.json   # again
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Optional

from bench_report import fmt

TARGET_NS = 1000.0  # CPU per subscriber for one notification (the target)
TARGET_RATIO = 0.9  # the sender's rate with a fan-out of 10,000, against one listener


def load_average() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine(conninfo: Dict[str, Any], server: str, argv: List[str],
            plan: Dict[str, Any]) -> Dict[str, Any]:
    import run as suite  # its helpers; imported here, as run.py imports this benchmark

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["python benchmarks/bench_fanout.py", *argv]),
        "cpu": suite.cpu_model(),
        "cores": os.cpu_count(),
        "python": suite.interpreter(sys.executable)[1],
        "postgresql": suite.server_version(conninfo),
        "checkout": suite.git_state(),
        "server": server,
        "plan": plan,
        "load_before": load_average(),
    }


def spread(values: List[float]) -> Dict[str, float]:
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def summarize(parts: Dict[str, Any]) -> Dict[str, Any]:
    """Medians over rounds, ratios, and the targets."""
    out: Dict[str, Any] = {}
    if "server" in parts:
        rows = parts["server"]["rows"]
        base = next((r for r in rows if r["scenario"] == "1 listener"), None)
        for row in rows:
            row["stat"] = spread(row["rates"])
            if base is not None:
                row["vs_listener"] = row["stat"]["median"] / statistics.median(base["rates"])
    if "client" in parts:
        for row in parts["client"]:
            row["stat"] = spread([run["cpu_ns_per_delivery"] for run in row["runs"]])
    out["targets"] = targets(parts)
    return out


def targets(parts: Dict[str, Any]) -> List[Dict[str, Any]]:
    found: List[Dict[str, Any]] = []
    for row in parts.get("client", []):
        if row["subscribers"] < 100 or row["channels"] != 1:
            continue
        ns = row["stat"]["median"]
        how = "one at a time" if row["pattern"] == "paced" else "a burst"
        found.append({
            "target": f"one notification to {row['subscribers']:,} subscribers ({how}, "
                      f"{row['client']} client): CPU per subscriber ≤ 1 µs",
            "measured": f"{ns / 1000:.3g} µs", "holds": ns <= TARGET_NS})
    rows = {r["scenario"]: r for r in parts.get("server", {}).get("rows", [])}
    hub = next((r for name, r in rows.items() if name.endswith("10,000 subscribers")), None)
    if hub is not None and "vs_listener" in hub:
        base = rows["1 listener"]["stat"]["median"]
        found.append({
            "target": "the sender's NOTIFY rate with one fan-out connection of 10,000 "
                      "subscribers within 10 % of its rate with one plain listener",
            "measured": f"{hub['stat']['median']:,.0f} vs {base:,.0f} NOTIFY/s "
                        f"({hub['vs_listener']:.2f}x)",
            "holds": hub["vs_listener"] >= TARGET_RATIO})
    return found


def markdown(meta: Dict[str, Any], parts: Dict[str, Any], summary: Dict[str, Any]) -> str:
    m = meta
    lines = [
        "# Fan-out benchmark", "",
        f"`{m['command']}` on {m['date']}: {m['cpu']}, {m['cores']} cores; {m['python']}; "
        f"PostgreSQL {m['postgresql']}, {m['server']}; checkout {m['checkout']}. Load "
        f"average before {m['load_before']}, after {m.get('load_after')}: the machine is "
        "shared, and what others ran meanwhile is in these numbers. Medians over "
        f"{m['plan']['rounds']} round(s), with the min-max.", "",
        "## Targets", "", "| target | measured | holds |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {'yes' if t['holds'] else '**no**'} |"
              for t in summary["targets"]]
    if "server" in parts:
        lines += ["", "## 1. The server's cost: a sender's NOTIFY rate", "",
                  f"One statement and one transaction per notification, sent by "
                  f"{parts['server']['sender']} for up to {m['plan']['seconds']:g} s, while "
                  "what the first column says listens on the server (idle connections "
                  "each LISTEN on a channel of their own and never read).", "",
                  "| what listens | NOTIFY/s | min-max | vs 1 listener |", "|---|---|---|---|"]
        for row in parts["server"]["rows"]:
            s, ratio = row["stat"], row.get("vs_listener")
            lines.append(f"| {row['scenario']} | {fmt(s['median'])} | {fmt(s['low'])}-"
                         f"{fmt(s['high'])} | {'' if ratio is None else f'{ratio:.2f}x'} |")
    if "client" in parts:
        lines += ["", "## 2. The client's cost: CPU per delivery", "",
                  "CPU time of the client process (every thread) per notification handed "
                  "to one subscription, from the commit to the last subscription holding "
                  "its last notification. *Burst*: the notifications of one transaction. "
                  "*One at a time*: one notification per channel per transaction, the next "
                  "sent once every subscription has taken it. Blocking client: one thread "
                  "takes from every subscription in turn; asyncio: one task per "
                  "subscription.", "",
                  "| client | subscriptions | channels | notifications | CPU per delivery "
                  "| min-max |", "|---|---|---|---|---|---|"]
        for row in parts["client"]:
            s = row["stat"]
            what = (f"burst of {row['count']:,}" if row["pattern"] == "burst"
                    else f"{row['count']:,} one at a time")
            lines.append(f"| {row['client']} | {row['subscribers']:,} | {row['channels']:,} "
                         f"| {what} | {fmt(s['median'])} ns | {fmt(s['low'])}-"
                         f"{fmt(s['high'])} ns |")
    return "\n".join(lines) + "\n"


def chart(parts: Dict[str, Any], path: str) -> Optional[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [p for p in ("server", "client") if p in parts]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5.5), squeeze=False)
    for ax, part in zip(axes[0], panels):
        if part == "server":
            rows = parts["server"]["rows"]
            labels = [r["scenario"] for r in rows]
            stats = [r["stat"] for r in rows]
            ax.set_title("sender's NOTIFY/s (higher is better)", fontsize=9)
            medians = [s["median"] for s in stats]
            if min(medians) > 0 and max(medians) / min(medians) > 30:
                ax.set_xscale("log")
        else:
            rows = parts["client"]
            labels = [f"{r['client']}, {r['subscribers']:,} subs / {r['channels']:,} ch, "
                      f"{'burst' if r['pattern'] == 'burst' else 'one at a time'}"
                      for r in rows]
            stats = [r["stat"] for r in rows]
            ax.set_title("client CPU per delivery, ns (log; lower is better)", fontsize=9)
            ax.set_xscale("log")
            ax.axvline(TARGET_NS, color="#d62728", linestyle="--", linewidth=1)
        ys = list(range(len(labels)))
        medians = [s["median"] for s in stats]
        errors = [[s["median"] - s["low"] for s in stats], [s["high"] - s["median"] for s in stats]]
        ax.barh(ys, medians, xerr=errors, color="#1f77b4", capsize=3)
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
        for y, v in zip(ys, medians):
            ax.text(v, y, " " + fmt(v), va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(meta: Dict[str, Any], parts: Dict[str, Any], out: str, name: str) -> Dict[str, Any]:
    summary = summarize(parts)
    data = {"meta": meta, "parts": parts, "summary": summary}
    os.makedirs(out, exist_ok=True)
    base = os.path.join(out, name)
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1)
    text = markdown(meta, parts, summary)
    with open(base + ".md", "w") as f:
        f.write(text)
    drawn = chart(parts, base + ".png")
    print(text)
    print(f"wrote {base}.md, {base}.json" + (f", {drawn}" if drawn else
          " (no chart: matplotlib is not installed)"), file=sys.stderr)
    return data


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        saved = json.load(f)
    folder, file = os.path.split(sys.argv[1])
    write(saved["meta"], saved["parts"], folder, os.path.splitext(file)[0])
