"""The benchmark suite (``benchmarks/run.py``) at tiny counts, so that it cannot rot.

Every workload of every library that imports here runs once in this process; the
suite's own command runs once, for pgwire_pubsub only, from the worker processes to the
report.  Peers that are not installed are skipped (the ``bench`` extra brings them).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict

import pytest

import pgwire_pubsub
from pgwire_pubsub.testing.pgcluster import Server

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_library  # noqa: E402
import bench_report  # noqa: E402
import bench_workloads  # noqa: E402

TINY: Dict[str, Dict[str, Any]] = {
    "app_traffic": {"count": 300, "warmup": 50},
    "trigger_burst": {"count": 300, "warmup": 50},
    "connect": {"count": 2},
    "notify": {"count": 20},
    "notify_many": {"batches": 1, "size": 1000},
    "receive_burst": {"count": 500, "warmup": 100},
    "pingpong": {"count": 20},
    # tracemalloc traces nothing on PyPy
    "memory": {"count": 500, "method": "rss" if bench_library.IS_PYPY else "traced"},
}
LIBS = sorted(bench_workloads.LIBRARIES)
# Every library in every way it receives: (library, way) with "" for its only way.
WAYS = [(lib, way) for lib in LIBS for way in bench_workloads.LIBRARIES[lib].ways]


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", BENCHMARKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def conninfo(server: Server) -> Dict[str, Any]:
    main = server.dsn_kwargs("postgres")
    scram = server.dsn_kwargs("scram_user") if server.has_roles else main
    return {"main": main, "scram": scram}


def installed(lib: str) -> bool:
    try:
        bench_workloads.LIBRARIES[lib].version()
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("workload", sorted(set(TINY) - set(bench_library.RECEIVE_WORKLOADS)))
@pytest.mark.parametrize("lib", LIBS)
def test_workload(pg: Server, lib: str, workload: str) -> None:
    if not installed(lib):
        pytest.skip(f"{lib} is not installed (pip install -e '.[bench]')")
    if not bench_workloads.supports(lib, workload):
        pytest.skip(f"{lib} has no {workload}")
    result = bench_workloads.run(lib, workload, conninfo(pg), TINY[workload])
    assert result["ops"] > 0
    if workload == "memory":
        if result["method"] == "traced":  # RSS at these counts is mostly noise
            assert 64 < result["bytes_per_pending"] < 10_000
    else:
        assert result["rate"] > 0 and result["cpu_us"] >= 0
    if workload == "pingpong":
        assert 0 < result["median_us"] <= result["p99_us"]


@pytest.mark.parametrize("workload", bench_library.RECEIVE_WORKLOADS)
@pytest.mark.parametrize("lib,way", WAYS)
def test_receive_workload_in_every_way(pg: Server, lib: str, way: str, workload: str) -> None:
    if not installed(lib):
        pytest.skip(f"{lib} is not installed (pip install -e '.[bench]')")
    result = bench_workloads.run(lib, workload, conninfo(pg), {**TINY[workload], "way": way})
    assert result["ops"] == TINY[workload]["count"]
    assert result["rate"] > 0 and result["cpu_us"] >= 0


def test_an_unknown_way_is_refused(pg: Server) -> None:
    with pytest.raises(ValueError, match="pgwire_pubsub receives in these ways: get_events"):
        bench_workloads.run("pgwire_pubsub", "app_traffic", conninfo(pg),
                            {**TINY["app_traffic"], "way": "psychic"})


@pytest.mark.parametrize("lib", LIBS)
def test_import_module(lib: str) -> None:
    if not installed(lib):
        pytest.skip(f"{lib} is not installed")
    importlib.import_module(bench_workloads.LIBRARIES[lib].imported_module())


def test_every_library_is_in_the_suite() -> None:
    """``run.py``'s peers are the worker's libraries, the asyncio ones among them."""
    runner = load_runner()
    assert sorted(runner.LIBS) == LIBS
    assert {"pgwire_pubsub.aio", "psycopg-async", "asyncpg"} <= set(LIBS)


def test_suite_command(pg: Server, tmp_path: Path) -> None:
    """``run.py --quick`` end to end for pgwire_pubsub, blocking and asyncio: worker
    processes, the Markdown, the JSON (and the chart, when matplotlib is installed)."""
    runner = load_runner()
    role = "scram_user" if pg.has_roles else "postgres"
    argv = ["--quick", "--libs", "pgwire_pubsub,pgwire_pubsub.aio", "--out", str(tmp_path),
            "--name", "smoke", "--dsn", pg.dsn("postgres"), "--connect-dsn", pg.dsn(role)]
    data = runner.main(argv)
    for lib in ("pgwire_pubsub", "pgwire_pubsub.aio"):
        summary = data["summary"][lib]
        for workload in runner.WORKLOADS:
            assert "status" not in summary[workload], (lib, summary[workload])
            assert summary[workload], (lib, workload)
        # the other way: the receive workloads only, reported first
        assert set(data["summary"][f"{lib}:events"]) == set(runner.RECEIVE_WORKLOADS)
    summary = data["summary"]["pgwire_pubsub"]
    assert runner.WORKLOADS[: len(runner.RECEIVE_WORKLOADS)] == list(runner.RECEIVE_WORKLOADS)
    fit = summary["memory"]["fit"]
    assert math.isfinite(fit["per_payload_byte"]) and math.isfinite(fit["constant"])
    if fit["method"] == "traced":  # RSS growth (PyPy) over --quick's few notifications is noise
        assert fit["per_payload_byte"] > 0
    saved = json.loads((tmp_path / "smoke.json").read_text())
    assert saved["meta"]["postgresql"]
    markdown = (tmp_path / "smoke.md").read_text()
    assert "## Targets" in markdown and "notify_many" in markdown
    assert f"pgwire_pubsub {pgwire_pubsub.__version__}" in markdown
    assert " for e in events() |" in markdown
    # (named with the interpreter where it is not CPython: "pgwire_pubsub.aio 0.1.0 (PyPy)")
    assert re.search(rf"pgwire_pubsub\.aio {re.escape(pgwire_pubsub.__version__)}( \(\w+\))? "
                     r"async for e in events\(\) \|", markdown)
    assert markdown.index("## Application traffic") < markdown.index("## Connect")
    (tmp_path / "smoke.md").unlink()
    bench_report.main([str(tmp_path / "smoke.json")])
    assert (tmp_path / "smoke.md").read_text() == markdown
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert os.path.getsize(tmp_path / "smoke.png") > 1000


def test_report_command_explains_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        bench_report.main(["--help"])
    assert done.value.code == 0 and "RESULTS.json" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r"cannot read .*missing\.json"):
        bench_report.main([str(tmp_path / "missing.json")])


def test_a_negative_fit_constant_reads_as_a_subtraction() -> None:
    assert bench_report.signed(58.2) == "+ 58"
    assert bench_report.signed(-19.6) == "\u2212 20"
    assert bench_report.signed(-0.2) == "+ 0"
