"""Every Python example in README.md and docs/*.md runs as written, in order, against the
test server (each file's examples share one namespace, as a reader's session would)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def python_blocks(path: Path = README) -> List[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def run_blocks(path: Path, pg: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run ``path``'s Python examples in order against ``pg``; what they printed."""
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
        for number, block in enumerate(python_blocks(path), 1):
            try:
                exec(compile(block, f"{path.name} python block {number}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{path.name} block {number} failed:\n{block}") from exc
    return out.getvalue()


def test_readme_has_examples() -> None:
    assert len(python_blocks()) >= 8


def test_readme_examples_run(pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    printed = run_blocks(README, pg, monkeypatch)
    expected = r"Notify\(\d+, 'test', 'message 1'\)\nNotify\(\d+, 'test', 'message 2'\)\nNone"
    assert re.search(expected, printed)
    assert "test hello" in printed
    assert "no event for 0.1 s" in printed
    assert "{'id': 1, 'item': 'tea', 'tg_op': 'INSERT'}" in printed
    assert "worker got job 1\nworker got job 2\nworker got stop\n" in printed


@pytest.mark.parametrize(
    "doc", [d for d in DOCS if python_blocks(d)], ids=lambda d: d.name)
def test_docs_examples_run(doc: Path, pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    run_blocks(doc, pg, monkeypatch)


def test_docs_links_resolve() -> None:
    """Every relative link in the README and docs names a file that exists."""
    for page in [README, *DOCS, ROOT / "benchmarks" / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
