"""The pytest plugin's fixtures, as a test suite that installs the package sees them."""

from __future__ import annotations

import importlib.util
from typing import List

import pytest

import pgwire_pubsub
from pgwire_pubsub import Notify, PubSub
from pgwire_pubsub.testing import Database, FakeBackend, FaultProxy, Server

SEEN: List[str] = []


@pytest.mark.parametrize("round_", [1, 2])
def test_every_test_gets_a_database_of_its_own(postgres_server: Database, round_: int) -> None:
    if not postgres_server.owned:
        pytest.skip("the server given by PGWIRE_TEST_DSN may not create databases")
    assert postgres_server.dsn.startswith("postgresql://")
    ps = pgwire_pubsub.connect(postgres_server.dsn)
    try:
        assert ps.conn.execute("SELECT current_database()") == [(postgres_server.dbname,)]
        ps.conn.execute("CREATE TABLE mine (x int)")  # would clash in a shared database
    finally:
        ps.close()
    assert postgres_server.dbname not in SEEN
    SEEN.append(postgres_server.dbname)


def test_databases_are_dropped_after_their_test(postgres_cluster: Server) -> None:
    if not SEEN:
        pytest.skip("runs after the tests that made databases")
    names = Database.create(postgres_cluster)
    try:
        ps = pgwire_pubsub.connect(names.dsn)
        try:
            rows = ps.conn.execute("SELECT datname FROM pg_database")
        finally:
            ps.close()
    finally:
        names.drop()
    assert not {name for (name,) in rows} & set(SEEN)


def test_pubsub_is_connected_to_the_test_database(pubsub: PubSub,
                                                  postgres_server: Database) -> None:
    assert pubsub.conn.execute("SELECT current_database()") == [(postgres_server.dbname,)]
    pubsub.listen("plugin")
    pubsub.notify("plugin", "hello")
    event = pubsub.get_event(select_timeout=5)
    assert isinstance(event, Notify) and event.payload == "hello"


def test_fake_backend_runs_the_pubsub_server(fake_backend: FakeBackend) -> None:
    ps = pgwire_pubsub.connect(fake_backend.dsn)
    try:
        ps.listen("fake")
        ps.notify("fake", "hi")
        event = ps.get_event(select_timeout=5)
        assert isinstance(event, Notify) and (event.channel, event.payload) == ("fake", "hi")
    finally:
        ps.close()


@pytest.mark.parametrize("fake_backend", [{"auth": "md5", "user": "alice", "password": "pw"}],
                         indirect=True)
def test_fake_backend_takes_keywords_by_indirect_parametrization(
        fake_backend: FakeBackend) -> None:
    assert fake_backend.auth == "md5"
    ps = pgwire_pubsub.connect(fake_backend.dsn)
    ps.close()
    with pytest.raises(pgwire_pubsub.OperationalError, match="28P01"):
        pgwire_pubsub.connect(**fake_backend.dsn_params(password="wrong"))


def test_fault_proxy_stands_between_the_test_and_its_database(
        fault_proxy: FaultProxy, postgres_server: Database) -> None:
    ps = pgwire_pubsub.connect(fault_proxy.dsn, connect_timeout=5)
    try:
        assert ps.conn.execute("SELECT current_database()") == [(postgres_server.dbname,)]
        assert fault_proxy.connections == 1
        fault_proxy.cut()
        with pytest.raises(pgwire_pubsub.OperationalError):
            ps.conn.execute("SELECT 1")
    finally:
        ps.close()


INNER_ASYNC_TEST = """
import pytest

@pytest.mark.asyncio
async def test_inner(async_pubsub):
    await async_pubsub.close()
"""


def test_async_pubsub_connects(pytester: pytest.Pytester, postgres_cluster: Server) -> None:
    if importlib.util.find_spec("pytest_asyncio") is None:
        pytest.skip("needs pytest-asyncio (in the test extra) to run an async test")
    pytester.makepyfile(INNER_ASYNC_TEST)
    result = pytester.runpytest_subprocess("-p", "pgwire_pubsub.testing.plugin")
    result.assert_outcomes(passed=1)


def test_the_plugin_is_loaded_once_under_its_module_name(pytestconfig: pytest.Config) -> None:
    manager = pytestconfig.pluginmanager
    plugin = manager.get_plugin("pgwire_pubsub.testing.plugin")
    assert plugin is not None
    assert [p for p in manager.get_plugins() if p is plugin] == [plugin]
