"""Hand-made mutants (``tools/mutant_list.py``), each applied to a scratch copy of the
checkout, and the tests that must kill them.

    python tools/mutants.py            # the 7 mutants of issue 18's table (about 3 minutes)
    python tools/mutants.py --all      # the whole pass, 75 mutants (about 30 minutes)
    python tools/mutants.py --list     # what each mutant changes, and its tests
    python tools/mutants.py --only verify-no-op --only queue-usage-zero
    python tools/mutants.py --all --client asyncio   # killed on the asyncio client too?

A mutant is one exact text substitution in one file; it must apply exactly once, so a
mutant that no longer matches the code fails loudly (update it with the code).  For each
one, the scratch copy (``pgwire_pubsub``, ``tests``, ``benchmarks`` and ``pyproject.toml``,
copied once) gets the changed file, its tests run with ``-x`` under this Python (which must
have the ``test`` extra), and the file is put back.  The mutant is killed when pytest reports
a failure (exit status 1); a per-test time limit (``--timeout``) turns a hang into one.
Before any mutant, each selection of tests must pass on the unchanged copy.

Most of the logic is shared by the two clients (``_shared/``), and the behavioural tests
run on both, blocking first: with ``-x`` the blocking run is usually the one that kills.
``--client asyncio`` (or ``blocking``) keeps only the test runs of that client (by its name
in the test ids); a mutant none of whose tests runs there is reported as such.

Some mutants survive on purpose: they change nothing a caller can observe (an equivalent
mutant).  They carry the reason, run all the same, and are reported, not counted as failures.

Exit status: 0 when every mutant that should die was killed, 1 otherwise.  This lives in
tools/, not in CI: even the table's mutants take minutes (each run starts its own servers).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from mutant_list import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("pgwire_pubsub", "tests", "benchmarks", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "results", ".mypy_cache")


def copy_checkout(into: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=IGNORED)
        else:
            shutil.copy2(source, into / name)


def pytest(scratch: Path, args: Sequence[str], timeout: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf",
               "-o", f"timeout={timeout}", *args]
    return subprocess.run(command, cwd=scratch, capture_output=True, text=True, check=False)


def first_failure(output: str) -> str:
    found = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, re.MULTILINE)
    return found.group(1) if found else ""


def check_imports_the_copy(scratch: Path) -> None:
    code = "import pgwire_pubsub; print(pgwire_pubsub.__file__)"
    probe = subprocess.run([sys.executable, "-c", code], cwd=scratch, capture_output=True,
                           text=True, check=True)
    where = Path(probe.stdout.strip()).resolve()
    if scratch.resolve() not in where.parents:
        sys.exit(f"the scratch copy is not what gets imported ({where}): stopping")


NO_TESTS = 5  # pytest's exit status when nothing was selected


def on_client(tests: Sequence[str], client: Optional[str]) -> List[str]:
    """``tests`` narrowed to the runs on ``client`` (its name in the test ids)."""
    args = list(tests)
    if client is None:
        return args
    if "-k" not in args:
        return [*args, "-k", client]
    where = args.index("-k") + 1
    args[where] = f"({args[where]}) and {client}"
    return args


@dataclass
class Outcome:
    mutant: Mutant
    killed: bool
    by: str
    seconds: float
    untested: bool = False  # none of its tests runs on the chosen client


def run_one(scratch: Path, mutant: Mutant, timeout: int, client: Optional[str]) -> Outcome:
    target = scratch / mutant.path
    original = target.read_text()
    count = original.count(mutant.old)
    if count != 1:
        sys.exit(f"mutant {mutant.name}: its text is found {count} times in {mutant.path}, "
                 "not once; update it with the code")
    target.write_text(original.replace(mutant.old, mutant.new))
    started = time.monotonic()
    try:
        result = pytest(scratch, on_client(mutant.tests, client), timeout)
    finally:
        target.write_text(original)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    if client is not None and result.returncode == NO_TESTS:
        return Outcome(mutant, False, "", seconds, untested=True)
    if result.returncode not in (0, 1):
        sys.exit(f"mutant {mutant.name}: pytest ended with status {result.returncode}:\n"
                 f"{output[-3000:]}")
    return Outcome(mutant, result.returncode == 1, first_failure(output), seconds)


def verdict(o: Outcome) -> str:
    if o.killed:
        return f"`{o.by}`"
    if o.untested:
        return "none of its tests runs on this client"
    if o.mutant.equivalent:
        return f"survives on purpose: {o.mutant.equivalent}"
    return "**SURVIVED**"


def table(outcomes: List[Outcome]) -> str:
    lines = ["| mutant | file | killed by | seconds |", "|---|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {o.mutant.what} (`{o.mutant.name}`) | `{o.mutant.path}` | "
                     f"{verdict(o)} | {o.seconds:.0f} |")
    return "\n".join(lines)


def select(names: List[str], everything: bool) -> List[Mutant]:
    if names:
        known: Dict[str, Mutant] = {m.name: m for m in MUTANTS}
        unknown = [n for n in names if n not in known]
        if unknown:
            sys.exit(f"no such mutant: {', '.join(unknown)} (see --list)")
        return [known[n] for n in names]
    return [m for m in MUTANTS if everything or m.issue]


def check_the_unchanged_copy(scratch: Path, chosen: List[Mutant], timeout: int,
                             client: Optional[str]) -> None:
    for m in chosen:  # every mutant must apply before anything runs
        if (ROOT / m.path).read_text().count(m.old) != 1:
            sys.exit(f"mutant {m.name}: its text is not found exactly once in {m.path}")
    for selection in dict.fromkeys(tuple(on_client(m.tests, client)) for m in chosen):
        print(f"unchanged copy: {' '.join(selection)}", flush=True)
        baseline = pytest(scratch, selection, timeout)
        if baseline.returncode != 0 and not (client and baseline.returncode == NO_TESTS):
            print(baseline.stdout[-3000:])
            sys.exit("these tests fail on the unchanged copy: fix that first")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="the whole pass, not only the table")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--list", action="store_true", help="show the mutants and stop")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per test (60)")
    parser.add_argument("--client", choices=["blocking", "asyncio"],
                        help="only the tests that run on this client")
    args = parser.parse_args(argv)
    chosen = select(args.only, args.all)
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.what}\n  {m.path}: {m.old.strip()!r} -> {m.new.strip()!r}"
                  f"\n  tests: {' '.join(m.tests)}")
        return 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pgwire-mutants-") as tmp:
        scratch = Path(tmp)
        copy_checkout(scratch)
        check_imports_the_copy(scratch)
        check_the_unchanged_copy(scratch, chosen, args.timeout, args.client)
        outcomes = []
        for m in chosen:
            outcome = run_one(scratch, m, args.timeout, args.client)
            state = "killed" if outcome.killed else "untested" if outcome.untested else "survived"
            print(f"{m.name}: {state} {outcome.by} ({outcome.seconds:.0f} s)", flush=True)
            outcomes.append(outcome)
    print()
    print(table(outcomes))
    equivalent = [o for o in outcomes if not (o.killed or o.untested) and o.mutant.equivalent]
    print(f"\n{len(outcomes)} mutants in {time.monotonic() - started:.0f} s: "
          f"{sum(o.killed for o in outcomes)} killed, {len(equivalent)} equivalent, "
          f"{sum(o.untested for o in outcomes)} with no test on this client")
    missed = [o for o in outcomes if not o.killed and not o.untested and not o.mutant.equivalent]
    if missed:
        print(f"\n{len(missed)} mutant(s) survived: " + ", ".join(o.mutant.name for o in missed))
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
