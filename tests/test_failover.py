"""Several hosts: failover in order, per-host timeouts, target_session_attrs, load balancing.

A primary and a streaming replica (``pg_basebackup -R``) are started for this module.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from pgbuilds import Build
from replica import Replica
from timing import assert_on_time

from pgwire_pubsub import OperationalError
from pgwire_pubsub._blocking.connection import Connection, connect_raw
from pgwire_pubsub.testing.fakebackend import FakeBackend, FakeConn
from pgwire_pubsub.testing.pgcluster import Cluster, Server, find_pg_bindir

# Every test here runs on the blocking and on the asyncio client (see conftest.py).
pytestmark = pytest.mark.usefixtures("on_every_client")

GUARD = 20.0  # seconds: a failure guard against hangs, never a performance target


STANDBY = pytest.mark.all_servers("standby")


@pytest.fixture(scope="module")
def pair(pg_build: Optional[Build]) -> Iterator[Tuple[Cluster, Replica]]:
    if os.environ.get("PGWIRE_TEST_DSN") or find_pg_bindir() is None:
        pytest.skip("needs local PostgreSQL server binaries to start a primary and a replica")
    primary = Cluster(tls=False, bindir=pg_build.bindir if pg_build else None).start()
    try:
        replica = Replica(primary).start()
        try:
            yield primary, replica
        finally:
            replica.cleanup()
    finally:
        primary.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hosts(*ports: int, **extra: Any) -> Dict[str, Any]:
    params: Dict[str, Any] = {
        "host": ",".join("127.0.0.1" for _ in ports),
        "port": ",".join(str(p) for p in ports),
        "user": "postgres",
        "dbname": "postgres",
        "sslmode": "disable",
    }
    params.update(extra)
    return params


def landed_on(conn: Connection) -> int:
    return int(conn.execute("SHOW port")[0][0])


def test_an_unreachable_first_host_is_skipped(pair: Tuple[Cluster, Replica]) -> None:
    primary, _ = pair
    with connect_raw(**hosts(closed_port(), primary.port)) as conn:
        assert landed_on(conn) == primary.port


def test_when_every_host_fails_the_error_lists_each(pair: Tuple[Cluster, Replica]) -> None:
    first, second = closed_port(), closed_port()
    with pytest.raises(OperationalError) as info:
        connect_raw(**hosts(first, second))
    message = str(info.value)
    assert f"port {first} failed" in message and f"port {second} failed" in message


def test_connect_timeout_applies_to_each_host(pair: Tuple[Cluster, Replica]) -> None:
    primary, _ = pair
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        params = hosts(silent.getsockname()[1], primary.port, connect_timeout=2)
        with connect_raw(**params) as conn:
            assert landed_on(conn) == primary.port
            # The silent host's 2 s, then the primary's start-up.
            assert_on_time(time.monotonic() - started, 2.0, "the first host's connect_timeout")


def test_a_host_that_refuses_the_login_is_skipped(pair: Tuple[Cluster, Replica]) -> None:
    primary, _ = pair

    def refuse(conn: FakeConn) -> None:
        conn.read_startup()
        conn.error({"S": "FATAL", "V": "FATAL", "C": "28000", "M": "no entry for you"})

    with FakeBackend(refuse) as fake:
        params = hosts(fake.port, primary.port)
        with connect_raw(**params) as conn:
            assert landed_on(conn) == primary.port


@pytest.mark.parametrize(
    ("target", "order", "expected"),
    [
        ("any", ("replica", "primary"), "replica"),
        ("read-write", ("replica", "primary"), "primary"),
        ("primary", ("replica", "primary"), "primary"),
        ("read-only", ("primary", "replica"), "replica"),
        ("standby", ("primary", "replica"), "replica"),
        ("prefer-standby", ("primary", "replica"), "replica"),
        ("prefer-standby", ("primary",), "primary"),
    ],
)
@STANDBY
def test_target_session_attrs(
    pair: Tuple[Cluster, Replica], target: str, order: Tuple[str, ...], expected: str
) -> None:
    servers = {"primary": pair[0], "replica": pair[1]}
    ports = [servers[name].port for name in order]
    with connect_raw(**hosts(*ports, target_session_attrs=target)) as conn:
        assert landed_on(conn) == servers[expected].port


@pytest.mark.parametrize(
    ("target", "which", "reason"),
    [
        ("standby", "primary", "server is not in hot standby mode"),
        ("primary", "replica", "server is in hot standby mode"),
        ("read-write", "replica", "session is read-only"),
        ("read-only", "primary", "session is not read-only"),
    ],
)
@STANDBY
def test_no_host_meets_the_target(
    pair: Tuple[Cluster, Replica], target: str, which: str, reason: str
) -> None:
    server = pair[0] if which == "primary" else pair[1]
    with pytest.raises(OperationalError, match=reason):
        connect_raw(**hosts(server.port, target_session_attrs=target))


@STANDBY
def test_each_server_reports_whether_it_is_a_hot_standby(
    pair: Tuple[Cluster, Replica], pg_build: Optional[Build]
) -> None:
    """PostgreSQL 14+ reports in_hot_standby at start-up: no query is needed to tell."""
    for server, expected in ((pair[0], "off"), (pair[1], "on")):
        with connect_raw(**hosts(server.port)) as conn:
            assert conn.get_parameter_status("in_hot_standby") == expected
            if pg_build is not None:
                assert str(conn.server_version // 10000) == pg_build.version.split(".")[0]


@STANDBY
def test_a_read_only_session_on_a_primary_counts_as_read_only(
    pair: Tuple[Cluster, Replica],
) -> None:
    primary, _ = pair
    params = hosts(primary.port, target_session_attrs="read-only",
                   options="-c default_transaction_read_only=on")
    with connect_raw(**params) as conn:
        assert landed_on(conn) == primary.port
    with pytest.raises(OperationalError, match="session is read-only"):
        connect_raw(**hosts(primary.port, target_session_attrs="read-write",
                            options="-c default_transaction_read_only=on"))


def test_load_balance_hosts_random_uses_every_host(pair: Tuple[Cluster, Replica]) -> None:
    primary, replica = pair
    seen = set()
    for _ in range(40):
        with connect_raw(**hosts(primary.port, replica.port, load_balance_hosts="random")) as c:
            seen.add(landed_on(c))
        if len(seen) == 2:
            break
    assert seen == {primary.port, replica.port}


def test_load_balance_hosts_disable_keeps_the_order(pair: Tuple[Cluster, Replica]) -> None:
    primary, replica = pair
    for _ in range(5):
        with connect_raw(**hosts(replica.port, primary.port)) as conn:
            assert landed_on(conn) == replica.port


def _row_description(name: str) -> bytes:
    column = struct.pack("!ihihih", 0, 0, 25, -1, -1, 0)
    return struct.pack("!h", 1) + name.encode() + b"\0" + column


def _data_row(value: str) -> bytes:
    return struct.pack("!hi", 1, len(value)) + value.encode()


def test_servers_that_do_not_report_hot_standby_are_asked(pair: Tuple[Cluster, Replica]) -> None:
    """Before PostgreSQL 14 nothing is reported: the client asks with SHOW, as libpq does."""
    queries: List[str] = []

    def old_read_only_server(conn: FakeConn) -> None:
        conn.read_startup()
        conn.auth_ok()
        conn.parameter_status("server_version", "13.12")
        conn.backend_key(1, 2)
        conn.ready()
        queries.append(conn.read_query())
        conn.send_message(b"T", _row_description("transaction_read_only"))
        conn.send_message(b"D", _data_row("on"))
        conn.command_complete("SHOW")
        conn.ready()

    with FakeBackend(old_read_only_server, check=False) as fake, pytest.raises(
        OperationalError, match="session is read-only"
    ):
        connect_raw(**hosts(fake.port, target_session_attrs="read-write"))
    assert queries == ["SHOW transaction_read_only"]


def test_keepalives_are_set_on_the_socket(pg: Server) -> None:
    params = pg.dsn_kwargs("postgres", keepalives_idle=7, keepalives_interval=3,
                           keepalives_count=4, sslmode="disable")
    with connect_raw(**params) as conn:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            if hasattr(socket, "TCP_KEEPIDLE"):
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 3
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
        finally:
            sock.close()
    with connect_raw(**pg.dsn_kwargs("postgres", keepalives=0, sslmode="disable")) as conn:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        finally:
            sock.close()


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="no TCP_USER_TIMEOUT here")
def test_tcp_user_timeout_is_set_on_the_socket(pg: Server) -> None:
    params = pg.dsn_kwargs("postgres", tcp_user_timeout=9000, sslmode="disable")
    with connect_raw(**params) as conn:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 9000
        finally:
            sock.close()
