"""Shared fixtures: ``pg`` (TLS), ``pg_nossl`` (TLS off), ``open_client`` and ``wait_for``.

Server priority: PGWIRE_TEST_DSN > local server binaries > testcontainers > skip.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, List

import pgcluster
import pytest
from pgcluster import (
    Cluster,
    ContainerServer,
    ExternalServer,
    Server,
    Unavailable,
    docker_available,
    find_pg_bindir,
)

import pgwire_pubsub
from pgwire_pubsub import PubSub

SERVER_FIXTURES = {"pg", "pg_nossl"}


def _start_server(tls: bool) -> Server:
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


def _server_fixture(tls: bool) -> Iterator[Server]:
    try:
        server = _start_server(tls)
    except Unavailable as e:
        pytest.skip(str(e))
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg() -> Iterator[Server]:
    """The main server: a local cluster with TLS, all roles, restartable."""
    yield from _server_fixture(tls=True)


@pytest.fixture(scope="session")
def pg_nossl() -> Iterator[Server]:
    """A second server with ``ssl = off``, started only when a test asks for it."""
    yield from _server_fixture(tls=False)


@pytest.fixture
def open_client() -> Iterator[Callable[..., PubSub]]:
    """``open_client(**kwargs)``: a PubSub of the client under test (``pgwire_pubsub.connect``,
    the one place that names it); what it opened is closed after the test."""
    opened: List[PubSub] = []

    def make(**kwargs: Any) -> PubSub:
        pubsub = pgwire_pubsub.connect(**kwargs)
        opened.append(pubsub)
        return pubsub

    yield make
    for pubsub in opened:
        pubsub.close()


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout=10, interval=0.02, message=None)``: poll, never sleep."""
    return pgcluster.wait_for


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
