"""``conn.cancel()``: a CancelRequest over a separate connection, with the session's host, TLS
and timeout, on both clients and every server build (protocol 3.0's keys and 3.2's)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List

import pytest

from pgwire_pubsub import InterfaceError, OperationalError, QueryCanceled
from pgwire_pubsub.testing.faultproxy import FaultProxy
from pgwire_pubsub.testing.pgcluster import Server, wait_for

GUARD = 30.0  # seconds: a failure guard, never a performance target
CANCEL = pytest.mark.all_servers("cancel")


def cancel_while_sleeping(pubsub: Any) -> float:
    """``conn.cancel()`` from another thread while the connection runs a 60 s sleep; how
    long the sleep lasted before QueryCanceled ended it."""
    pid = pubsub.conn.get_backend_pid()
    failures: List[BaseException] = []

    def cancel_when_running() -> None:
        try:
            wait_for(lambda: running(pubsub, pid), GUARD, message="the sleep to run")
            pubsub.conn.cancel()
        except BaseException as exc:
            failures.append(exc)

    canceller = threading.Thread(target=cancel_when_running)
    started = time.monotonic()
    canceller.start()
    with pytest.raises(QueryCanceled) as info:
        pubsub.conn.execute("SELECT pg_sleep(60)")
    lasted = time.monotonic() - started
    canceller.join(GUARD)
    assert not failures, failures
    assert info.value.sqlstate == "57014"
    return lasted


def running(pubsub: Any, pid: int) -> bool:
    """Whether backend ``pid`` runs a statement, asked on a connection of its own."""
    server: Server = pubsub.test_server
    state = server.psql(f"SELECT state FROM pg_stat_activity WHERE pid = {pid}")
    return state.strip() == "active"


@pytest.fixture
def connect(pg: Server, open_client: Callable[..., Any]) -> Callable[..., Any]:
    def make(**over: Any) -> Any:
        pubsub = open_client(**pg.dsn_kwargs(**over))
        pubsub.test_server = pg
        return pubsub

    return make


@CANCEL
@pytest.mark.parametrize("options", [
    {"sslmode": "disable"},
    {"sslmode": "disable", "max_protocol_version": "3.2"},  # 3.2's longer key, where offered
])
def test_cancel_interrupts_a_command_and_the_connection_goes_on(
    connect: Callable[..., Any], options: Dict[str, str]
) -> None:
    pubsub = connect(**options)
    assert cancel_while_sleeping(pubsub) < GUARD
    assert pubsub.conn.execute("SELECT 'still usable'") == [("still usable",)]
    pubsub.listen("after_cancel")
    pubsub.notify("after_cancel", "x")
    assert pubsub.get_event(select_timeout=GUARD).payload == "x"


def test_cancel_goes_over_tls_when_the_session_does(pg: Server,
                                                    connect: Callable[..., Any]) -> None:
    if not pg.has_tls:
        pytest.skip("server has no TLS")
    pubsub = connect(sslmode="require")
    assert cancel_while_sleeping(pubsub) < GUARD
    assert pubsub.conn.execute("SELECT 1") == [("1",)]


def test_cancel_over_a_unix_socket(pg: Server, connect: Callable[..., Any]) -> None:
    if not getattr(pg, "socket_dir", None):
        pytest.skip("server has no Unix socket here")
    pubsub = connect(host=pg.socket_dir)
    assert cancel_while_sleeping(pubsub) < GUARD


def test_cancel_with_nothing_running_changes_nothing(connect: Callable[..., Any]) -> None:
    pubsub = connect(sslmode="disable")
    pubsub.conn.cancel()
    assert pubsub.conn.execute("SELECT 'not cancelled'") == [("not cancelled",)]


def test_cancel_of_a_closed_connection_says_so(connect: Callable[..., Any]) -> None:
    pubsub = connect(sslmode="disable")
    pubsub.close()
    with pytest.raises(InterfaceError):
        pubsub.conn.cancel()


def test_cancel_to_a_silent_peer_ends_within_connect_timeout(
    pg: Server, open_client: Callable[..., Any]
) -> None:
    """The CancelRequest's connection has the session's connect_timeout: a peer that accepts
    and then says nothing cannot hold cancel() for longer."""
    with FaultProxy(pg.host, pg.port) as proxy:
        pubsub = open_client(**pg.dsn_kwargs(sslmode="disable", host=proxy.host,
                                             port=proxy.port, connect_timeout=2))
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(OperationalError, match="timeout"):
            pubsub.conn.cancel()
        lasted = time.monotonic() - started
        assert 1.9 < lasted < GUARD
