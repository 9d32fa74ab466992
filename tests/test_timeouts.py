"""Every deadline of the PubSub API, from both sides: it fires no earlier than it should and
not much later (see timing.py for the margins), and one that never fires fails the test
instead of hanging it.

``select_timeout`` (a number, 0, and None for no limit) runs against the real server;
``connect_timeout``, the health check and ``verify()`` against the scripted fake server,
which can stay silent or swallow a notification, as a real server cannot be made to.
Everything goes through ``pgwire_pubsub.connect`` and the ``PubSub`` methods: the
``open_client`` fixture (conftest.py) is the one place that names the client.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set

import pytest
from timing import GUARD, LATE, TICK, assert_on_time, stopwatch, watchdog

import pgwire_pubsub
from pgwire_pubsub import Notify, OperationalError, PubSub
from pgwire_pubsub._blocking.socketio import SocketIO
from pgwire_pubsub.protocol.machine import Machine
from pgwire_pubsub.testing.fakebackend import FakeBackend, FakeConn
from pgwire_pubsub.testing.pgcluster import Server, in_thread
from pgwire_pubsub.testing.wirebytes import command_complete, msg, notify, ready

FAKE_PID = 4242


def to_fake(srv: FakeBackend, **options: Any) -> Dict[str, Any]:
    return dict(host=srv.host, port=srv.port, user="u", sslmode="disable",
                connect_timeout=int(GUARD), **options)


class Session:
    """Answers a fake connection's simple queries as PostgreSQL would (LISTEN, UNLISTEN,
    NOTIFY, the empty query), keeping a log of them, until the client leaves.

    ``swallow``: NOTIFY succeeds but no notification comes back, as behind a pooler in
    transaction mode.  ``late_by``: it comes back that many seconds after the NOTIFY's
    reply, in a read of its own.  ``silent_after``: from that query on (by its position in
    the log), nothing is answered at all, as from a peer that vanished.
    """

    NOTIFY = re.compile(r"""NOTIFY "([^"]*)", E'([^'\\]*)'""")

    def __init__(self, swallow: bool = False, silent_after: Optional[int] = None,
                 with_notify: bytes = b"", with_listen: bytes = b"",
                 late_by: float = 0.0) -> None:
        self.swallow = swallow
        self.silent_after = silent_after
        self.with_notify = with_notify  # sent in the first NOTIFY's reply, before its echo
        self.with_listen = with_listen  # sent in the first LISTEN's reply
        self.late_by = late_by
        self.later = b""
        self.log: List[str] = []
        self.times: List[float] = []  # when each query arrived (time.monotonic)
        self.answered: List[float] = []  # when each answer was sent
        self.listening: Set[str] = set()

    def __call__(self, conn: FakeConn, handshake: bool = True) -> None:
        if handshake:
            conn.handshake(pid=FAKE_PID)
        while True:
            try:
                kind, body = conn.read_message()
            except EOFError:
                return
            if kind == b"X":
                return
            assert kind == b"Q", f"the fake answers simple queries only, not {kind!r}"
            self.times.append(time.monotonic())
            self.log.append(body.rstrip(b"\0").decode())
            if self.silent_after is not None and len(self.log) > self.silent_after:
                continue
            conn.send(self.reply(self.log[-1]))
            self.answered.append(time.monotonic())
            if self.later:
                threading.Event().wait(self.late_by)  # paces the fake, never set
                conn.send(self.later)
                self.later = b""

    def reply(self, sql: str) -> bytes:
        if not sql:
            return msg(b"I") + ready()  # EmptyQueryResponse
        verb, _, rest = sql.partition(" ")
        channel = rest.strip('"')
        if verb == "LISTEN":
            self.listening.add(channel)
            if self.with_listen:
                extra, self.with_listen = self.with_listen, b""
                return command_complete(verb) + extra + ready()
        elif verb == "UNLISTEN":
            self.listening.discard(channel)
        elif verb == "NOTIFY":
            found = self.NOTIFY.fullmatch(sql)
            assert found is not None, f"the fake cannot parse {sql!r}"
            channel, payload = found.groups()
            if channel in self.listening and not self.swallow:
                extra, self.with_notify = self.with_notify, b""
                echo = notify(FAKE_PID, channel, payload)
                if self.late_by:
                    self.later, echo = echo, b""
                return command_complete("NOTIFY") + extra + echo + ready()
        else:
            raise AssertionError(f"the fake does not know {sql!r}")
        return command_complete(verb) + ready()


def refuse(conn: FakeConn) -> None:
    """Turn a connection away as a server that is going down does."""
    conn.read_startup()
    conn.error({"S": "FATAL", "V": "FATAL", "C": "57P03",
                "M": "the database system is shutting down"})


# -- select_timeout --------------------------------------------------------------------

WAITS: Dict[str, Callable[[PubSub, Optional[float]], Any]] = {
    "get_event": lambda ps, t: ps.get_event(select_timeout=t),
    "get_events": lambda ps, t: ps.get_events(select_timeout=t),
    "events": lambda ps, t: next(ps.events(select_timeout=t, yield_timeouts=True)),
}


# Every method waits through one PubSub._wait: health checks (which split a wait) with one.
WITH_HEALTH_CHECKS = pytest.param("get_event", 0.3, id="get_event-health-checks")
PLAIN = [pytest.param(method, None, id=method) for method in sorted(WAITS)]


@pytest.mark.parametrize("timeout", [0, 1.0])
@pytest.mark.parametrize(("method", "health_check_interval"), [*PLAIN, WITH_HEALTH_CHECKS])
def test_select_timeout_ends_an_idle_wait_on_time(
    pg: Server, open_client: Callable[..., PubSub], method: str, timeout: float,
    health_check_interval: Optional[float],
) -> None:
    ps = open_client(**pg.dsn_kwargs(sslmode="disable"),
                     health_check_interval=health_check_interval)
    ps.listen("quiet")
    with watchdog(ps), stopwatch() as clock:
        got = WAITS[method](ps, timeout)
    assert got is None
    assert_on_time(clock.elapsed, timeout, f"{method}(select_timeout={timeout})")


DELAY = 1.0  # seconds between the start of a wait without limit and the notification


@pytest.mark.parametrize(("method", "health_check_interval"), [*PLAIN, WITH_HEALTH_CHECKS])
def test_select_timeout_none_waits_for_the_next_notification(
    pg: Server, open_client: Callable[..., PubSub], method: str,
    health_check_interval: Optional[float],
) -> None:
    """No limit: the call is still waiting when the notification is sent, DELAY seconds
    after it began, and returns it.  (The delay is the stimulus, not a synchronisation:
    nothing outside the call can see that it waits.)"""
    params = pg.dsn_kwargs(sslmode="disable")
    ps = open_client(**params, health_check_interval=health_check_interval)
    sender = open_client(**params)
    ps.listen("later")
    pacing = threading.Event()  # never set: its wait() spaces the notification from the call

    def send_later() -> None:
        pacing.wait(DELAY)
        sender.notify("later", "came")

    with watchdog(ps), stopwatch() as clock:
        join = in_thread(send_later)
        got = WAITS[method](ps, None)
    join()
    expected = Notify(sender.conn.get_backend_pid(), "later", "came")
    assert got == ([expected] if method == "get_events" else expected)
    assert_on_time(clock.elapsed, DELAY, "the notification")


# -- connect_timeout -------------------------------------------------------------------


def test_connect_timeout_ends_a_start_up_that_never_answers(
    open_client: Callable[..., PubSub]
) -> None:
    """The server reads the start-up packet and says nothing.  (Should the client wait
    longer, the fake hangs up after GUARD seconds, and the error is not a timeout.)"""

    def script(conn: FakeConn) -> None:
        conn.read_startup()
        conn.read_until_eof()

    with FakeBackend(script, timeout=GUARD, check=False) as srv, stopwatch() as clock, \
            pytest.raises(OperationalError) as info:
        open_client(**{**to_fake(srv), "connect_timeout": 2})
    assert "timeout" in str(info.value), str(info.value)
    assert_on_time(clock.elapsed, 2.0, "connect_timeout")


# -- the health check ------------------------------------------------------------------

INTERVAL = 1.0
CHECK_TIMEOUT = 1.0


def test_health_checks_come_every_interval_of_silence(open_client: Callable[..., PubSub]) -> None:
    """An idle connection to a server that answers: a round trip after every INTERVAL
    without traffic, never sooner, and the wait goes on."""
    session = Session()
    with FakeBackend(session, timeout=GUARD) as srv:
        with stopwatch() as clock:
            ps = open_client(**to_fake(srv, health_check_interval=INTERVAL))
            ps.listen("x")
            with watchdog(ps):
                assert ps.get_event(select_timeout=INTERVAL + LATE + 0.5) is None
        ps.close()
    pings = [i for i, sql in enumerate(session.log) if sql == ""]
    assert pings, f"no health check within {clock.elapsed:.2f} s: {session.log!r}"
    first = session.times[pings[0]] - clock.started
    assert_on_time(first, INTERVAL, "the first health check", late=LATE + 0.5)
    for ping in pings:  # each one an INTERVAL after the answer before it, not sooner
        since_traffic = session.times[ping] - session.answered[ping - 1]
        assert since_traffic >= INTERVAL - TICK, f"a health check after {since_traffic:.3f} s"


def test_received_traffic_puts_the_health_check_off(open_client: Callable[..., PubSub]) -> None:
    """Notifications arriving every 0.2 s for 2 s: the connection is never idle for the 1.5 s
    interval, so no health check is sent."""
    session = Session()
    pacing = threading.Event()  # never set: its wait() spaces the notifications

    def script(conn: FakeConn) -> None:
        conn.handshake(pid=FAKE_PID)
        assert conn.read_query() == 'LISTEN "x"'
        conn.send(command_complete("LISTEN") + ready())
        for n in range(10):
            pacing.wait(0.2)
            conn.notification(7, "x", str(n))
        session(conn, handshake=False)

    with FakeBackend(script, timeout=GUARD) as srv:
        ps = open_client(**to_fake(srv, health_check_interval=1.5))
        ps.listen("x")
        with watchdog(ps):
            got = [ps.get_event(select_timeout=GUARD) for _ in range(10)]
        assert got == [Notify(7, "x", str(n)) for n in range(10)]
        ps.close()
    assert session.log == []


@pytest.mark.parametrize("reconnect", [False, True], ids=["no-reconnect", "reconnect"])
def test_a_silent_server_is_presumed_dead_after_interval_and_timeout(
    open_client: Callable[..., PubSub], reconnect: bool
) -> None:
    """After the LISTEN, the server never answers again: the health check is sent after
    INTERVAL and given up after CHECK_TIMEOUT more.  With reconnection, the next attempt is
    refused (the database is shutting down), and that is what is raised."""
    session = Session(silent_after=1)
    policy = pgwire_pubsub.ReconnectPolicy(max_attempts=1) if reconnect else None

    def script(conn: FakeConn) -> None:
        if conn.index == 0:
            session(conn)
        else:
            refuse(conn)

    with FakeBackend(script, connections=2, timeout=GUARD, check=False) as srv, \
            stopwatch() as clock:
        ps = open_client(**to_fake(srv, health_check_interval=INTERVAL,
                                   health_check_timeout=CHECK_TIMEOUT, reconnect=policy))
        ps.listen("x")
        with watchdog(ps), pytest.raises(OperationalError) as info:
            ps.get_event(select_timeout=GUARD)
    assert session.log == ['LISTEN "x"', ""]
    assert_on_time(session.times[1] - clock.started, INTERVAL, "the health check")
    assert_on_time(clock.elapsed, INTERVAL + CHECK_TIMEOUT, "the health check's timeout")
    assert ps.conn.closed == 2
    if reconnect:
        assert info.value.sqlstate == "57P03", str(info.value)
    else:
        assert "health check" in str(info.value) and "presumed dead" in str(info.value)


# -- verify() --------------------------------------------------------------------------

VERIFY_TIMEOUT = 1.0


def private_queries(session: Session) -> List[str]:
    """The verbs of the queries on verify()'s private channel."""
    return [sql.split()[0] for sql in session.log if "pgwire_pubsub_verify_" in sql]


def test_verify_fails_on_time_when_the_notification_never_comes_back(
    open_client: Callable[..., PubSub]
) -> None:
    """A server (or pooler) that takes the NOTIFY but never delivers it to this session."""
    session = Session(swallow=True)
    with FakeBackend(session, timeout=GUARD) as srv:
        ps = open_client(**to_fake(srv))
        with watchdog(ps), stopwatch() as clock, pytest.raises(OperationalError) as info:
            ps.verify(timeout=VERIFY_TIMEOUT)
        assert_on_time(clock.elapsed, VERIFY_TIMEOUT, "verify's timeout")
        message = str(info.value)
        assert "did not come back within 1 s" in message and "pooler" in message
        # The private channel is left again, and the connection is fine.
        assert private_queries(session) == ["LISTEN", "NOTIFY", "UNLISTEN"]
        assert ps.conn.closed == 0
        ps.listen("after")
        ps.close()
    assert session.listening == {"after"}


@pytest.mark.parametrize("silent", ["LISTEN", "NOTIFY"])
def test_verify_fails_on_time_when_the_server_stops_answering(
    open_client: Callable[..., PubSub], silent: str
) -> None:
    """verify(timeout) bounds the whole call: a peer that vanished while verify()'s LISTEN
    or NOTIFY waits for its answer fails it on time, and closes the connection (the answer
    may still come, and would be taken for the next command's)."""
    session = Session(silent_after=["LISTEN", "NOTIFY"].index(silent))
    with FakeBackend(session, timeout=GUARD) as srv:
        ps = open_client(**to_fake(srv))
        with watchdog(ps), stopwatch() as clock, pytest.raises(OperationalError) as info:
            ps.verify(timeout=VERIFY_TIMEOUT)
        assert_on_time(clock.elapsed, VERIFY_TIMEOUT, "verify's timeout")
        assert f"did not answer {silent} within 1 s" in str(info.value)
        assert private_queries(session)[-1] == silent
        assert ps.conn.closed
        ps.close()


@pytest.mark.parametrize("how", ["verify", "listen"])
def test_verify_passes_when_the_notification_comes_back(
    open_client: Callable[..., PubSub], how: str
) -> None:
    """The private notification is taken out of the stream; one that came meanwhile stays."""
    session = Session(with_notify=notify(7, "orders", "meanwhile"))
    with FakeBackend(session, timeout=GUARD) as srv:
        ps = open_client(**to_fake(srv))
        with watchdog(ps), stopwatch() as clock:
            if how == "verify":
                ps.listen("orders")
                ps.verify(timeout=GUARD)
            else:
                ps.listen("orders", verify=True)
        assert clock.elapsed < LATE
        assert private_queries(session) == ["LISTEN", "NOTIFY", "UNLISTEN"]
        assert ps.get_events() == [Notify(7, "orders", "meanwhile")]
        ps.close()
    assert session.listening == {"orders"}


def test_verify_waits_for_its_notification_while_others_are_waiting(
    open_client: Callable[..., PubSub]
) -> None:
    """A notification is already waiting to be taken when verify() starts, and the private
    one comes back in a later read: verify() must go on reading (not spin on the waiting
    one until its timeout)."""
    session = Session(with_listen=notify(7, "orders", "waiting"), late_by=0.2)
    with FakeBackend(session, timeout=GUARD) as srv:
        ps = open_client(**to_fake(srv))
        ps.listen("orders")  # the reply brings the waiting notification
        with watchdog(ps), stopwatch() as clock:
            ps.verify(timeout=5.0)
        assert_on_time(clock.elapsed, 0.2, "the private notification")
        assert ps.get_events() == [Notify(7, "orders", "waiting")]
        ps.close()


def test_a_send_stuck_on_a_full_socket_buffer_ends_at_its_deadline() -> None:
    """A server that stops reading fills the socket's buffers: a send with a deadline (a
    health check's ping, ``run_within``) ends there with TimeoutError, instead of waiting
    until the server reads again."""
    near, far = socket.socketpair()
    stop = threading.Timer(GUARD, far.close)  # the mutant's wait then ends, in an OSError
    stop.daemon = True
    try:
        near.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        io = SocketIO(near, Machine())
        stop.start()
        with stopwatch() as clock, pytest.raises(TimeoutError):
            io.sendall(b"x" * (1 << 22), time.monotonic() + 0.5)
        assert_on_time(clock.elapsed, 0.5, "the send's deadline")
    finally:
        stop.cancel()
        near.close()
        far.close()
