"""The fan-out benchmark (``benchmarks/bench_fanout.py``) at tiny counts, so that it cannot
rot: every process it starts, both parts, the report and the chart."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from pgwire_pubsub.testing.pgcluster import Server

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_fanout  # noqa: E402


def test_the_quick_run_measures_both_parts_and_writes_the_report(pg: Server,
                                                                  tmp_path: Path) -> None:
    data = bench_fanout.main(["--quick", "--dsn", pg.dsn(), "--out", str(tmp_path)])
    rows = data["parts"]["server"]["rows"]
    assert [row["scenario"] for row in rows] == [
        "no listener", "1 listener", "1 listener + 10 idle listening connections",
        "1 fan-out connection, 100 subscribers"]
    assert all(rate > 0 for row in rows for rate in row["rates"])
    clients = data["parts"]["client"]
    assert {row["client"] for row in clients} == {"blocking", "asyncio"}
    for row in clients:
        (run,) = row["runs"]
        subscribers, channels, pattern = row["subscribers"], row["channels"], row["pattern"]
        each = row["count"] // channels if pattern == "burst" else row["count"]
        assert run["deliveries"] == subscribers * each
        assert run["cpu_ns_per_delivery"] > 0
    report = (tmp_path / "fanout-quick.md").read_text()
    assert "## 1. The server's cost" in report and "## 2. The client's cost" in report
    assert (tmp_path / "fanout-quick.json").exists()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "fanout-quick.png").stat().st_size > 0
