"""Fail the CI run on any skipped test that .ci/expected-skips does not list.

    python .ci/check_skips.py RESULTS.xml PyPy

RESULTS.xml is pytest's ``--junitxml`` report of one run; the second argument names the
interpreter (the first column of .ci/expected-skips).  Prints every skip with the entry that
allows it, then the ones no entry allows, and exits 1 if there are any.  An entry is
``INTERPRETER | TEST | REASON``, the last two patterns (``*`` for any text, nothing else
special) over the test id (``tests/test_x.py::test_y[param]``) and pytest's skip message.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

ALLOWED = Path(__file__).with_name("expected-skips")


class Entry(NamedTuple):
    interpreter: str
    test: str
    reason: str
    line: int


def read_entries(path: Path) -> List[Entry]:
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [part.strip() for part in text.split("|")]
        if len(parts) != 3 or not all(parts):
            sys.exit(f"{path}:{number}: expected 'INTERPRETER | TEST | REASON', got {line!r}")
        entries.append(Entry(parts[0], parts[1], parts[2], number))
    return entries


def test_id(classname: str, name: str) -> str:
    """``tests.test_x.TestY`` and ``test_z`` as ``tests/test_x.py::TestY::test_z``."""
    parts = classname.split(".")
    module = next((i for i in range(len(parts), 0, -1) if parts[i - 1].startswith("test_")),
                  len(parts))
    path = "/".join(parts[:module]) + ".py"
    return "::".join([path, *parts[module:], name])


def read_skips(path: Path) -> List[Tuple[str, str]]:
    """(test id, skip message) of every skipped test in a junit report."""
    skips = []
    for case in ET.parse(path).iter("testcase"):
        skipped = case.find("skipped")
        if skipped is None:
            continue
        classname, name = case.get("classname", ""), case.get("name", "")
        if classname:
            skips.append((test_id(classname, name), skipped.get("message", "")))
        else:  # a whole module skipped at collection: its reason is in the text
            skips.append((name.replace(".", "/") + ".py", skipped.text or ""))
    return skips


def matches(pattern: str, text: str) -> bool:
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), text, re.DOTALL) is not None


def allowing(entries: List[Entry], interpreter: str, test: str, reason: str) -> Optional[Entry]:
    for entry in entries:
        if (entry.interpreter in (interpreter, "*") and matches(entry.test, test)
                and matches(entry.reason, reason)):
            return entry
    return None


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        sys.exit(__doc__)
    report, interpreter = Path(argv[0]), argv[1]
    entries = read_entries(ALLOWED)
    unexpected = []
    for test, reason in read_skips(report):
        entry = allowing(entries, interpreter, test, reason)
        if entry is None:
            unexpected.append((test, reason))
        else:
            print(f"expected skip (expected-skips:{entry.line}): {test}: {reason}")
    for test, reason in unexpected:
        print(f"UNEXPECTED SKIP: {test}: {reason}")
    if unexpected:
        print(f"{len(unexpected)} skip(s) on {interpreter} that .ci/expected-skips does not "
              "allow: install what they need, or add them there with the reason")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
