"""Every Python example in README.md and in docs/ runs as written, in order, against the test
server (a block holding test functions runs as a test file, with the pytest plugin)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [ROOT / "docs" / "protocol.md", ROOT / "docs" / "testing.md"]


def python_blocks(path: Path = README) -> List[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def run_blocks(path: Path, pytester: Optional[pytest.Pytester] = None) -> str:
    """Run ``path``'s blocks in one namespace; return what they printed."""
    namespace: Dict[str, Any] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for number, block in enumerate(python_blocks(path), 1):
            where = f"{path.name} python block {number}"
            if "\ndef test_" in block:
                assert pytester is not None, f"{where} is a test file"
                pytester.makepyfile(**{f"test_block_{number}": block})
                result = pytester.runpytest(f"test_block_{number}.py",
                                            "-p", "pgwire_pubsub.testing.plugin")
                assert result.ret == 0, f"{where} failed:\n{result.stdout.str()}"
                continue
            try:
                exec(compile(block, where, "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{where} failed:\n{block}") from exc
    return out.getvalue()


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 8


def use_server(pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PGSERVICE", "PGPASSWORD", "PGSSLMODE", "PGOPTIONS", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PGHOST", pg.host)
    monkeypatch.setenv("PGPORT", str(pg.port))


def test_readme_examples_run(pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if not pg.has_roles:
        pytest.skip("needs the fixture's own cluster (creates a database)")
    if "test" not in pg.psql("SELECT datname FROM pg_database").split():
        pg.psql("CREATE DATABASE test")
    use_server(pg, monkeypatch)
    printed = run_blocks(README)
    expected = r"Notify\(\d+, 'test', 'message 1'\)\nNotify\(\d+, 'test', 'message 2'\)\nNone"
    assert re.search(expected, printed)
    assert "test hello" in printed
    assert "no event for 0.1 s" in printed
    assert "{'id': 1, 'item': 'tea', 'tg_op': 'INSERT'}" in printed


def test_protocol_examples_run(pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if not pg.has_roles:
        pytest.skip("needs the fixture's own cluster (a role it trusts)")
    use_server(pg, monkeypatch)
    monkeypatch.setenv("PGUSER", "postgres")
    printed = run_blocks(DOCS[0])
    assert "Query(sql='LISTEN jobs')" in printed
    assert "jobs hello True" in printed
    assert "unknown message type b'Y'" in printed
    assert "PasswordMessage(<6 bytes hidden>)" in printed


def test_testing_examples_run(pg: Any, monkeypatch: pytest.MonkeyPatch,
                              pytester: pytest.Pytester) -> None:
    use_server(pg, monkeypatch)
    monkeypatch.setenv("PGWIRE_TEST_DSN", pg.dsn())  # start_server(), in blocks and plugin
    printed = run_blocks(DOCS[1], pytester)
    assert re.search(r"Notify\(\d+, 'jobs', 'hello'\)", printed)
    assert "Notify(4242, 'jobs', 'from the script')\nrefused: the server sent a malformed" in (
        printed)
    assert printed.count("28P01") == 2
    assert re.search(r"Notify\(\d+, 'jobs', 'slowly'\)", printed)
