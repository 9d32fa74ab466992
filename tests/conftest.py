"""Shared fixtures: ``pg`` (TLS), ``pg_nossl`` (TLS off) and ``wait_for``.

``pg`` is the session server of the package's own pytest plugin (``postgres_cluster``),
which also offers ``postgres_server``, ``pubsub``, ``fake_backend`` and ``fault_proxy``.
Server priority: PGWIRE_TEST_DSN > local server binaries > pgserver > testcontainers > skip.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, List

import pytest

from pgwire_pubsub.testing import pgcluster
from pgwire_pubsub.testing.pgcluster import Server
from pgwire_pubsub.testing.plugin import session_server

# Also registered by the package's entry point, under this same name: loaded once.  Named
# here too, so that the suite runs from a checkout that is not installed.
pytest_plugins = ("pgwire_pubsub.testing.plugin", "pytester")

SERVER_FIXTURES = {"pg", "pg_nossl", "postgres_cluster", "postgres_server", "pubsub",
                   "async_pubsub", "fault_proxy"}


@pytest.fixture(scope="session")
def pg(postgres_cluster: Server) -> Server:
    """The main server: a local cluster with TLS, all roles, restartable."""
    return postgres_cluster


@pytest.fixture(scope="session")
def pg_nossl() -> Iterator[Server]:
    """A second server with ``ssl = off``, started only when a test asks for it."""
    yield from session_server(tls=False)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout=10, interval=0.02, message=None)``: poll, never sleep."""
    return pgcluster.wait_for


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
