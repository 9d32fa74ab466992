"""Every Python example in README.md and docs/*.md runs as written, in order, against the
test server (each file's examples share one namespace, as a reader's session would; a block
holding test functions runs as a test file, with the pytest plugin)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pgwire_pubsub.localserver import find_pg_bindir, pgserver_bindir
from pgwire_pubsub.testing.pgcluster import LineReader

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def python_blocks(path: Path = README) -> List[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def run_blocks(path: Path, pg: Any, monkeypatch: pytest.MonkeyPatch,
               pytester: Optional[pytest.Pytester] = None,
               env: Optional[Dict[str, str]] = None) -> str:
    """Run ``path``'s Python examples in order against ``pg``; what they printed."""
    if not pg.has_roles:
        pytest.skip("needs the fixture's own cluster (creates a database)")
    if "test" not in pg.psql("SELECT datname FROM pg_database").split():
        pg.psql("CREATE DATABASE test")
    return run_blocks_on(path, pg.host, pg.port, monkeypatch, pytester, env)


def run_blocks_on(path: Path, host: str, port: int, monkeypatch: pytest.MonkeyPatch,
                  pytester: Optional[pytest.Pytester] = None,
                  env: Optional[Dict[str, str]] = None) -> str:
    """Run ``path``'s Python examples in order with PGHOST and PGPORT set (and no other
    PG* variable but ``env``'s, as for a reader who exported those); what they printed."""
    for key in [k for k in os.environ if k.startswith("PG") and not k.startswith("PGWIRE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PGHOST", host)
    monkeypatch.setenv("PGPORT", str(port))
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
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


def test_readme_examples_run(pg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_readme_output(run_blocks(README, pg, monkeypatch))


def assert_readme_output(printed: str) -> None:
    expected = r"Notify\(\d+, 'test', 'message 1'\)\nNotify\(\d+, 'test', 'message 2'\)\nNone"
    assert re.search(expected, printed)
    assert "test hello" in printed
    assert "no event for 0.1 s" in printed
    assert "{'id': 1, 'item': 'tea', 'tg_op': 'INSERT'}" in printed
    assert "worker got job 1\nworker got job 2\nworker got stop\n" in printed


def test_the_quick_start_runs_on_the_demos_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``pgwire-pubsub demo --serve`` prints makes the README's examples run as written."""
    if find_pg_bindir() is None and pgserver_bindir() is None:
        pytest.skip("no PostgreSQL server binaries here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    demo = subprocess.Popen([sys.executable, "-m", "pgwire_pubsub", "demo", "--serve"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, encoding="utf-8")
    try:
        assert demo.stdout is not None
        line = LineReader(demo.stdout).wait_for_line("export PGHOST=", 120)
        found = re.search(r"export PGHOST=(\S+) PGPORT=(\d+)", line)
        assert found, line
        assert_readme_output(run_blocks_on(README, found.group(1), int(found.group(2)),
                                           monkeypatch))
    finally:
        demo.terminate()  # the demo stops and removes its server
        assert demo.wait(120) == 0


@pytest.mark.parametrize(
    "doc", [d for d in DOCS if python_blocks(d)], ids=lambda d: d.name)
def test_docs_examples_run(doc: Path, pg: Any, monkeypatch: pytest.MonkeyPatch,
                           pytester: pytest.Pytester) -> None:
    starts_a_server = any("LocalServer(" in block for block in python_blocks(doc))
    if starts_a_server and find_pg_bindir() is None and pgserver_bindir() is None:
        pytest.skip("an example starts a throwaway server: no PostgreSQL server binaries here")
    env = {}
    if doc.name == "protocol.md":  # a bare socket logs in as a role the server trusts
        env["PGUSER"] = "postgres"
    if doc.name == "testing.md":  # start_server(), in the blocks and in the plugin
        env["PGWIRE_TEST_DSN"] = pg.dsn()
    printed = run_blocks(doc, pg, monkeypatch, pytester, env)
    if doc.name == "cli.md":  # the LocalServer example
        assert re.search(r"^Notify\(\d+, 'local', 'hello'\)$", printed, re.M), printed
    if doc.name == "protocol.md":
        assert "Query(sql='LISTEN jobs')" in printed
        assert "jobs hello True" in printed
        assert "unknown message type b'Y'" in printed
        assert "PasswordMessage(<6 bytes hidden>)" in printed
    if doc.name == "fanout.md":
        assert "iterator got job 1\niterator got job 2\n" in printed
        orders = ['order 1', 'order 2']
        assert repr([(name, orders) for name in "abc"]) in printed
        assert "[(0, 'order 1'), (1, 'order 1'), (2, 'order 1')]" in printed
        assert "callback got order 3\ncallback got order 4\n" in printed
        assert "Dropped(dropped=7)\n['8', '9', '10']\n" in printed
    if doc.name == "testing.md":
        assert re.search(r"Notify\(\d+, 'jobs', 'hello'\)", printed)
        assert "Notify(4242, 'jobs', 'from the script')\nrefused: the server sent a malformed" in (
            printed)
        assert printed.count("28P01") == 2
        assert re.search(r"Notify\(\d+, 'jobs', 'slowly'\)", printed)


def test_python_examples_are_in_python_blocks() -> None:
    """Only ```python blocks are run by the tests above: Python code in any other block
    would be an example that nobody checks."""
    looks_like_python = re.compile(r"^\s*(import \w|from [\w.]+ import )|\w+\.connect\(", re.M)
    for page in [README, *DOCS, ROOT / "benchmarks" / "README.md"]:
        blocks = re.findall(r"```(\w*)\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
        for info, body in blocks:
            assert info == "python" or not looks_like_python.search(body), (page.name, body)


def test_readme_commands_name_a_command_that_is_there() -> None:
    """The first command installs pgwire-pubsub in .venv/bin, which is not on PATH: the
    README's commands call it by that path, or after activating the virtualenv."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert ".venv/bin/pgwire-pubsub demo" in blocks[0]
    for block in blocks:
        activated = False
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if re.fullmatch(r"(\.|source) \.venv/bin/activate", command):
                activated = True
            if re.search(r"(^|[|;&]\s*)pgwire-pubsub\b", command):
                assert activated, f"pgwire-pubsub is not on PATH here: {line!r}"


def test_docs_links_resolve() -> None:
    """Every relative link in the README and docs names a file that exists."""
    for page in [README, *DOCS, ROOT / "benchmarks" / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
