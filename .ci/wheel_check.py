"""The wheel on its own: built from the checkout, checked (pure Python, nothing but the
package inside, no run-time dependency), installed into a fresh virtual environment with
nothing else in it, then the README's quick starts and ``pgwire-pubsub demo`` run from
there against a throwaway server (the package's own LocalServer).

    python .ci/wheel_check.py        # .ci/run does this

A quick start is a section of a page whose ```python blocks run in order in one
namespace, as test_readme.py runs them; add one to QUICK_STARTS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Dict, List, NamedTuple, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "pgwire_pubsub"
TIMEOUT = 300  # seconds for any one step: a guard against hangs


class QuickStart(NamedTuple):
    name: str
    page: str  # relative to the checkout
    heading: str  # the section: from this heading to the next of the same level
    expected: Tuple[str, ...]  # regular expressions its output must match


QUICK_STARTS = (
    QuickStart("blocking", "README.md", "## Quick start",
               (r"Notify\(\d+, 'test', 'message 1'\)", r"'tg_op': 'INSERT'")),
    QuickStart("asyncio", "README.md", "## Quick start, asyncio",
               (r"worker got job 1\nworker got job 2\nworker got stop",)),
)

# Runs in the fresh environment, from a folder outside the checkout: the wheel's
# package only. Starts a throwaway server and runs each quick start's blocks against it
# through the PG* variables, as test_readme.py does.
RUNNER = r'''
import contextlib, io, json, os, sys
import pgwire_pubsub
from pgwire_pubsub.localserver import LocalServer, find_pg_bindir, INSTALL_HINT

assert pgwire_pubsub.__file__.startswith(sys.prefix), pgwire_pubsub.__file__
starts = json.load(open(sys.argv[1]))
bindir = find_pg_bindir()
if bindir is None:
    sys.exit(INSTALL_HINT)
with LocalServer(bindir, prefix="pgwire-wheel-") as server:
    with pgwire_pubsub.connect(server.dsn()) as pubsub:
        pubsub.conn.execute("CREATE DATABASE test")
    for key in [k for k in os.environ if k.startswith("PG")]:
        del os.environ[key]
    os.environ.update(PGHOST=server.host, PGPORT=str(server.port))
    printed = {}
    for name, blocks in starts.items():
        namespace, out = {}, io.StringIO()
        with contextlib.redirect_stdout(out):
            for number, block in enumerate(blocks, 1):
                exec(compile(block, f"{name} quick start, block {number}", "exec"), namespace)
        printed[name] = out.getvalue()
print(json.dumps(printed))
'''


def step(what: str) -> None:
    print(f"-- {what}", flush=True)


def run(argv: List[str], cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
        capture_output: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=capture_output, text=True,
                          check=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def build(work: str) -> str:
    """The wheel of the checkout's files (not of a stale build/ folder)."""
    source = os.path.join(work, "source")
    files = run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                capture_output=True).stdout.splitlines()
    for name in files:
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(os.path.join(source, name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(source, name))
    out = os.path.join(work, "dist")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, source])
    (wheel,) = os.listdir(out)
    return os.path.join(out, wheel)


def check_contents(wheel: str) -> List[str]:
    """What is wrong with the wheel's name, files or metadata."""
    problems = []
    if not re.fullmatch(rf"{PACKAGE}-[^-]+-py3-none-any\.whl", os.path.basename(wheel)):
        problems.append(f"{os.path.basename(wheel)} is not a py3-none-any wheel")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(meta[0]).decode() if meta else ""
        tags = archive.read(meta[0].replace("METADATA", "WHEEL")).decode() if meta else ""
    for name in names:
        parts = name.split("/")
        if not (parts[0] == PACKAGE or parts[0].endswith(".dist-info")):
            problems.append(f"{name}: outside the package")
        if {"tests", "benchmarks"} & set(parts) or re.match(r"(test_.*|conftest)\.py$",
                                                            parts[-1]):
            problems.append(f"{name}: a test or benchmark file")
    for needed in (f"{PACKAGE}/__init__.py", f"{PACKAGE}/py.typed"):
        if needed not in names:
            problems.append(f"{needed} is missing")
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            problems.append(f"a run-time dependency: {line}")
    if "Root-Is-Purelib: true" not in tags or "Tag: py3-none-any" not in tags:
        problems.append(f"not pure Python: {tags!r}")
    return problems


def quick_start_blocks(start: QuickStart) -> List[str]:
    with open(os.path.join(ROOT, start.page), encoding="utf-8") as f:
        text = f.read()
    level = start.heading.split()[0]
    begin = text.index(start.heading + "\n")
    end = text.find(f"\n{level} ", begin + 1)
    return re.findall(r"```python\n(.*?)```", text[begin:end if end > 0 else None], re.S)


def install(work: str, wheel: str) -> str:
    """A fresh virtual environment holding the wheel and nothing else; its bin folder."""
    venv = os.path.join(work, "venv")
    run([sys.executable, "-m", "venv", venv])
    bindir = os.path.join(venv, "bin")
    run([os.path.join(bindir, "python"), "-m", "pip", "install", "--quiet", "--no-index",
         "--no-deps", "--only-binary=:all:", wheel])
    listed = run([os.path.join(bindir, "python"), "-m", "pip", "list", "--format=json"],
                 capture_output=True).stdout
    others = {d["name"] for d in json.loads(listed)} - {"pip", "setuptools", "pgwire-pubsub"}
    if others:
        raise SystemExit(f"the fresh environment holds more than the wheel: {sorted(others)}")
    return bindir


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pgwire-wheel-check-") as work:
        step("building the wheel")
        wheel = build(work)
        problems = check_contents(wheel)
        for problem in problems:
            print(f"FAILED: {problem}")
        if problems:
            return 1
        print(f"{os.path.basename(wheel)}: pure Python, the package alone, no dependencies")
        step("installing it into a fresh virtual environment")
        bindir = install(work, wheel)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PG", "PYTHON", "VIRTUAL_ENV"))}
        starts = {start.name: quick_start_blocks(start) for start in QUICK_STARTS}
        spec, runner = os.path.join(work, "starts.json"), os.path.join(work, "runner.py")
        with open(spec, "w") as f:
            json.dump(starts, f)
        with open(runner, "w") as f:
            f.write(RUNNER)
        step(f"running the quick starts ({', '.join(starts)}) from it")
        out = run([os.path.join(bindir, "python"), "-I", runner, spec], cwd=work, env=env,
                  capture_output=True).stdout
        printed = json.loads(out.splitlines()[-1])
        for start in QUICK_STARTS:
            missing = [p for p in start.expected if not re.search(p, printed[start.name])]
            if missing:
                print(f"FAILED: the {start.name} quick start printed no match for {missing}:\n"
                      f"{printed[start.name]}")
                return 1
            print(f"{start.name} quick start ({len(starts[start.name])} blocks): ran, "
                  "printed what the page says")
        step("running `pgwire-pubsub demo` from it")
        demo = run([os.path.join(bindir, "pgwire-pubsub"), "demo"], cwd=work, env=env,
                   capture_output=True).stdout
        if "Stopped the server and removed" not in demo or "-> received" not in demo:
            print(f"FAILED: the demo's output:\n{demo}")
            return 1
        print("demo: ran and cleaned up")
    print(f"wheel check passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"FAILED: {exc}\n{exc.stdout or ''}{exc.stderr or ''}")
        sys.exit(1)
