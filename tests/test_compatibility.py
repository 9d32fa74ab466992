"""docs/compatibility.md holds the features and server builds the suite has, and claims only
what a run showed; compat.check tells a claim a run did not back from a build it lacked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import compat
import pgbuilds

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "compatibility.md"


def page_rows() -> List[List[str]]:
    return compat.table_rows(PAGE.read_text(encoding="utf-8"))


def test_the_rows_are_the_features_in_order() -> None:
    assert [row[0] for row in page_rows()[1:]] == list(compat.FEATURES.values())


def test_the_columns_are_the_machines_build_then_the_packages() -> None:
    header = page_rows()[0][1:]
    assert re.fullmatch(r"pg\d+: PostgreSQL \d+ \(.+\)", header[0])
    assert header[1:] == [f"pg{bundled}: PostgreSQL {bundled} ({package} {version})"
                          for package, version, bundled in pgbuilds.PACKAGES]


def test_every_cell_is_a_pass_or_a_reasoned_skip() -> None:
    for row in page_rows()[1:]:
        for cell in row[1:]:
            assert cell == compat.PASSED or (cell.startswith("— ") and len(cell) > 2), row[0]
            assert "is not installed" not in cell, f"{row[0]}: written from a partial run"


def test_every_feature_has_tests() -> None:
    named = set()
    for module in (ROOT / "tests").glob("test_*.py"):
        named |= set(re.findall(r'all_servers\("([^"]+)"\)', module.read_text("utf-8")))
    assert named == set(compat.FEATURES)


def report(**cells: Dict[str, Any]) -> Dict[str, Any]:
    """A run's report: build name -> {feature: counts}, for every feature."""
    outcomes = {
        build: {feature: {"passed": 0, "failed": 0, "skipped": 0, "reasons": [], **counts}
                for feature in compat.FEATURES}
        for build, counts in cells.items()}
    return {"builds": {name: f"PostgreSQL {name}" for name in cells}, "outcomes": outcomes}


def test_check_accepts_the_page_written_from_the_same_run() -> None:
    run = report(a={"passed": 3}, b={"skipped": 2, "reasons": ["server has no TLS"]})
    page = compat.render(run)
    assert "| — server has no TLS |" in page
    assert compat.check(run, page) == []


def test_check_refuses_a_pass_the_run_did_not_show() -> None:
    claimed = compat.render(report(a={"passed": 3}, b={"passed": 1}))
    run = report(a={"passed": 3}, b={"passed": 1, "failed": 1})
    problems = compat.check(run, claimed)
    assert len(problems) == len(compat.FEATURES)
    assert "the page says '✓', the run shows '✗ 1 failed'" in problems[0]


def test_check_passes_over_a_build_the_run_could_not_install() -> None:
    claimed = compat.render(report(a={"passed": 3}, b={"passed": 1}))
    reason = "PostgreSQL b (pgserver 0) is not installed in /opt/x: run it"
    run = report(a={"passed": 3}, b={"skipped": 1, "reasons": [reason]})
    assert compat.check(run, claimed) == []


def test_check_refuses_other_builds_or_features() -> None:
    claimed = compat.render(report(a={"passed": 3}))
    assert "columns" in compat.check(report(a={"passed": 3}, b={"passed": 1}), claimed)[0]
    run = report(a={"passed": 3})
    fewer = "\n".join(line for line in claimed.splitlines() if "notify_many" not in line)
    assert "rows" in compat.check(run, fewer)[0]
