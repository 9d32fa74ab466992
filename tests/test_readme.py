"""Every Python example in README.md runs as written, in order, against the test server."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> List[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 8


def test_readme_examples_run(pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if not pg.has_roles:
        pytest.skip("needs the fixture's own cluster (creates a database)")
    if "test" not in pg.psql("SELECT datname FROM pg_database").split():
        pg.psql("CREATE DATABASE test")
    for key in ("PGSERVICE", "PGPASSWORD", "PGSSLMODE", "PGOPTIONS", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PGHOST", pg.host)
    monkeypatch.setenv("PGPORT", str(pg.port))
    namespace: Dict[str, Any] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number, block in enumerate(python_blocks(), 1):
            try:
                exec(compile(block, f"README.md python block {number}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"README block {number} failed:\n{block}") from exc
    printed = out.getvalue()
    expected = r"Notify\(\d+, 'test', 'message 1'\)\nNotify\(\d+, 'test', 'message 2'\)\nNone"
    assert re.search(expected, printed)
    assert "test hello" in printed
    assert "no event for 0.1 s" in printed
    assert "{'id': 1, 'item': 'tea', 'tg_op': 'INSERT'}" in printed
