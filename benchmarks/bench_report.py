"""The benchmark suite's report: medians over rounds, ratios to psycopg2, the targets,
a Markdown page, a JSON of every raw number and a PNG chart (with matplotlib).

    python benchmarks/bench_report.py benchmarks/results/latest.json

renders the Markdown and the chart again from a saved JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from bench_library import RECEIVE_WORKLOADS

BASELINE = "psycopg2"
US = "\u00b5s"  # micro sign
TIMES = "\u00d7"  # multiplication sign
MINUS = "\u2212"  # minus sign
DASH = "\u2013"  # en dash

Raw = Dict[str, Dict[str, List[Dict[str, Any]]]]


@dataclass
class Metric:
    key: str
    label: str
    higher_is_better: bool
    ratio: bool = True  # a column of the ratio to psycopg2
    digits: int = 3  # significant digits


PER_NOTIFICATION = [
    Metric("rate", "notifications/s", True),
    Metric("cpu_us", f"CPU {US} / notification", False),
]

METRICS: Dict[str, List[Metric]] = {
    "app_traffic": PER_NOTIFICATION,
    "trigger_burst": PER_NOTIFICATION,
    "receive_burst": PER_NOTIFICATION,
    "connect": [
        Metric("rate", "connections/s", True),
        Metric("cpu_us", f"CPU {US} / connection", False),
    ],
    "notify": PER_NOTIFICATION,
    "notify_many": PER_NOTIFICATION,
    "pingpong": [
        Metric("median_us", f"median {US}", False),
        Metric("p99_us", f"p99 {US}", False),
        Metric("cpu_us", f"CPU {US} / round trip", False),
    ],
    "memory": [
        Metric("bytes_traced", "bytes / pending (tracemalloc)", False),
        Metric("bytes_rss", "bytes / pending (RSS)", False),
    ],
    "import": [
        Metric("import_ms", "import ms", False),
        Metric("cpu_ms", "CPU ms", False),
    ],
}

# (left, right) metric of each workload's row in the chart
CHART: Dict[str, Tuple[str, str]] = {
    "app_traffic": ("cpu_us", "rate"),
    "trigger_burst": ("cpu_us", "rate"),
    "receive_burst": ("cpu_us", "rate"),
    "connect": ("cpu_us", "rate"),
    "notify": ("cpu_us", "rate"),
    "notify_many": ("cpu_us", "rate"),
    "pingpong": ("cpu_us", "median_us"),
    "memory": ("bytes_traced", "bytes_rss"),
    "import": ("cpu_ms", "import_ms"),
}


def signed(value: float) -> str:
    """A fit's constant after its per-byte term: "+ 58", or a minus sign and 20."""
    return f"{'+' if round(value) >= 0 else MINUS} {abs(value):.0f}"


def title(workload: str, counts: Dict[str, Any]) -> str:
    c = counts.get(workload, {})
    if workload == "app_traffic":
        return (f"Application traffic: a backlog of {c.get('count', '?'):,} notifications "
                "from many small transactions of 4 senders on 8 channels, JSON rows of "
                "60-240 bytes")
    if workload == "trigger_burst":
        return (f"Trigger burst: one UPDATE of {c.get('count', '?'):,} rows of a table with "
                "pgwire_pubsub.triggers' trigger, each row as JSON")
    if workload == "connect":
        return f"Connect, SCRAM-SHA-256 authentication, close ({c.get('count', '?'):,} times)"
    if workload == "notify":
        return f"Sequential notify, 64-byte payloads ({c.get('count', '?'):,} round trips)"
    if workload == "notify_many":
        return (f"notify_many, batches of {c.get('size', '?'):,} "
                f"({c.get('batches', '?')} batches)")
    if workload == "receive_burst":
        return (f"One-sender burst: {c.get('count', '?'):,} notifications of 64 bytes "
                "on one channel from one transaction")
    if workload == "pingpong":
        return f"Ping-pong between two connections ({c.get('count', '?'):,} round trips)"
    if workload == "memory":
        return (f"Memory held per pending notification ({c.get('count', '?'):,} received, "
                "not taken)")
    return f"Import time (median of {c.get('repeats', '?')} fresh interpreters)"


def fmt(value: Optional[float], digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 10 ** digits or (value == int(value) and abs(value) >= 100):
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


@dataclass
class Stat:
    median: float
    low: float
    high: float
    n: int

    def cell(self, digits: int = 3) -> str:
        low, high = fmt(self.low, digits), fmt(self.high, digits)
        if self.n == 1 or low == high:
            return fmt(self.median, digits)
        return f"{fmt(self.median, digits)} ({low}{DASH}{high})"


def stat(values: List[float]) -> Optional[Stat]:
    if not values:
        return None
    return Stat(statistics.median(values), min(values), max(values), len(values))


class Report:
    def __init__(self, meta: Dict[str, Any], peers: List[Dict[str, Any]], raw: Raw,
                 workloads: List[str]) -> None:
        self.meta = meta
        self.peers = peers
        self.raw = raw
        self.workloads = workloads
        self.labels = {p["key"]: p["label"] for p in peers}

    @staticmethod
    def shows(peer: Dict[str, Any], workload: str) -> bool:
        """Whether ``workload`` was run for ``peer``: a library's other ways run only the
        receive workloads."""
        return bool(peer.get("primary", True)) or workload in RECEIVE_WORKLOADS

    @staticmethod
    def row_label(peer: Dict[str, Any], workload: str) -> str:
        """The library, and in the receive workloads how it receives, when it has ways."""
        way = peer.get("way_label") if workload in RECEIVE_WORKLOADS and peer.get("way") else ""
        return f"{peer['label']} {way}" if way else str(peer["label"])

    # -- numbers ---------------------------------------------------------------------

    def stat(self, key: str, workload: str, metric: str) -> Optional[Stat]:
        runs = self.raw.get(key, {}).get(workload, [])
        return stat([r[metric] for r in runs if metric in r and r[metric] is not None])

    def median(self, key: str, workload: str, metric: str) -> Optional[float]:
        s = self.stat(key, workload, metric)
        return None if s is None else s.median

    def ratio(self, key: str, workload: str, metric: str) -> Optional[float]:
        mine, base = self.median(key, workload, metric), self.median(BASELINE, workload, metric)
        if mine is None or not base:
            return None
        return mine / base

    def status(self, key: str, workload: str) -> Optional[str]:
        """'n/a', or the first error, when there is no number."""
        runs = self.raw.get(key, {}).get(workload, [])
        if any(r.get("na") for r in runs):
            return "n/a"
        errors = [r["error"] for r in runs if "error" in r]
        if errors and len(errors) == len(runs):
            return f"failed: {errors[0]}"
        return None

    def memory_fit(self, key: str) -> Optional[Tuple[float, float, str]]:
        """(bytes per payload byte, constant bytes, method): a line through the 64-byte
        and 1 KiB payload medians."""
        from bench_library import BIG_PAYLOAD, PAYLOAD_SIZE

        for method in ("traced", "rss"):
            small = self.median(key, "memory", f"bytes_{method}")
            big = self.median(key, "memory", f"bytes_{method}_1k")
            if small is not None and big is not None:
                slope = (big - small) / (BIG_PAYLOAD - PAYLOAD_SIZE)
                return slope, small - slope * PAYLOAD_SIZE, method
        return None

    def notify_many_speedup(self, key: str) -> Optional[float]:
        many, one = self.median(key, "notify_many", "rate"), self.median(key, "notify", "rate")
        if many is None or not one:
            return None
        return many / one

    def targets(self) -> List[Dict[str, Any]]:
        """The project's performance targets, each with what was measured and whether
        it holds (None when a number is missing)."""
        me = "pgwire_pubsub"
        out: List[Dict[str, Any]] = []

        def add(target: str, measured: str, holds: Optional[bool]) -> None:
            out.append({"target": target, "measured": measured, "holds": holds})

        def vs(metric: str, workload: str, unit: str, limit: float, lower: bool,
               target: str, peer: str = BASELINE, who: str = me) -> None:
            mine, theirs = self.median(who, workload, metric), self.median(peer, workload, metric)
            if mine is None or theirs is None:
                return
            r = mine / theirs
            add(target, f"{fmt(mine)} vs {fmt(theirs)} {unit} ({r:.2f}{TIMES})",
                r <= limit if lower else r >= limit)

        def less_than(workload: str, factor: float, name: str, who: str = me,
                      peers: Tuple[str, ...] = ("psycopg", "asyncpg", "pg8000")) -> None:
            mine = self.median(who, workload, "cpu_us")
            for peer in peers:
                theirs = self.median(peer, workload, "cpu_us")
                if mine and theirs is not None:
                    r = theirs / mine
                    add(f"{name}: CPU per notification \u2265 {factor:g}{TIMES} less than {peer}",
                        f"{fmt(mine)} vs {fmt(theirs)} {US} ({r:.2f}{TIMES} less)", r >= factor)

        per = f"{US}/notification"
        ways = ((me, "get_events()"), (f"{me}:events", "events()"))
        # The asyncio client (issue 13) against the asyncio peers.
        aio = f"{me}.aio"
        aio_ways = ((aio, "get_events()"), (f"{aio}:events", "events()"))
        aio_peers = ("asyncpg", "psycopg-async")
        if "app_traffic" in self.workloads:
            for who, way in ways:
                vs("cpu_us", "app_traffic", per, 1.2, True, f"application traffic, {way}: CPU "
                   f"per notification \u2264 1.2{TIMES} psycopg2", who=who)
            less_than("app_traffic", 1.5, "application traffic")
            vs("cpu_us", "app_traffic", per, 0.6, True, "application traffic on PyPy: CPU per "
               f"notification \u2264 0.6{TIMES} psycopg2 (on CPython)", who=f"{me}@pypy")
            for who, way in aio_ways:
                less_than("app_traffic", 1.5, f"asyncio application traffic, {way}", who,
                          aio_peers)
        if "trigger_burst" in self.workloads:
            for who, way in ways:
                vs("cpu_us", "trigger_burst", per, 1.0, True,
                   f"trigger burst, {way}: CPU per notification \u2264 psycopg2", who=who)
        if "receive_burst" in self.workloads:
            for who, way in ways:
                vs("cpu_us", "receive_burst", per, 1.0, True,
                   f"one-sender burst, {way}: CPU per notification \u2264 psycopg2", who=who)
            less_than("receive_burst", 2.5, "one-sender burst")
            vs("rate", "receive_burst", "notifications/s", 1.0, False,
               "one-sender burst: wall-clock rate \u2265 psycopg2")
            for who, way in aio_ways:
                less_than("receive_burst", 2.0, f"asyncio one-sender burst, {way}", who,
                          aio_peers)
        if "notify" in self.workloads:
            vs("cpu_us", "notify", per, 1.25, True,
               f"sequential notify: CPU \u2264 1.25{TIMES} psycopg2")
            vs("cpu_us", "notify", per, 1.0, True, "asyncio sequential notify: CPU \u2264 "
               "asyncpg", peer="asyncpg", who=aio)
        speedup = self.notify_many_speedup(me)
        if speedup is not None:
            add(f"notify_many \u2265 20{TIMES} the sequential notify rate",
                f"{speedup:.1f}{TIMES}", speedup >= 20)
        if "pingpong" in self.workloads:
            vs("median_us", "pingpong", US, 1.0, True, "ping-pong median \u2264 psycopg2")
            vs("median_us", "pingpong", US, 1.0, True, "asyncio ping-pong median \u2264 asyncpg",
               peer="asyncpg", who=aio)
        if "connect" in self.workloads:
            vs("rate", "connect", "connections/s", 1.0, False, "connect rate \u2265 psycopg2")
        fit = self.memory_fit(me)
        if fit is not None:
            from bench_library import PAYLOAD_SIZE

            slope, constant, method = fit
            c = self.meta.get("memory_constant", 64.0)
            held = self.median(me, "memory", f"bytes_{method}") or 0.0
            limit = 1.5 * PAYLOAD_SIZE + c
            add(f"memory per pending \u2264 1.5 {TIMES} payload + {c:g} B",
                f"{held:.0f} B at 64-byte payloads (limit {limit:.0f} B); "
                f"fit over 64 B and 1 KiB: {slope:.2f} B per payload byte {signed(constant)} B "
                f"({method})",
                held <= limit and slope <= 1.5)
        return out

    # -- output ---------------------------------------------------------------------

    def as_json(self) -> Dict[str, Any]:
        summary: Dict[str, Any] = {}
        for p in self.peers:
            key = p["key"]
            summary[key] = {}
            for w in self.workloads:
                if not self.shows(p, w):
                    continue
                entry: Dict[str, Any] = {}
                for metric in METRICS[w]:
                    s = self.stat(key, w, metric.key)
                    if s is not None:
                        entry[metric.key] = {"median": s.median, "min": s.low, "max": s.high,
                                             "rounds": s.n,
                                             "ratio_to_psycopg2": self.ratio(key, w, metric.key)}
                if w == "notify_many":
                    entry["ratio_to_own_notify"] = self.notify_many_speedup(key)
                if w == "memory":
                    fit = self.memory_fit(key)
                    if fit is not None:
                        entry["fit"] = {"per_payload_byte": fit[0], "constant": fit[1],
                                        "method": fit[2]}
                status = self.status(key, w)
                if status:
                    entry["status"] = status
                summary[key][w] = entry
        return {"meta": self.meta, "peers": self.peers, "summary": summary,
                "targets": self.targets(), "raw": self.raw}

    def markdown(self) -> str:
        m = self.meta
        lines = [
            "# pgwire_pubsub benchmarks",
            "",
            f"`{m['command']}`, {m['date']}: {m['rounds']} round(s) interleaved between the "
            "libraries, each run in a fresh process; every cell is the median over rounds "
            f"with the min{DASH}max in brackets. Ratios are to psycopg2's median "
            f"({TIMES}1 is psycopg2; for CPU, memory and latency lower is better, for rates "
            "higher).",
            "",
            f"- machine: {m['cpu']}, {m['cores']} cores, {m['system']}; load average "
            f"{m.get('load_before')} before, {m.get('load_after')} after",
            f"- Python: {m['python']}" + (f"; PyPy: {m['pypy']}" if m.get("pypy") else ""),
            f"- PostgreSQL {m['postgresql']}: {m['server']}; TLS and GSS encryption off for "
            f"every client; the connect workload's role: `{m.get('connect_role')}`",
            "- libraries: " + ", ".join(p["label"] for p in self.peers
                                        if p.get("primary", True))
            + (f"; pgwire_pubsub from the checkout at `{m['checkout']}`"
               if m.get("checkout") else ""),
            "",
        ]
        targets = self.targets()
        if targets:
            lines += ["## Targets", "", "| target | measured | holds |", "|---|---|---|"]
            for t in targets:
                holds = {True: "yes", False: "**no**", None: "?"}[t["holds"]]
                lines.append(f"| {t['target']} | {t['measured']} | {holds} |")
            lines.append("")
        for w in self.workloads:
            lines += self._table(w)
        lines += ["## How each library is used", ""]
        for p in self.peers:
            if (p["python"] == self.peers[0]["python"] and p.get("how")
                    and p.get("primary", True)):
                lines.append(f"- {p['how']}")
        lines += [
            "",
            "CPU is `time.process_time()` of the client process per operation (in the "
            "one-sender burst, the committing thread's own CPU time is left out); ping-pong "
            "runs both connections in one process, so its CPU is both sides'. The "
            "application traffic and the trigger burst are made by the server while the "
            "listener reads nothing (4 concurrent `DO` blocks that commit every few "
            "notifications; a fresh table's bulk `UPDATE`), and the clock runs while the "
            "listener takes the backlog (`benchmarks/bench_backlog.py`). The one-sender "
            "burst's sender runs `SELECT count(pg_notify('bench', lpad(i::text, 64, 'x'))) "
            "FROM generate_series(1, N) i` in a transaction before the clock starts "
            "(count() so that it gets one row back), and a thread commits once it has "
            "started (for the asyncio libraries, a task on the same loop, whose round trip "
            "counts). Import times use a private bytecode cache filled by a first, untimed "
            "import.",
            "",
        ]
        return "\n".join(lines)

    def _table(self, workload: str) -> List[str]:
        metrics = METRICS[workload]
        head = ["library"]
        for metric in metrics:
            head.append(metric.label)
            if metric.ratio:
                head.append(f"{TIMES} psycopg2")
        if workload == "notify_many":
            head += [f"{TIMES} own notify rate", "how"]
        if workload == "memory":
            head += ["per payload byte + constant"]
        lines = [f"## {title(workload, self.meta.get('counts', {}))}", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for p in self.peers:
            if not self.shows(p, workload):
                continue
            key = p["key"]
            status = self.status(key, workload)
            row = [self.row_label(p, workload)]
            if status:
                row += [status] + [""] * (len(head) - 2)
                lines.append("| " + " | ".join(row) + " |")
                continue
            for metric in metrics:
                s = self.stat(key, workload, metric.key)
                row.append(s.cell(metric.digits) if s else "n/a")
                if metric.ratio:
                    r = self.ratio(key, workload, metric.key)
                    row.append("" if r is None else f"{r:.2f}")
            if workload == "notify_many":
                speedup = self.notify_many_speedup(key)
                row.append("" if speedup is None else f"{speedup:.1f}")
                how = next((r.get("how") for r in self.raw[key][workload] if r.get("how")), "")
                row.append(how or "")
            if workload == "memory":
                fit = self.memory_fit(key)
                row.append("" if fit is None else
                           f"{fit[0]:.2f} {TIMES} payload {signed(fit[1])} B ({fit[2]})")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        return lines

    def chart(self, path: str) -> Optional[str]:
        """A PNG: per workload, a bar per library for its cost (left) and speed (right)
        metric, with the min-max over rounds as error bars.  None without matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from matplotlib.ticker import FuncFormatter, MaxNLocator
        except ImportError:
            return None
        rows = [w for w in self.workloads if w in CHART]
        fig, axes = plt.subplots(len(rows), 2, figsize=(13, 2.2 + 1.0 * len(rows) *
                                                          max(2.0, len(self.peers) * 0.35)),
                                 squeeze=False)
        palette = {(True, False): "#d62728", (True, True): "#ff9896",
                   (False, False): "#1f77b4", (False, True): "#aec7e8"}
        for i, workload in enumerate(rows):
            peers = [p for p in self.peers if self.shows(p, workload)]
            labels = [self.row_label(p, workload) for p in peers]
            colors = [palette[p["lib"].startswith("pgwire_pubsub"), p["implementation"] == "PyPy"]
                      for p in peers]
            for j, key in enumerate(CHART[workload]):
                ax = axes[i][j]
                metric = next(x for x in METRICS[workload] if x.key == key)
                values, low, high = [], [], []
                for p in peers:
                    s = self.stat(p["key"], workload, key)
                    values.append(s.median if s else 0.0)
                    low.append(s.median - s.low if s else 0.0)
                    high.append(s.high - s.median if s else 0.0)
                ys = list(range(len(labels)))
                ax.barh(ys, values, xerr=[low, high], color=colors, capsize=3)
                ax.set_yticks(ys)
                ax.set_yticklabels(labels, fontsize=8)
                ax.invert_yaxis()
                better = "higher" if metric.higher_is_better else "lower"
                ax.set_title(f"{workload}: {metric.label} ({better} is better)", fontsize=9)
                positive = [v for v in values if v > 0]
                if positive and max(positive) / min(positive) > 30:
                    ax.set_xscale("log")
                else:
                    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # room for 1,500,000
                for y, v, h in zip(ys, values, high):
                    if v > 0:
                        ax.text(v + h, y, " " + fmt(v), va="center", fontsize=7)
                    else:
                        ax.text(0, y, " n/a", va="center", fontsize=7)
                ax.tick_params(axis="x", labelsize=7)
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
        m = self.meta
        fig.suptitle(f"pgwire_pubsub benchmarks: {m['cpu']}, {m['cores']} cores; "
                     f"{m['python']}; PostgreSQL {m['postgresql']}", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.98))
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description="Write the Markdown tables and the chart of a benchmark run again, "
        "beside its JSON (RESULTS.md, RESULTS.png)."
    )
    parser.add_argument("results", metavar="RESULTS.json", help="what benchmarks/run.py wrote")
    path = parser.parse_args(argv).results
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        sys.exit(f"cannot read {path}: {exc}")
    workloads = [w for w in METRICS if any(w in r for r in data["raw"].values())]
    report = Report(data["meta"], data["peers"], data["raw"], workloads)
    base = os.path.splitext(path)[0]
    with open(base + ".md", "w") as f:
        f.write(report.markdown())
    chart = report.chart(base + ".png")
    print(f"wrote {base}.md" + (f", {chart}" if chart else ""))


if __name__ == "__main__":
    main()
