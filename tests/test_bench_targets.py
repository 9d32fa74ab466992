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
EVENTS = "pgwire_pubsub:events"  # the same library, taking events through events()
PYPY = "pgwire_pubsub@pypy"
AIO = "pgwire_pubsub.aio"  # the asyncio client, taking events with get_events()
AIO_EVENTS = "pgwire_pubsub.aio:events"  # and with async for ... in events()

# Every target holds, none at its limit.
ROOMY: Figures = {
    ME: {
        "app_traffic": {"cpu_us": 1.0},
        "trigger_burst": {"cpu_us": 0.6},
        "receive_burst": {"cpu_us": 0.4, "rate": 1.2e6},
        "notify": {"cpu_us": 40.0, "rate": 1000.0},
        "notify_many": {"rate": 25_000.0},
        "pingpong": {"median_us": 180.0},
        "connect": {"rate": 300.0},
        # 120 B at 64-byte payloads, 1.02 B more per payload byte
        "memory": {"bytes_traced": 120.0, "bytes_traced_1k": 1100.0},
    },
    EVENTS: {
        "app_traffic": {"cpu_us": 1.0},
        "trigger_burst": {"cpu_us": 0.6},
        "receive_burst": {"cpu_us": 0.4},
    },
    PYPY: {"app_traffic": {"cpu_us": 0.5}},
    AIO: {
        "app_traffic": {"cpu_us": 1.0},
        "receive_burst": {"cpu_us": 0.4},
        "notify": {"cpu_us": 40.0},
        "pingpong": {"median_us": 180.0},
    },
    AIO_EVENTS: {"app_traffic": {"cpu_us": 1.0}, "receive_burst": {"cpu_us": 0.4}},
    "psycopg2": {
        "app_traffic": {"cpu_us": 1.0},
        "trigger_burst": {"cpu_us": 0.7},
        "receive_burst": {"cpu_us": 0.5, "rate": 1.0e6},
        "notify": {"cpu_us": 40.0},
        "pingpong": {"median_us": 200.0},
        "connect": {"rate": 200.0},
    },
    "psycopg": {"app_traffic": {"cpu_us": 1.6}, "receive_burst": {"cpu_us": 1.2}},
    "psycopg-async": {"app_traffic": {"cpu_us": 1.7}, "receive_burst": {"cpu_us": 1.2}},
    "asyncpg": {
        "app_traffic": {"cpu_us": 1.7},
        "receive_burst": {"cpu_us": 1.5},
        "notify": {"cpu_us": 45.0},
        "pingpong": {"median_us": 200.0},
    },
    "pg8000": {"app_traffic": {"cpu_us": 1.8}, "receive_burst": {"cpu_us": 1.6}},
}


def changed(base: Figures, *edits: Any) -> Figures:
    """``base`` with (library, workload, metric, value) edits."""
    figures = copy.deepcopy(base)
    for lib, workload, metric, value in edits:
        figures.setdefault(lib, {}).setdefault(workload, {})[metric] = value
    return figures


# Every target holds, most exactly at their limits (the comparisons are <= and >=); a few
# figures keep room, so that each target can be missed by a hair alone.
AT_THE_LIMIT = changed(
    ROOMY,
    (ME, "app_traffic", "cpu_us", 1.2),  # 1.2x psycopg2's 1.0
    (EVENTS, "app_traffic", "cpu_us", 1.2),
    ("psycopg", "app_traffic", "cpu_us", 2.0),  # 1.67x less: room
    ("asyncpg", "app_traffic", "cpu_us", 2.0),
    ("pg8000", "app_traffic", "cpu_us", 2.0),
    (PYPY, "app_traffic", "cpu_us", 0.6),  # 0.6x psycopg2
    ("psycopg2", "trigger_burst", "cpu_us", 0.6),  # 1.0x
    (EVENTS, "receive_burst", "cpu_us", 0.3),  # room
    ("psycopg2", "receive_burst", "cpu_us", 0.4),  # 1.0x
    ("psycopg", "receive_burst", "cpu_us", 1.0),  # 2.5x less
    ("asyncpg", "receive_burst", "cpu_us", 1.0),
    ("pg8000", "receive_burst", "cpu_us", 1.0),
    ("psycopg2", "receive_burst", "rate", 1.2e6),  # 1.0x
    (ME, "notify", "cpu_us", 50.0),  # 1.25x
    (ME, "notify_many", "rate", 20_000.0),  # 20x its own notify rate
    ("psycopg2", "pingpong", "median_us", 180.0),
    ("psycopg2", "connect", "rate", 300.0),
    (ME, "memory", "bytes_traced", 160.0),  # 1.5 x 64 + 64
    (ME, "memory", "bytes_traced_1k", 160.0 + 1.5 * (1024 - 64)),  # 1.5 B per byte
    (AIO, "app_traffic", "cpu_us", 1.25),  # 1.5x less than psycopg-async, 1.6x asyncpg
    (AIO_EVENTS, "app_traffic", "cpu_us", 1.25),
    ("psycopg-async", "app_traffic", "cpu_us", 1.875),
    (AIO, "receive_burst", "cpu_us", 0.5),  # 2x less than asyncpg, 2.4x psycopg-async
    (AIO_EVENTS, "receive_burst", "cpu_us", 0.5),
    ("psycopg-async", "receive_burst", "cpu_us", 1.2),
    (AIO, "notify", "cpu_us", 45.0),  # asyncpg's
    (AIO, "pingpong", "median_us", 200.0),  # asyncpg's
)

LE, GE, X = "\u2264", "\u2265", "\u00d7"
# Each target, in the report's order, and the edits that miss it by a hair (from
# AT_THE_LIMIT).  Where two targets share a peer's figure, the edit that misses one gives
# the other room (a lower figure of the asyncio client's).
MISSES = {
    f"application traffic, get_events(): CPU per notification {LE} 1.2{X} psycopg2":
        [(ME, "app_traffic", "cpu_us", 1.2001)],
    f"application traffic, events(): CPU per notification {LE} 1.2{X} psycopg2":
        [(EVENTS, "app_traffic", "cpu_us", 1.2001)],
    f"application traffic: CPU per notification {GE} 1.5{X} less than psycopg":
        [("psycopg", "app_traffic", "cpu_us", 1.79)],
    f"application traffic: CPU per notification {GE} 1.5{X} less than asyncpg":
        [("asyncpg", "app_traffic", "cpu_us", 1.79), (AIO, "app_traffic", "cpu_us", 1.0),
         (AIO_EVENTS, "app_traffic", "cpu_us", 1.0)],
    f"application traffic: CPU per notification {GE} 1.5{X} less than pg8000":
        [("pg8000", "app_traffic", "cpu_us", 1.79)],
    f"application traffic on PyPy: CPU per notification {LE} 0.6{X} psycopg2 (on CPython)":
        [(PYPY, "app_traffic", "cpu_us", 0.6001)],
    f"asyncio application traffic, get_events(): CPU per notification {GE} 1.5{X} less "
    "than asyncpg":
        [("asyncpg", "app_traffic", "cpu_us", 1.874), (AIO_EVENTS, "app_traffic", "cpu_us", 1.0)],
    f"asyncio application traffic, get_events(): CPU per notification {GE} 1.5{X} less "
    "than psycopg-async":
        [(AIO, "app_traffic", "cpu_us", 1.2501)],
    f"asyncio application traffic, events(): CPU per notification {GE} 1.5{X} less than "
    "asyncpg":
        [("asyncpg", "app_traffic", "cpu_us", 1.874), (AIO, "app_traffic", "cpu_us", 1.0)],
    f"asyncio application traffic, events(): CPU per notification {GE} 1.5{X} less than "
    "psycopg-async":
        [(AIO_EVENTS, "app_traffic", "cpu_us", 1.2501)],
    f"trigger burst, get_events(): CPU per notification {LE} psycopg2":
        [(ME, "trigger_burst", "cpu_us", 0.6001)],
    f"trigger burst, events(): CPU per notification {LE} psycopg2":
        [(EVENTS, "trigger_burst", "cpu_us", 0.6001)],
    f"one-sender burst, get_events(): CPU per notification {LE} psycopg2":
        [("psycopg2", "receive_burst", "cpu_us", 0.3999)],
    f"one-sender burst, events(): CPU per notification {LE} psycopg2":
        [(EVENTS, "receive_burst", "cpu_us", 0.4001)],
    f"one-sender burst: CPU per notification {GE} 2.5{X} less than psycopg":
        [("psycopg", "receive_burst", "cpu_us", 0.999)],
    f"one-sender burst: CPU per notification {GE} 2.5{X} less than asyncpg":
        [("asyncpg", "receive_burst", "cpu_us", 0.999), (AIO, "receive_burst", "cpu_us", 0.4),
         (AIO_EVENTS, "receive_burst", "cpu_us", 0.4)],
    f"one-sender burst: CPU per notification {GE} 2.5{X} less than pg8000":
        [("pg8000", "receive_burst", "cpu_us", 0.999)],
    f"one-sender burst: wall-clock rate {GE} psycopg2":
        [("psycopg2", "receive_burst", "rate", 1.2001e6)],
    f"asyncio one-sender burst, get_events(): CPU per notification {GE} 2{X} less than "
    "asyncpg":
        [(AIO, "receive_burst", "cpu_us", 0.5001)],
    f"asyncio one-sender burst, get_events(): CPU per notification {GE} 2{X} less than "
    "psycopg-async":
        [("psycopg-async", "receive_burst", "cpu_us", 0.999),
         (AIO_EVENTS, "receive_burst", "cpu_us", 0.4)],
    f"asyncio one-sender burst, events(): CPU per notification {GE} 2{X} less than asyncpg":
        [(AIO_EVENTS, "receive_burst", "cpu_us", 0.5001)],
    f"asyncio one-sender burst, events(): CPU per notification {GE} 2{X} less than "
    "psycopg-async":
        [("psycopg-async", "receive_burst", "cpu_us", 0.999),
         (AIO, "receive_burst", "cpu_us", 0.4)],
    f"sequential notify: CPU {LE} 1.25{X} psycopg2": [(ME, "notify", "cpu_us", 50.01)],
    f"asyncio sequential notify: CPU {LE} asyncpg": [(AIO, "notify", "cpu_us", 45.01)],
    f"notify_many {GE} 20{X} the sequential notify rate": [(ME, "notify_many", "rate", 19_999.0)],
    f"ping-pong median {LE} psycopg2": [("psycopg2", "pingpong", "median_us", 179.9)],
    f"asyncio ping-pong median {LE} asyncpg": [(AIO, "pingpong", "median_us", 200.1)],
    f"connect rate {GE} psycopg2": [("psycopg2", "connect", "rate", 300.1)],
    f"memory per pending {LE} 1.5 {X} payload + 64 B": [
        (ME, "memory", "bytes_traced", 160.1),
        (ME, "memory", "bytes_traced_1k", 160.1 + 1.5 * (1024 - 64)),
    ],
}
TARGETS = list(MISSES)
MEMORY = TARGETS[-1]
PINGPONG = f"ping-pong median {LE} psycopg2"


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
    assert verdicts(figures)[MEMORY] is False


def test_the_memory_target_uses_the_runs_constant() -> None:
    target, = (t for t in report(AT_THE_LIMIT, 32).targets() if t["target"].startswith("memory"))
    assert target["target"] == "memory per pending \u2264 1.5 \u00d7 payload + 32 B"
    assert target["holds"] is False  # 160 B is over 1.5 x 64 + 32
    assert "limit 128 B" in target["measured"]


def test_the_measured_column_shows_the_figures_and_their_ratio() -> None:
    measured = {t["target"]: t["measured"] for t in report(ROOMY).targets()}
    burst = f"one-sender burst, get_events(): CPU per notification {LE} psycopg2"
    assert measured[burst] == "0.4 vs 0.5 \u00b5s/notification (0.80\u00d7)"
    less = f"one-sender burst: CPU per notification {GE} 2.5{X} less than psycopg"
    assert measured[less] == "0.4 vs 1.2 \u00b5s (3.00\u00d7 less)"
    assert measured[f"notify_many {GE} 20{X} the sequential notify rate"] == "25.0\u00d7"


def test_a_target_without_its_figures_is_left_out() -> None:
    figures = {lib: w for lib, w in ROOMY.items() if lib not in ("psycopg2", "asyncpg")}
    left = list(verdicts(figures))
    assert left == [t for t in TARGETS if "psycopg2" not in t and "asyncpg" not in t]


def test_the_markdown_marks_what_does_not_hold() -> None:
    made = report(changed(AT_THE_LIMIT, *MISSES[PINGPONG]))
    made.meta.update(command="run.py", date="today", rounds=1, cpu="cpu", cores=2,
                     system="Linux", python="CPython 3.11", postgresql="15", server="local",
                     counts={w: {"count": 1, "size": 1, "batches": 1, "repeats": 1}
                             for w in bench_report.METRICS})
    lines = made.markdown().splitlines()
    assert f"| {PINGPONG} | 180 vs 180 \u00b5s (1.00\u00d7) | **no** |" in lines
    assert sum(line.endswith("| yes |") for line in lines) == len(TARGETS) - 1
