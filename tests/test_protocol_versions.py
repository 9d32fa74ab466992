"""Protocol 3.2 (PostgreSQL 18): min_protocol_version/max_protocol_version as libpq 18 takes
them, NegotiateProtocolVersion from servers that offer less, and the longer cancel key.

The units feed the state machine server bytes; the ``all_servers`` tests run the start-up
step against every server build and compare the outcome with libpq 18's (psycopg's).
"""

from __future__ import annotations

import socket
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

import pytest

from pgwire_pubsub import OperationalError, ProtocolViolation, QueryCanceled, make_params
from pgwire_pubsub._blocking.connection import connect_raw
from pgwire_pubsub._blocking.socketio import SocketIO
from pgwire_pubsub.errors import ProgrammingError
from pgwire_pubsub.protocol import frontend, steps
from pgwire_pubsub.protocol.auth import Authenticator
from pgwire_pubsub.protocol.machine import Machine, State
from pgwire_pubsub.testing.pgcluster import Server, in_thread, wait_for
from pgwire_pubsub.testing.wirebytes import auth_ok, backend_key, cstr, i32, msg, ready

T = TypeVar("T")
Version = Tuple[int, int]
V30, V32 = (3, 0), (3, 2)
GUARD = 20.0  # seconds: a failure guard against hangs, never a performance target
PARAMS = {"user": "alice", "database": "db", "client_encoding": "UTF8"}


def dotted(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def negotiate(version: Version, *options: str) -> bytes:
    """NegotiateProtocolVersion: the whole version number, then the options' names."""
    body = i32(version[0] << 16 | version[1]) + i32(len(options))
    return msg(b"v", body + b"".join(cstr(name) for name in options))


def started(max_version: Version = V32, min_version: Version = V30,
            params: Optional[Dict[str, str]] = None) -> Machine:
    proto = Machine()
    proto.start(params or PARAMS, max_version, min_version)
    return proto


# -- the connection options, resolved as libpq 18 does -------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, (V30, V30)),  # libpq 18 asks for 3.0 unless told otherwise
        ({"max_protocol_version": "3.2"}, (V30, V32)),
        ({"max_protocol_version": "latest"}, (V30, V32)),
        ({"min_protocol_version": "3.2"}, (V32, V32)),  # then the latest is asked for
        ({"min_protocol_version": "latest", "max_protocol_version": "3.2"}, (V32, V32)),
        ({"min_protocol_version": "3.0", "max_protocol_version": "3.0"}, (V30, V30)),
    ],
)
def test_resolved_range(given: Dict[str, str], expected: Tuple[Version, Version]) -> None:
    params = make_params(host="/nowhere", user="u", **given)
    assert (params.min_protocol_version, params.max_protocol_version) == expected


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGMINPROTOCOLVERSION", "3.2")
    monkeypatch.setenv("PGMAXPROTOCOLVERSION", "latest")
    params = make_params(host="/nowhere", user="u")
    assert (params.min_protocol_version, params.max_protocol_version) == (V32, V32)


@pytest.mark.parametrize("low", ["3.2", "latest"])
def test_a_minimum_above_the_maximum_is_refused(low: str) -> None:
    with pytest.raises(ProgrammingError, match='"min_protocol_version" is greater than'):
        make_params(host="/nowhere", min_protocol_version=low, max_protocol_version="3.0")


# -- the start-up, sans I/O ------------------------------------------------------------


def test_the_startup_message_asks_for_the_maximum() -> None:
    assert started(V32).protocol_version == V32
    step = steps.startup(Machine(), PARAMS, Authenticator("alice", None), V32, V30)
    assert next(step) == frontend.startup_message(PARAMS, V32)


@pytest.mark.parametrize(("low", "high"), [(V32, V30), ((2, 0), V30), (V30, (3, 3))])
def test_a_range_outside_what_is_spoken_is_refused(low: Version, high: Version) -> None:
    with pytest.raises(ValueError, match="no protocol versions"):
        Machine().start(PARAMS, high, low)


def test_a_server_that_accepts_3_2_keeps_it_and_its_long_key() -> None:
    proto = started(V32)
    key = bytes(range(32))
    proto.receive_data(auth_ok() + backend_key(9, key) + ready())
    assert (proto.state, proto.protocol_version, proto.secret_key) == (State.READY, V32, key)


def test_a_downgrade_within_the_range_is_accepted() -> None:
    proto = started(V32, V30)
    proto.receive_data(negotiate(V30) + auth_ok() + backend_key(9, 1234) + ready())
    assert (proto.state, proto.protocol_version, proto.secret_key) == (State.READY, V30,
                                                                       i32(1234))


def test_a_downgrade_below_the_minimum_fails_as_libpq_says() -> None:
    proto = started(V32, V32)
    with pytest.raises(OperationalError) as info:
        proto.receive_data(negotiate(V30) + auth_ok())
    assert not isinstance(info.value, ProtocolViolation)
    assert str(info.value) == ('server only supports protocol version 3.0, but '
                               '"min_protocol_version" was set to 3.2')
    assert proto.state is State.CLOSED


@pytest.mark.parametrize(
    ("offered", "options", "reason"),
    [
        ((3, 3), (), "above the 3.2 requested"),
        ((3, 1), (), "does not exist"),
        ((2, 0), (), "does not exist"),
        (V32, (), "asking for no change"),
        (V30, ("_pq_.unasked",), "'_pq_.unasked' that was not requested"),
        (V30, ("application_name",), "'application_name' that was not requested"),
    ],
)
def test_a_bad_negotiation_is_a_protocol_violation(
    offered: Version, options: Tuple[str, ...], reason: str
) -> None:
    proto = started(V32)
    with pytest.raises(ProtocolViolation, match=reason):
        proto.receive_data(negotiate(offered, *options))
    assert proto.state is State.CLOSED


def test_an_option_that_was_asked_for_may_be_refused() -> None:
    proto = started(V32, params={**PARAMS, "_pq_.option": "on"})
    proto.receive_data(negotiate(V32, "_pq_.option") + auth_ok() + ready())
    assert (proto.state, proto.protocol_version) == (State.READY, V32)


def test_a_second_negotiation_is_a_protocol_violation() -> None:
    proto = started(V32)
    with pytest.raises(ProtocolViolation, match="twice"):
        proto.receive_data(negotiate(V30) + negotiate(V30))


def test_a_long_key_in_protocol_3_0_is_a_protocol_violation() -> None:
    proto = started(V30)
    with pytest.raises(ProtocolViolation, match=r"32 bytes in protocol 3\.0"):
        proto.receive_data(auth_ok() + backend_key(9, bytes(32)))
    proto = started(V32)
    with pytest.raises(ProtocolViolation, match=r"32 bytes in protocol 3\.0"):
        proto.receive_data(negotiate(V30) + auth_ok() + backend_key(9, bytes(32)))


# -- real servers ------------------------------------------------------------------------

PROTOCOL = pytest.mark.all_servers("protocol")
ROLE = "scram_user"  # a whole SCRAM exchange in the negotiated version


def offers_3_2(server: Server) -> bool:
    """PostgreSQL 18 and later speak protocol 3.2."""
    return int(server.psql("SHOW server_version_num")) >= 180000


class Session:
    """The start-up step run on a socket of its own: the protocol core, no connect()."""

    def __init__(self, server: Server, max_version: Version, min_version: Version) -> None:
        params = server.dsn_kwargs(ROLE)
        sock = socket.create_connection((params["host"], params["port"]), timeout=GUARD)
        self.proto = Machine()
        self.transport = SocketIO(sock, self.proto)
        startup = {"user": ROLE, "database": params["dbname"], "client_encoding": "UTF8"}
        auth = Authenticator(ROLE, params["password"])
        try:
            self.run(steps.startup(self.proto, startup, auth, max_version, min_version))
        except BaseException:
            self.transport.close()
            raise

    def run(self, step: steps.Step[T]) -> T:
        return self.transport.run(step, time.monotonic() + GUARD)

    def close(self) -> None:
        self.transport.sendall(self.proto.terminate(), time.monotonic() + GUARD)
        self.transport.close()


@pytest.fixture
def session(pg: Server) -> Iterator[Callable[..., Session]]:
    opened: List[Session] = []

    def open_session(max_version: Version, min_version: Version = V30) -> Session:
        opened.append(Session(pg, max_version, min_version))
        return opened[-1]

    yield open_session
    for each in opened:
        each.close()


def libpq_outcome(server: Server, options: str) -> str:
    """What libpq 18 gets: the version it settled on, or its error."""
    pq = pytest.importorskip("psycopg.pq", reason="psycopg (libpq) is not installed")
    if pq.version() < 180000:
        pytest.skip(f"psycopg's libpq is {pq.version()}, older than 18")
    params = server.dsn_kwargs(ROLE)
    dsn = " ".join(f"{k}='{v}'" for k, v in params.items()) + " sslmode=disable " + options
    conn = pq.PGconn.connect(dsn.encode())
    try:
        if conn.status != pq.ConnStatus.OK:
            return str(conn.error_message.decode().strip().split(" failed: ")[-1])
        version = conn.full_protocol_version
        return f"{version // 10000}.{version % 10000}"
    finally:
        conn.finish()


@PROTOCOL
@pytest.mark.parametrize(
    "options",
    ["", "max_protocol_version=3.2", "max_protocol_version=latest", "min_protocol_version=3.2",
     "min_protocol_version=latest max_protocol_version=3.2"],
)
def test_the_version_settled_on_is_libpq_18s(
    pg: Server, options: str
) -> None:
    given = dict(option.split("=") for option in options.split())
    params = make_params(host="/nowhere", user="u", **given)
    try:
        opened = Session(pg, params.max_protocol_version, params.min_protocol_version)
    except OperationalError as exc:
        ours = str(exc)
    else:
        ours = dotted(opened.proto.protocol_version)
        opened.close()
    assert ours == libpq_outcome(pg, options)
    if params.max_protocol_version == V32:
        expected = "3.2" if offers_3_2(pg) else (
            "3.0" if params.min_protocol_version == V30 else "server only supports")
        assert ours.startswith(expected)


@PROTOCOL
@pytest.mark.parametrize("asked", [V30, V32], ids=["3.0", "3.2"])
def test_the_cancel_key_is_kept_whatever_its_length(
    pg: Server, session: Callable[..., Session], asked: Version
) -> None:
    opened = session(asked)
    assert opened.proto.backend_pid is not None and opened.proto.secret_key is not None
    long_key = asked == V32 and offers_3_2(pg)
    assert len(opened.proto.secret_key) == (32 if long_key else 4)  # PostgreSQL 18's length
    rows = opened.run(steps.simple_query(opened.proto, "SELECT pg_backend_pid()"))
    assert rows == [(str(opened.proto.backend_pid),)]


@PROTOCOL
def test_a_negotiated_session_listens_and_notifies(session: Callable[..., Session]) -> None:
    opened = session(V32)
    opened.run(steps.simple_query(opened.proto, "LISTEN v; NOTIFY v, 'over 3.x'"))
    (event,) = opened.proto.notifications.take_all()
    assert event == (opened.proto.backend_pid, "v", "over 3.x")


@PROTOCOL
@pytest.mark.parametrize("asked", [V30, V32], ids=["3.0", "3.2"])
def test_the_kept_key_cancels_a_query(
    pg: Server, session: Callable[..., Session], asked: Version
) -> None:
    """A CancelRequest made of the kept key (as long as the server sent it) is honoured."""
    opened = session(asked)
    pid, key = opened.proto.backend_pid, opened.proto.secret_key
    assert pid is not None and key is not None
    join = in_thread(lambda: opened.run(steps.simple_query(opened.proto, "SELECT pg_sleep(60)")))
    wait_for(lambda: pg.psql(f"SELECT wait_event FROM pg_stat_activity WHERE pid = {pid}")
             .strip() == "PgSleep", timeout=GUARD, message="the query to be running")
    params = pg.dsn_kwargs(ROLE)
    with socket.create_connection((params["host"], params["port"]), timeout=GUARD) as other:
        other.sendall(frontend.cancel_request(pid, key))
        assert other.recv(1) == b""  # the server closes it without an answer
    with pytest.raises(QueryCanceled):
        join()
    assert opened.proto.state is State.READY


@PROTOCOL
@pytest.mark.usefixtures("on_every_client")
@pytest.mark.parametrize("option", ["max_protocol_version=3.2", "min_protocol_version=3.2"])
def test_connect_passes_the_range_to_the_startup(pg: Server, option: str) -> None:
    key, value = option.split("=")
    expected = libpq_outcome(pg, option)
    try:
        with connect_raw(**pg.dsn_kwargs(ROLE, sslmode="disable", **{key: value})) as conn:
            ours = dotted(conn.machine.protocol_version)
    except OperationalError as exc:
        ours = str(exc).split(" failed: ")[-1]
    assert ours == expected
