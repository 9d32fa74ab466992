"""Shared fixtures: ``pg`` (TLS), ``pg_nossl`` (TLS off), ``pg_build`` and ``wait_for``.

Server priority: PGWIRE_TEST_DSN > local server binaries > testcontainers > skip.

A test marked ``all_servers("feature")`` runs once per server build (see pgbuilds.py):
``pg_build`` is parametrised over them, and ``pg`` is then that build's server (TLS only
where the build has it). The feature names a row of docs/compatibility.md.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import compat
import pgbuilds
import pgcluster
import pytest
from pgbuilds import Build
from pgcluster import (
    Cluster,
    ContainerServer,
    ExternalServer,
    Server,
    Unavailable,
    docker_available,
    find_pg_bindir,
)

SERVER_FIXTURES = {"pg", "pg_nossl", "pg_build"}


def _start_server(tls: bool, build: Optional[Build]) -> Server:
    if build is not None:
        return Cluster(tls=tls and build.tls, bindir=build.bindir).start()
    dsn = os.environ.get("PGWIRE_TEST_DSN")
    if dsn:
        if not tls:
            raise Unavailable("PGWIRE_TEST_DSN is set; no TLS-less local server is started")
        return ExternalServer(dsn)
    if find_pg_bindir() is not None:
        return Cluster(tls=tls).start()
    if docker_available():
        return ContainerServer()  # postgres:15 image: TLS is off
    raise Unavailable("no PostgreSQL: set PGWIRE_TEST_DSN, install the PostgreSQL server "
                      "binaries (or PGWIRE_PG_BINDIR), or run a Docker engine")


# Servers started so far, by (build name, TLS): each runs until the session ends, so that
# tests of one build and of another can come in any order without restarts.
_servers: Dict[Tuple[Optional[str], bool], Union[Server, Unavailable]] = {}


def _server(tls: bool, build: Optional[Build]) -> Server:
    if build is not None and build is _main_build():
        build = None  # the machine's own build: the suite's main server
    key = (build.name if build else None, tls)
    if key not in _servers:
        try:
            _servers[key] = _start_server(tls, build)
        except Unavailable as e:
            _servers[key] = e
    server = _servers[key]
    if isinstance(server, Unavailable):
        pytest.skip(str(server))
    return server


def _main_build() -> Optional[Build]:
    found = pgbuilds.builds()
    return found[0] if found else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    for server in _servers.values():
        if isinstance(server, Server):
            server.cleanup()
    _servers.clear()


@pytest.fixture(scope="session")
def pg_build(request: pytest.FixtureRequest) -> Optional[Build]:
    """The server build under test: the one of an ``all_servers`` test's parameter, else
    the main server's (None when that is not a local build)."""
    build: Optional[Build] = getattr(request, "param", None) or _main_build()
    if build is not None and build.missing:
        pytest.skip(build.missing)
    return build


@pytest.fixture(scope="session")
def pg(pg_build: Optional[Build]) -> Server:
    """The main server: a local cluster with TLS, all roles, restartable (for an
    ``all_servers`` test, the cluster of its build: without TLS where the build has none)."""
    return _server(True, pg_build)


@pytest.fixture(scope="session")
def pg_nossl() -> Server:
    """A second server with ``ssl = off``, started only when a test asks for it."""
    return _server(False, None)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout=10, interval=0.02, message=None)``: poll, never sleep."""
    return pgcluster.wait_for


def pytest_configure(config: pytest.Config) -> None:
    compat.configure(config)


def pytest_addoption(parser: pytest.Parser) -> None:
    compat.addoption(parser)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("all_servers")
    if marker is None:
        return
    compat.check_marker(marker, metafunc.definition.nodeid)
    if "pg_build" not in metafunc.fixturenames:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: an all_servers test needs a "
                                "server: the pg fixture, or pg_build for a server of its own")
    if pgbuilds.builds():
        found = pgbuilds.builds()
        metafunc.parametrize("pg_build", found, ids=[b.name for b in found], indirect=True,
                             scope="session")


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
