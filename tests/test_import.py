"""``import pgwire_pubsub`` loads the blocking client only: not the asyncio client
(``pgwire_pubsub.aio``, nor asyncio itself), not the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import List

import pytest

NOT_LOADED = ("asyncio", "pgwire_pubsub.aio", "pgwire_pubsub.cli")


def loaded_by(statement: str) -> List[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    probe = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60, stdin=subprocess.DEVNULL).stdout
    modules: List[str] = json.loads(out)
    return modules


@pytest.mark.parametrize(
    "statement",
    ["import pgwire_pubsub", "import pgwire_pubsub as pgpubsub; pgpubsub.connect",
     "from pgwire_pubsub import connect, Connection, PubSub, Notify, make_params"],
)
def test_the_package_leaves_asyncio_and_the_cli_alone(statement: str) -> None:
    modules = loaded_by(statement)
    assert "pgwire_pubsub._blocking.connection" in modules  # the probe did import it
    for name in NOT_LOADED:
        assert not [m for m in modules if m == name or m.startswith(name + ".")], name


def test_the_probe_sees_a_module_that_is_loaded() -> None:
    """The check above would notice: the command line's own import does load it."""
    assert "pgwire_pubsub.cli" in loaded_by("import pgwire_pubsub.cli")
