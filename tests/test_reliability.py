"""Fault injection against a real server: restarts, terminated backends, cut, silent and slow
links, a burst across a restart, giving up, lost LISTENs, and the LISTEN self-test, also
behind PgBouncer in transaction mode.

The module starts its own cluster (it is restarted and stopped here) and a ``FaultProxy``
per test where the link itself is at fault.  Every wait has a deadline; the only sleeps are
inside the faults themselves (a server kept down, a proxy holding bytes).

The scripted fake-server cases (malformed messages, a 2 GB length, an unknown message type,
an ErrorResponse during start-up, a truncated frame then EOF) are in test_fake_server.py.
"""

from __future__ import annotations

import array
import fcntl
import os
import termios
import time
from typing import Any, Callable, Iterator, List, Optional, Set, Tuple

import pytest
from aioadapter import SyncPubSub
from pgbouncer import PgBouncer
from pgbouncer import Unavailable as BouncerUnavailable
from pgbuilds import Build
from timing import LATE, assert_on_time, watchdog

from pgwire_pubsub import (
    InterfaceError,
    Notify,
    OperationalError,
    PubSub,
    Reconnected,
    ReconnectPolicy,
)
from pgwire_pubsub.testing.faultproxy import FaultProxy
from pgwire_pubsub.testing.pgcluster import (
    Cluster,
    find_pg_bindir,
    find_psql,
    in_thread,
    lit,
    wait_for,
)

GUARD = 10.0  # seconds: a failure guard against hangs, never a performance target
POLICY = ReconnectPolicy(initial_delay=0.05, max_delay=0.5, max_duration=30)
PROMPT = 2.0  # "at once": well below any select_timeout used with it
CHANNELS = ["plain", "MixedCase", "ünïcødé ☃ канал"]
HEALTH_INTERVAL = 0.5
HEALTH_TIMEOUT = 1.0
HEALTH_MARGIN = 1.0

pytestmark = pytest.mark.integration
RECONNECT = pytest.mark.all_servers("reconnect")


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(pg_build: Optional[Build]) -> Iterator[Cluster]:
    if os.environ.get("PGWIRE_TEST_DSN"):
        pytest.skip("PGWIRE_TEST_DSN is set: these tests restart and stop their own server")
    if find_pg_bindir() is None or find_psql() is None:
        pytest.skip("needs local PostgreSQL server binaries and psql")
    own = Cluster(tls=False, bindir=pg_build.bindir if pg_build else None).start()
    try:
        yield own
    finally:
        own.cleanup(mode="immediate")


@pytest.fixture
def server(cluster: Cluster) -> Cluster:
    """The module's cluster, running (a test that stopped it may have failed half-way)."""
    cluster.start()
    return cluster


@pytest.fixture
def open_pubsub(server: Cluster, open_client: Callable[..., PubSub]) -> Callable[..., PubSub]:
    """``open_pubsub(port=None, **options)``: a PubSub to the cluster (or to ``port``)."""

    def make(port: Optional[int] = None, dbname: str = "postgres", **options: Any) -> PubSub:
        params = server.dsn_kwargs("postgres", sslmode="disable", connect_timeout=5, dbname=dbname)
        if port is not None:
            params["port"] = port
        return open_client(**params, **options)

    return make


@pytest.fixture
def proxy(server: Cluster) -> Iterator[FaultProxy]:
    with FaultProxy(server.host, server.port) as p:
        yield p


# -- helpers ---------------------------------------------------------------------------



def psql_notify(server: Cluster, *pairs: Tuple[str, str]) -> int:
    """Send (channel, payload) pairs from psql in one transaction; the sender's pid."""
    calls = "".join(f"SELECT pg_notify({lit(c)}, {lit(p)}); " for c, p in pairs)
    out = server.psql(f"BEGIN; {calls}SELECT pg_backend_pid(); COMMIT;")
    return int(out.split()[-1])


def burst_payload(i: int) -> str:
    return f"{i}é☃"  # multi-byte characters, so that a byte-wise split lands inside them


def psql_burst(server: Cluster, channel: str, first: int, last: int) -> List[Notify]:
    """Notifications ``first``..``last`` on ``channel``, in one transaction; as expected."""
    out = server.psql(
        "BEGIN; "
        f"SELECT count(pg_notify({lit(channel)}, i::text || 'é☃')) "
        f"FROM generate_series({first}, {last}) AS i; "
        "SELECT pg_backend_pid(); COMMIT;"
    )
    sender = int(out.split()[-1])
    return [Notify(sender, channel, burst_payload(i)) for i in range(first, last + 1)]


def listening(ps: PubSub) -> Set[str]:
    rows = ps.conn.run_within("SELECT pg_catalog.pg_listening_channels()", None, GUARD)
    return {row[0] for row in rows}


def next_event(ps: PubSub, timeout: float = GUARD) -> Any:
    event = ps.get_event(select_timeout=timeout)
    assert event is not None, f"no event within {timeout} s"
    return event


def receive(ps: PubSub, count: int, timeout: float = GUARD) -> List[Any]:
    """Exactly ``count`` events, each within ``timeout`` seconds."""
    got: List[Any] = []
    while len(got) < count:
        event = ps.get_event(select_timeout=timeout)
        assert event is not None, f"only {len(got)} of {count} events arrived: {got[-5:]!r}"
        got.append(event)
    return got



def assert_reconnected(event: Any, old_pid: int, ps: PubSub) -> Reconnected:
    assert isinstance(event, Reconnected), f"expected a Reconnected marker, got {event!r}"
    assert event.pid != old_pid
    assert event.pid == ps.conn.get_backend_pid()
    assert event.down_seconds > 0
    assert event.attempts >= 1
    assert ps.conn.closed == 0
    return event


def assert_delivers(server: Cluster, ps: PubSub, channels: List[str], note: str) -> None:
    """Notifications sent now on every channel arrive, in order, and nothing else."""
    pairs = [(channel, f"{note} {n}") for n, channel in enumerate(channels)]
    sender = psql_notify(server, *pairs)
    assert receive(ps, len(pairs)) == [Notify(sender, c, p) for c, p in pairs]
    assert ps.get_event() is None


# -- server restarts -------------------------------------------------------------------


@RECONNECT
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_with_reconnect_listens_again_on_every_channel(
    server: Cluster, open_pubsub: Callable[..., PubSub], mode: str
) -> None:
    ps = open_pubsub(reconnect=POLICY)
    for channel in CHANNELS:
        ps.listen(channel)
    old_pid = ps.conn.get_backend_pid()

    server.restart(mode)

    assert_reconnected(next_event(ps), old_pid, ps)
    assert listening(ps) == set(CHANNELS)
    assert ps.channels == set(CHANNELS)
    assert_delivers(server, ps, CHANNELS, f"after a {mode} restart")


@RECONNECT
@pytest.mark.parametrize("mode, method", [("fast", "get_event"), ("immediate", "events")])
def test_restart_without_reconnect_raises_promptly(
    server: Cluster, open_pubsub: Callable[..., PubSub], mode: str, method: str
) -> None:
    ps = open_pubsub()
    ps.listen("restart")
    server.restart(mode)
    started = time.monotonic()
    with pytest.raises(OperationalError) as info:
        if method == "get_event":
            ps.get_event(select_timeout=5)
        else:
            next(ps.events(select_timeout=5))
    assert time.monotonic() - started < PROMPT
    assert not isinstance(info.value, InterfaceError)
    assert ps.conn.closed == 2
    if mode == "fast":
        assert info.value.sqlstate == "57P01"
    with pytest.raises(OperationalError):  # and it stays lost
        ps.listen("restart")


# -- pg_terminate_backend --------------------------------------------------------------


@RECONNECT
@pytest.mark.parametrize("reconnect", [True, False], ids=["reconnect", "no-reconnect"])
def test_terminated_backend(
    server: Cluster, open_pubsub: Callable[..., PubSub], reconnect: bool
) -> None:
    ps = open_pubsub(reconnect=POLICY if reconnect else None)
    ps.listen("terminated")
    old_pid = ps.conn.get_backend_pid()
    assert server.psql(f"SELECT pg_terminate_backend({old_pid})") == "t\n"
    if reconnect:
        assert_reconnected(next_event(ps), old_pid, ps)
        assert_delivers(server, ps, ["terminated"], "after pg_terminate_backend")
    else:
        with pytest.raises(OperationalError) as info:
            ps.get_event(select_timeout=GUARD)
        assert info.value.sqlstate == "57P01"
        assert "57P01" in str(info.value)
        assert ps.conn.closed == 2


# -- the link is cut -------------------------------------------------------------------


@RECONNECT
@pytest.mark.parametrize("reconnect", [True, False], ids=["reconnect", "no-reconnect"])
def test_cut_while_idle(
    server: Cluster, open_pubsub: Callable[..., PubSub], proxy: FaultProxy, reconnect: bool
) -> None:
    ps = open_pubsub(port=proxy.port, reconnect=POLICY if reconnect else None)
    ps.listen("cut")
    old_pid = ps.conn.get_backend_pid()
    proxy.cut()
    started = time.monotonic()
    if reconnect:
        assert_reconnected(next_event(ps), old_pid, ps)
        assert proxy.connections == 2  # through the proxy again
        assert_delivers(server, ps, ["cut"], "after the cut")
    else:
        with pytest.raises(OperationalError):
            ps.get_event(select_timeout=GUARD)
        assert time.monotonic() - started < PROMPT
        assert ps.conn.closed == 2


@RECONNECT
@pytest.mark.parametrize("reconnect", [True, False], ids=["reconnect", "no-reconnect"])
def test_cut_during_a_command(
    server: Cluster, open_pubsub: Callable[..., PubSub], proxy: FaultProxy, reconnect: bool
) -> None:
    sleep = 5
    ps = open_pubsub(port=proxy.port, reconnect=POLICY if reconnect else None)
    ps.listen("cut")
    old_pid = ps.conn.get_backend_pid()
    sender = psql_notify(server, ("cut", "before the cut"))

    def received() -> bool:
        ps.conn.poll()
        return bool(ps.conn.notifications)

    wait_for(received, timeout=GUARD, message="the notification to be received")

    def cut_once_running() -> None:
        wait_for(
            lambda: server.psql(
                f"SELECT count(*) FROM pg_stat_activity WHERE pid = {old_pid} "
                f"AND state = 'active' AND query = 'SELECT pg_sleep({sleep})'"
            ) == "1\n",
            timeout=GUARD,
            message="the query to be running",
        )
        proxy.cut()

    join = in_thread(cut_once_running)
    started = time.monotonic()
    with pytest.raises(OperationalError):
        ps.conn.execute(f"SELECT pg_sleep({sleep})")
    assert time.monotonic() - started < sleep - 1  # it was the cut, not the query's end
    join()
    assert ps.conn.closed == 2
    if reconnect:
        ps.notify("cut", "after the cut")  # reconnects first, then runs
        # What was received before the loss comes first, then the marker.
        assert next_event(ps) == Notify(sender, "cut", "before the cut")
        assert_reconnected(next_event(ps), old_pid, ps)
        assert next_event(ps) == Notify(ps.conn.get_backend_pid(), "cut", "after the cut")
        assert ps.get_event() is None
    else:
        with pytest.raises(OperationalError):
            ps.notify("cut", "after the cut")
        assert next_event(ps) == Notify(sender, "cut", "before the cut")  # still handed out
    server.psql(f"SELECT pg_terminate_backend({old_pid})")  # the orphaned sleep


# -- a silent peer, found by the health check ------------------------------------------


@pytest.mark.parametrize("reconnect", [True, False], ids=["reconnect", "no-reconnect"])
def test_blackhole_is_found_by_the_health_check(
    server: Cluster, open_pubsub: Callable[..., PubSub], proxy: FaultProxy, reconnect: bool
) -> None:
    ps = open_pubsub(
        port=proxy.port,
        reconnect=POLICY if reconnect else None,
        health_check_interval=HEALTH_INTERVAL,
        health_check_timeout=HEALTH_TIMEOUT,
    )
    ps.listen("silent")
    old_pid = ps.conn.get_backend_pid()
    limit = HEALTH_INTERVAL + HEALTH_TIMEOUT + HEALTH_MARGIN
    found: List[float] = []

    def restore_once_found_dead() -> None:
        # The reconnection opens a new proxied connection: the old one was given up.
        wait_for(lambda: proxy.connections > 1, timeout=GUARD, message="a new connection")
        found.append(time.monotonic())
        proxy.passthrough()

    join = in_thread(restore_once_found_dead) if reconnect else None
    started = time.monotonic()  # before the last traffic: the check is due HEALTH_INTERVAL
    ps.conn.execute("SELECT 1")  # after it, and given up HEALTH_TIMEOUT after that
    proxy.blackhole()
    due = HEALTH_INTERVAL + HEALTH_TIMEOUT
    if join is not None:
        event = next_event(ps)
        join()
        assert due <= found[0] - started <= limit
        assert_reconnected(event, old_pid, ps)
        assert_delivers(server, ps, ["silent"], "after the blackhole")
    else:
        with pytest.raises(OperationalError, match="health check") as info:
            ps.get_event(select_timeout=GUARD)
        assert due <= time.monotonic() - started <= limit
        assert "presumed dead" in str(info.value)
        assert ps.conn.closed == 2


# -- a slow link -----------------------------------------------------------------------


def notify_size(notify: Notify) -> int:
    """Bytes of a NotificationResponse on the wire."""
    return 1 + 4 + 4 + len(notify.channel.encode()) + 1 + len(notify.payload.encode()) + 1


def test_trickled_burst_arrives_intact_and_in_order(
    server: Cluster, open_pubsub: Callable[..., PubSub], proxy: FaultProxy
) -> None:
    pause = 0.00001
    ps = open_pubsub(port=proxy.port)
    ps.listen("t")
    proxy.trickle(pause)  # one byte at a time: every frame and every character split
    # A round trip: a proxy pump that read the mode before the change has moved on.
    ps.conn.execute("SELECT 1")
    started = time.monotonic()
    expected = psql_burst(server, "t", 1, 2000)
    assert receive(ps, len(expected)) == expected
    assert ps.get_event() is None
    # It really came byte by byte (passed through at once, it takes a few milliseconds).
    assert time.monotonic() - started >= sum(map(notify_size, expected)) * pause


# -- a restart in the middle of a burst ------------------------------------------------


def unread_bytes(ps: PubSub) -> int:
    """Bytes waiting in the client's socket, not yet read."""
    buf = array.array("i", [0])
    fcntl.ioctl(ps.conn.fileno(), termios.FIONREAD, buf)
    return buf[0]


@RECONNECT
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_during_a_burst_marks_the_gap_exactly(
    server: Cluster, open_pubsub: Callable[..., PubSub], mode: str
) -> None:
    """Burst A is sent before the restart: its first part taken before it, the rest still
    unread in the socket when the server goes (with ``fast``, right before its FATAL
    error); burst B is sent once the client is back.  The stream must be all of A, the
    marker, all of B."""
    ps = open_pubsub(reconnect=POLICY)
    ps.listen("burst")
    old_pid = ps.conn.get_backend_pid()
    taken = psql_burst(server, "burst", 1, 10)
    stream = receive(ps, len(taken))
    assert stream == taken
    unread = psql_burst(server, "burst", 11, 1000)
    size = sum(map(notify_size, unread))
    if isinstance(ps, SyncPubSub):  # its reader takes in what comes at once
        wait_for(lambda: len(ps.conn.notifications) >= len(unread), timeout=GUARD,
                 message="the rest of burst A to be taken in")
    else:
        wait_for(lambda: unread_bytes(ps) >= size, timeout=GUARD,
                 message="the rest of burst A to wait in the socket")

    server.restart(mode)
    while not isinstance(stream[-1], Reconnected):
        stream.append(next_event(ps))
    burst_b = psql_burst(server, "burst", 1001, 2000)
    stream += receive(ps, len(burst_b))
    assert ps.get_event() is None

    gap = len(taken) + len(unread)
    assert stream[:gap] == taken + unread  # everything that reached us before the loss
    assert_reconnected(stream[gap], old_pid, ps)  # the marker exactly at the gap
    assert stream[gap + 1 :] == burst_b  # nothing of B lost, in order
    assert sum(isinstance(e, Reconnected) for e in stream) == 1


# -- giving up -------------------------------------------------------------------------


@RECONNECT
def test_give_up_raises_the_last_error_on_every_later_call(
    server: Cluster, open_pubsub: Callable[..., PubSub]
) -> None:
    ps = open_pubsub(reconnect=ReconnectPolicy(max_attempts=2, initial_delay=0.01))
    ps.listen("giveup")
    try:
        server.stop()
        started = time.monotonic()
        with pytest.raises(OperationalError) as info:
            ps.get_event(select_timeout=GUARD)
        assert time.monotonic() - started < PROMPT
        error = info.value
        assert error.sqlstate != "57P01"  # not the old connection's end: the last attempt's
        assert "refused" in str(error).lower()
        later: List[Callable[[], Any]] = [
            lambda: ps.get_event(),
            lambda: ps.get_event(select_timeout=1),
            lambda: ps.get_events(select_timeout=1),
            lambda: next(ps.events(select_timeout=1, yield_timeouts=True)),
            lambda: ps.listen("other"),
            lambda: ps.unlisten("giveup"),
            lambda: ps.notify("giveup", "x"),
            lambda: ps.queue_usage(),
            lambda: ps.verify(timeout=1),
        ]
        for call in later:
            with pytest.raises(OperationalError) as again:
                call()
            assert again.value is error
    finally:
        server.start()
    # Given up is final, even once the server is back.
    with pytest.raises(OperationalError) as again:
        ps.listen("giveup")
    assert again.value is error


def test_give_up_after_max_duration_against_a_stopped_server(
    server: Cluster, open_pubsub: Callable[..., PubSub]
) -> None:
    """Every attempt is refused, 0.1 s apart, until 1.5 s have passed since the loss."""
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=0.1, jitter=0.0, max_duration=1.5)
    ps = open_pubsub(reconnect=policy)
    ps.listen("giveup")
    try:
        server.stop()
        started = time.monotonic()
        with watchdog(ps), pytest.raises(OperationalError) as info:
            ps.get_event(select_timeout=GUARD)
        assert_on_time(time.monotonic() - started, 1.5, "max_duration", late=0.1 + LATE)
        assert "refused" in str(info.value).lower()
    finally:
        server.start()


# -- LISTEN lost behind the client's back ----------------------------------------------


@RECONNECT
@pytest.mark.parametrize("reconnect", [True, False], ids=["reconnect", "no-reconnect"])
def test_health_check_notices_missing_channels(
    server: Cluster, open_pubsub: Callable[..., PubSub], reconnect: bool
) -> None:
    ps = open_pubsub(
        reconnect=POLICY if reconnect else None,
        health_check_interval=HEALTH_INTERVAL,
        health_check_timeout=GUARD,
        health_check_channels=True,
    )
    channels = ["kept", "AlsoKept"]
    for channel in channels:
        ps.listen(channel)
    old_pid = ps.conn.get_backend_pid()
    # Several checks pass while every channel is listened to: no false alarm.
    assert ps.get_event(select_timeout=3 * HEALTH_INTERVAL) is None
    assert ps.conn.get_backend_pid() == old_pid

    ps.conn.execute("UNLISTEN *")  # behind the PubSub's back
    started = time.monotonic()  # before the last traffic: the check is due HEALTH_INTERVAL after
    assert listening(ps) == set()
    assert ps.channels == set(channels)
    if reconnect:
        assert_reconnected(next_event(ps), old_pid, ps)
        assert_on_time(time.monotonic() - started, HEALTH_INTERVAL, "the health check",
                       late=HEALTH_MARGIN)
        assert listening(ps) == set(channels)
        assert_delivers(server, ps, channels, "listened to again")
    else:
        with pytest.raises(OperationalError, match="no longer listens"):
            ps.get_event(select_timeout=GUARD)
        assert_on_time(time.monotonic() - started, HEALTH_INTERVAL, "the health check",
                       late=HEALTH_MARGIN)
        assert ps.conn.closed == 2


# -- the LISTEN self-test --------------------------------------------------------------


@RECONNECT
def test_verify_passes_on_a_real_server(
    server: Cluster, open_pubsub: Callable[..., PubSub]
) -> None:
    ps = open_pubsub()
    ps.listen("x")
    sender = psql_notify(server, ("x", "sent before verify"))
    ps.verify()
    ps.listen("y", verify=True)
    assert listening(ps) == {"x", "y"}  # the private channel is gone again
    # What came meanwhile stays queued; the self-test's own notification does not show.
    assert next_event(ps) == Notify(sender, "x", "sent before verify")
    assert ps.get_event() is None
    assert_delivers(server, ps, ["x", "y"], "after verify")


def test_verify_with_a_full_bound(server: Cluster, open_pubsub: Callable[..., PubSub]) -> None:
    """The self-test's own notification is not one of the caller's: a full ``max_pending``
    bound must neither drop it (and fail the self-test) nor report it as lost."""
    ps = open_pubsub(max_pending=1)
    ps.listen("x")
    sender = psql_notify(server, ("x", "waiting"))

    def received() -> bool:
        ps.conn.poll()
        return bool(ps.conn.notifications)

    wait_for(received, timeout=GUARD, message="the notification to be received")
    ps.verify(timeout=1)
    assert ps.get_events() == [Notify(sender, "x", "waiting")]


@pytest.fixture(scope="module")
def bouncer(cluster: Cluster) -> Iterator[PgBouncer]:
    """PgBouncer with a transaction-mode pool ``txn`` (server database ``pubsub``, only used
    here) and a session-mode pool ``session``.

    Two server connections, handed out in turn (``server_round_robin``): LISTEN and the
    NOTIFY that follows always run on different server connections, so the notification
    goes to a server connection no client is linked to, and PgBouncer drops it.  (With
    one server connection, or LIFO reuse, both would run on the same backend and the
    notification would come back within the NOTIFY's own reply.)
    """
    cluster.start()
    try:
        pooler = PgBouncer(
            cluster.host,
            cluster.port,
            databases={
                "txn": "dbname=pubsub pool_mode=transaction",
                "session": "dbname=postgres pool_mode=session",
            },
            settings={"default_pool_size": "2", "min_pool_size": "2", "server_round_robin": "1"},
        ).start()
    except BouncerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield pooler
    finally:
        pooler.stop()


def idle_servers(server: Cluster, bouncer: PgBouncer, database: str) -> int:
    """Server connections of ``database``'s pool that PgBouncer holds idle."""
    out = server.psql("SHOW SERVERS", dbname="pgbouncer", port=bouncer.port)
    rows = [line.split("|") for line in out.splitlines() if line]
    return sum(1 for row in rows if row[2] == database and row[3] == "idle")


def test_verify_fails_behind_pgbouncer_in_transaction_mode(
    server: Cluster, open_pubsub: Callable[..., PubSub], bouncer: PgBouncer
) -> None:
    ps = open_pubsub(port=bouncer.port, dbname="txn")
    wait_for(lambda: idle_servers(server, bouncer, "txn") == 2, timeout=GUARD,
             message="two idle server connections in the transaction pool")
    started = time.monotonic()
    with pytest.raises(OperationalError) as info:
        ps.verify(timeout=1)
    assert time.monotonic() - started < 1 + PROMPT
    message = str(info.value)
    assert "pooler" in message and "transaction" in message
    assert ps.conn.closed == 0  # the connection itself is fine


def test_verify_passes_behind_pgbouncer_in_session_mode(
    open_pubsub: Callable[..., PubSub], bouncer: PgBouncer
) -> None:
    ps = open_pubsub(port=bouncer.port, dbname="session")
    ps.listen("x", verify=True)
    ps.notify("x", "through the pooler")
    event = next_event(ps)  # (its pid is the server backend's, not the one PgBouncer shows)
    assert (event.channel, event.payload) == ("x", "through the pooler")


# -- the server's notification queue ---------------------------------------------------


def batch(tag: str, count: int = 2000) -> List[Tuple[str, str]]:
    """``count`` distinct notifications of about 1 kB (PostgreSQL folds identical ones of a
    transaction into one): 2 MB of the queue's 8 kB pages."""
    return [("backlog", f"{tag} {i:05d} " + "x" * 1000) for i in range(count)]


def test_queue_usage_is_the_servers_figure_and_rises_with_a_backlog(
    server: Cluster, open_pubsub: Callable[..., PubSub]
) -> None:
    """A listener inside a transaction reads nothing until it ends, so the server keeps every
    notification sent meanwhile: ``pg_notification_queue_usage()`` rises above 0 as they
    accumulate, and falls once the listener has read them."""
    ps, blocker = open_pubsub(), open_pubsub()
    blocker.listen("backlog")
    blocker.conn.execute("BEGIN")
    ps.notify_many(batch("first"))
    first = ps.queue_usage()
    assert type(first) is float
    assert 0.0 < first < 1.0
    assert first == float(server.psql("SELECT pg_notification_queue_usage()"))
    ps.notify_many(batch("second"))
    second = ps.queue_usage()
    assert second > first
    blocker.conn.execute("COMMIT")
    assert len(receive(blocker, 4000)) == 4000
    wait_for(lambda: ps.queue_usage() < first, timeout=GUARD,
             message="the queue to be freed once the listener has read it")
