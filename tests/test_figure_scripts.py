"""The scripts behind the figures of benchmarks/README.md and docs/reliability.md, at tiny
sizes, so that they cannot rot; and the fuzzer, shown to find a difference when there is one.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pytest

from pgwire_pubsub._blocking import socketio
from pgwire_pubsub.protocol import _bulk as bulk
from pgwire_pubsub.protocol import decoder as decoder_module
from pgwire_pubsub.testing.pgcluster import Server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bulk_worst_case
import burst_shapes
import fuzz_bulk
import soak
import syscall_timing


def test_the_fuzzer_finds_no_difference(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz_bulk.main(["--count", "300", "--seed", "7"]) == 0
    assert "300 inputs" in capsys.readouterr().out


def test_the_fuzzer_finds_a_bulk_path_that_loses_a_payload(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def loses_the_last(*args: Any) -> Optional[Tuple[List[str], int]]:
        taken = bulk.take_run(*args)
        if taken is None or len(taken[0]) < 3:
            return taken
        return taken[0][:-1], taken[1]

    monkeypatch.setattr(decoder_module, "take_run", loses_the_last)
    assert fuzz_bulk.main(["--count", "300", "--seed", "7"]) == 1
    assert "differs" in capsys.readouterr().out


def test_bulk_worst_case(tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    bulk_worst_case.main(["--count", "3000", "--repeats", "1", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and
            line[2:].split(" |")[0] in bulk_worst_case.SHAPES]
    assert len(rows) == len(bulk_worst_case.SHAPES)
    for row in rows:
        assert float(row.split("|")[-2]) > 0


def test_burst_shapes(pg: Server, tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    burst_shapes.main(["--count", "300", "--repeats", "1", "--libs", "pgwire_pubsub",
                       "--dsn", pg.dsn(sslmode="disable"), "--out", str(out)])
    text = out.read_text()
    for shape in burst_shapes.SHAPES:
        assert f"| {shape} | " in text


def test_burst_shapes_reads_in_the_size_asked(pg: Server, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``--recv-size`` sets what the reads take (a setting the read path no longer used
    once went unnoticed)."""
    monkeypatch.setattr(socketio, "RECV_SIZE", socketio.RECV_SIZE)  # put back afterwards
    monkeypatch.setattr(socketio, "_SIZES", socketio._SIZES)
    burst_shapes.child("pgwire_pubsub", next(iter(burst_shapes.SHAPES)), 50,
                       pg.dsn(sslmode="disable"), 1000)
    assert socketio._SIZES == (1000,)
    assert '"cpu_us"' in capsys.readouterr().out


def test_syscall_timing(pg: Server, tmp_path: Path) -> None:
    if sys.platform != "linux" or not (shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("builds an LD_PRELOAD shim: needs Linux and gcc")
    out = tmp_path / "table.md"
    syscall_timing.main(["--count", "30", "--dsn", pg.dsn(sslmode="disable"),
                         "--out", str(out)])
    rows = [line.split(" | ") for line in out.read_text().splitlines()
            if line.startswith("| pgwire_pubsub |")]
    assert len(rows) == len(syscall_timing.STATEMENTS)
    for row in rows:
        whole, send, wait = (float(cell) for cell in row[2:5])
        assert 0 < send + wait < whole
        assert row[6].endswith("(0 calls)")  # a plain socket's read changes no signal mask


def test_soak(pg: Server, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        soak.main(["--count", "6000", "--batch", "1000", "--terminate-every", "2",
                   "--dsn", pg.dsn(sslmode="disable")])
    out = capsys.readouterr().out
    assert done.value.code == 0, out
    assert "gaps without marker 0" in out and "duplicates/reorder  0" in out
