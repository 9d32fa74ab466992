"""The benchmark report's target verdicts (``bench_report.Report.targets``), from known figures.

One set of figures meets every target with room to spare, one meets each exactly at its
limit; then each target in turn is missed by a hair while every other still holds.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_report

Figures = Dict[str, Dict[str, Dict[str, float]]]  # library -> workload -> metric -> value

ME = "pgwire_pubsub"

# Every target holds, none at its limit.
ROOMY: Figures = {
    ME: {
        "receive_burst": {"cpu_us": 0.4, "rate": 1.2e6},
        "notify": {"cpu_us": 40.0, "rate": 1000.0},
        "notify_many": {"rate": 25_000.0},
        "pingpong": {"median_us": 180.0},
        "connect": {"rate": 300.0},
        # 120 B at 64-byte payloads, 1.02 B more per payload byte
        "memory": {"bytes_traced": 120.0, "bytes_traced_1k": 1100.0},
    },
    "psycopg2": {
        "receive_burst": {"cpu_us": 0.5, "rate": 1.0e6},
        "notify": {"cpu_us": 40.0},
        "pingpong": {"median_us": 200.0},
        "connect": {"rate": 200.0},
    },
    "psycopg": {"receive_burst": {"cpu_us": 1.2}},
    "asyncpg": {"receive_burst": {"cpu_us": 1.5}},
    "pg8000": {"receive_burst": {"cpu_us": 1.6}},
}


def changed(base: Figures, *edits: Any) -> Figures:
    """``base`` with (library, workload, metric, value) edits."""
    figures = copy.deepcopy(base)
    for lib, workload, metric, value in edits:
        figures.setdefault(lib, {}).setdefault(workload, {})[metric] = value
    return figures


# Every target holds exactly at its limit (the comparisons are <= and >=).
AT_THE_LIMIT = changed(
    ROOMY,
    ("psycopg2", "receive_burst", "cpu_us", 0.4),  # 1.0x
    ("psycopg", "receive_burst", "cpu_us", 1.0),  # 2.5x less
    ("asyncpg", "receive_burst", "cpu_us", 1.0),
    ("pg8000", "receive_burst", "cpu_us", 1.0),
    ("psycopg2", "receive_burst", "rate", 1.2e6),  # 1.0x
    (ME, "notify", "cpu_us", 44.0),  # 1.1x
    (ME, "notify_many", "rate", 20_000.0),  # 20x its own notify rate
    ("psycopg2", "pingpong", "median_us", 180.0),
    ("psycopg2", "connect", "rate", 300.0),
    (ME, "memory", "bytes_traced", 160.0),  # 1.5 x 64 + 64
    (ME, "memory", "bytes_traced_1k", 160.0 + 1.5 * (1024 - 64)),  # 1.5 B per byte
)

TARGETS = [
    "receive burst: CPU per notification \u2264 psycopg2",
    "receive burst: CPU per notification \u2265 2.5\u00d7 less than psycopg",
    "receive burst: CPU per notification \u2265 2.5\u00d7 less than asyncpg",
    "receive burst: CPU per notification \u2265 2.5\u00d7 less than pg8000",
    "receive burst: wall-clock rate \u2265 psycopg2",
    "sequential notify: CPU \u2264 1.1\u00d7 psycopg2",
    "notify_many \u2265 20\u00d7 the sequential notify rate",
    "ping-pong median \u2264 psycopg2",
    "connect rate \u2265 psycopg2",
    "memory per pending \u2264 1.5 \u00d7 payload + 64 B",
]

# Each target missed by a hair, from AT_THE_LIMIT.
MISSES = {
    TARGETS[0]: [("psycopg2", "receive_burst", "cpu_us", 0.399)],
    TARGETS[1]: [("psycopg", "receive_burst", "cpu_us", 0.999)],
    TARGETS[2]: [("asyncpg", "receive_burst", "cpu_us", 0.999)],
    TARGETS[3]: [("pg8000", "receive_burst", "cpu_us", 0.999)],
    TARGETS[4]: [("psycopg2", "receive_burst", "rate", 1.2001e6)],
    TARGETS[5]: [(ME, "notify", "cpu_us", 44.01)],
    TARGETS[6]: [(ME, "notify_many", "rate", 19_999.0)],
    TARGETS[7]: [("psycopg2", "pingpong", "median_us", 179.9)],
    TARGETS[8]: [("psycopg2", "connect", "rate", 300.1)],
    TARGETS[9]: [(ME, "memory", "bytes_traced", 160.1),
                 (ME, "memory", "bytes_traced_1k", 160.1 + 1.5 * (1024 - 64))],
}


def report(figures: Figures, memory_constant: Optional[float] = None) -> bench_report.Report:
    """A report of one round per figure, as benchmarks/run.py builds it."""
    raw: bench_report.Raw = {
        lib: {w: [dict(workloads[w])] if w in workloads else [] for w in bench_report.METRICS}
        for lib, workloads in figures.items()
    }
    peers = [{"key": lib, "label": lib, "lib": lib, "python": "python3",
              "implementation": "CPython"} for lib in figures]
    meta: Dict[str, Any] = {}
    if memory_constant is not None:
        meta["memory_constant"] = memory_constant
    return bench_report.Report(meta, peers, raw, list(bench_report.METRICS))


def verdicts(figures: Figures) -> Dict[str, Optional[bool]]:
    out: Dict[str, Optional[bool]] = {}
    for target in report(figures).targets():
        out[target["target"]] = target["holds"]
    return out


@pytest.mark.parametrize("figures", [ROOMY, AT_THE_LIMIT], ids=["roomy", "at-the-limit"])
def test_every_target_holds(figures: Figures) -> None:
    assert verdicts(figures) == dict.fromkeys(TARGETS, True)


@pytest.mark.parametrize("target", TARGETS)
def test_a_target_missed_by_a_hair_is_reported_as_missed(target: str) -> None:
    expected = dict.fromkeys(TARGETS, True)
    expected[target] = False
    assert verdicts(changed(AT_THE_LIMIT, *MISSES[target])) == expected


def test_memory_fails_on_its_slope_alone() -> None:
    """Little held at 64-byte payloads, but 1.6 bytes more per payload byte."""
    figures = changed(ROOMY, (ME, "memory", "bytes_traced_1k", 120.0 + 1.6 * (1024 - 64)))
    assert verdicts(figures)[TARGETS[9]] is False


def test_the_memory_target_uses_the_runs_constant() -> None:
    target, = (t for t in report(AT_THE_LIMIT, 32).targets() if t["target"].startswith("memory"))
    assert target["target"] == "memory per pending \u2264 1.5 \u00d7 payload + 32 B"
    assert target["holds"] is False  # 160 B is over 1.5 x 64 + 32
    assert "limit 128 B" in target["measured"]


def test_the_measured_column_shows_the_figures_and_their_ratio() -> None:
    measured = {t["target"]: t["measured"] for t in report(ROOMY).targets()}
    assert measured[TARGETS[0]] == "0.4 vs 0.5 \u00b5s/notification (0.80\u00d7)"
    assert measured[TARGETS[1]] == "0.4 vs 1.2 \u00b5s (3.00\u00d7 less)"
    assert measured[TARGETS[6]] == "25.0\u00d7"


def test_a_target_without_its_figures_is_left_out() -> None:
    figures = {lib: w for lib, w in ROOMY.items() if lib not in ("psycopg2", "asyncpg")}
    assert list(verdicts(figures)) == [TARGETS[1], TARGETS[3], TARGETS[6], TARGETS[9]]


def test_the_markdown_marks_what_does_not_hold() -> None:
    made = report(changed(AT_THE_LIMIT, *MISSES[TARGETS[7]]))
    made.meta.update(command="run.py", date="today", rounds=1, cpu="cpu", cores=2,
                     system="Linux", python="CPython 3.11", postgresql="15", server="local",
                     counts={w: {"count": 1, "size": 1, "batches": 1, "repeats": 1}
                             for w in bench_report.METRICS})
    lines = made.markdown().splitlines()
    assert f"| {TARGETS[7]} | 180 vs 180 \u00b5s (1.00\u00d7) | **no** |" in lines
    assert sum(line.endswith("| yes |") for line in lines) == len(TARGETS) - 1
