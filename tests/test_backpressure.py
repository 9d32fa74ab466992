"""The bound on pending notifications (``max_pending``, ``overflow``) against a real server.

A burst sent in one transaction reaches the client's socket as one run of bytes; each test
waits until all of it is in the kernel's receive buffer (FIONREAD) before the first read, so
the whole burst is taken in by one read and the results do not depend on TCP timing.
That is why these connections use ``sslmode=disable``: the bytes counted are the protocol's.
"""

from __future__ import annotations

from typing import Any, Callable, List

import pytest
from aioadapter import SyncPubSub

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import (
    Dropped,
    Notify,
    OperationalError,
    PendingOverflow,
    PubSub,
    Reconnected,
)
from pgwire_pubsub.testing.pgcluster import Server, wait_for
from pgwire_pubsub.testing.wirebytes import notification_size, unread_bytes

TIMEOUT = 10.0  # seconds: a failure guard, never a performance target
CHANNEL = "backpressure"


@pytest.fixture
def connect(pg: Server, open_client: Callable[..., PubSub]) -> Callable[..., PubSub]:
    def make(**options: Any) -> PubSub:
        return open_client(**pg.dsn_kwargs(sslmode="disable"), **options)

    return make


def send_burst(pg: Server, ps: PubSub, count: int, channel: str = CHANNEL) -> int:
    """psql sends payloads '1'..'count' in one transaction; returns once every byte of them
    waits unread in ``ps``'s socket.  The sender's pid."""
    before = ps.conn.bytes_received if isinstance(ps, SyncPubSub) else 0
    out = pg.psql(
        f"BEGIN; SELECT pg_notify('{channel}', i::text) FROM generate_series(1, {count}) i; "
        "SELECT pg_backend_pid(); COMMIT;"
    )
    expected = sum(notification_size(channel, str(i)) for i in range(1, count + 1))
    if isinstance(ps, SyncPubSub):  # the asyncio client's reader takes in what comes at once
        wait_for(lambda: ps.conn.bytes_received - before >= expected, TIMEOUT,
                 message=f"{expected} bytes")
        assert ps.conn.bytes_received - before == expected
        return int(out.split()[-1])
    fd = ps.conn.fileno()
    wait_for(lambda: unread_bytes(fd) >= expected, TIMEOUT, message=f"{expected} bytes")
    assert unread_bytes(fd) == expected
    return int(out.split()[-1])


def burst(pid: int, start: int, stop: int, channel: str = CHANNEL) -> List[Notify]:
    return [Notify(pid, channel, str(i)) for i in range(start, stop)]


def take(ps: PubSub, count: int) -> List[Any]:
    out: List[Any] = []
    for _ in range(count):
        event = ps.get_event(select_timeout=TIMEOUT)
        assert event is not None, f"only {len(out)} of {count} events arrived"
        out.append(event)
    return out


def still_works(pg: Server, ps: PubSub) -> None:
    """A later notification arrives, and nothing else is waiting."""
    out = pg.psql(f"SELECT pg_notify('{CHANNEL}', 'later'); SELECT pg_backend_pid();")
    pid = int(out.split()[-1])
    assert ps.get_event(select_timeout=TIMEOUT) == Notify(pid, CHANNEL, "later")
    assert ps.get_event(select_timeout=0.1) is None


# -- overflow='raise' -------------------------------------------------------------


def test_raise_delivers_the_first_then_raises_at_the_point_of_loss(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = connect(max_pending=100, overflow="raise")
    pubsub.listen(CHANNEL)
    sender = send_burst(pg, pubsub, 250)

    assert take(pubsub, 100) == burst(sender, 1, 101)
    with pytest.raises(PendingOverflow) as info:
        pubsub.get_event(select_timeout=TIMEOUT)
    assert info.value.lost == 150
    assert "150 notification(s) were lost" in str(info.value)
    assert pubsub.get_event(select_timeout=0.1) is None  # raised once, nothing else queued
    assert pubsub.conn.closed == 0
    still_works(pg, pubsub)


def test_raise_is_the_default_policy(pg: Server, connect: Callable[..., PubSub]) -> None:
    pubsub = connect(max_pending=10)
    pubsub.listen(CHANNEL)
    sender = send_burst(pg, pubsub, 25)
    assert take(pubsub, 10) == burst(sender, 1, 11)
    with pytest.raises(PendingOverflow) as info:
        pubsub.get_event()
    assert info.value.lost == 15


def test_get_events_stops_before_the_overflow_and_the_next_call_raises(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = connect(max_pending=100, overflow="raise")
    pubsub.listen(CHANNEL)
    sender = send_burst(pg, pubsub, 250)

    assert pubsub.get_events(select_timeout=TIMEOUT) == burst(sender, 1, 101)
    with pytest.raises(PendingOverflow) as info:
        pubsub.get_events()
    assert info.value.lost == 150
    assert pubsub.get_events(select_timeout=0.1) is None
    still_works(pg, pubsub)


def test_events_raises_at_the_point_of_loss(pg: Server, connect: Callable[..., PubSub]) -> None:
    pubsub = connect(max_pending=5, overflow="raise")
    pubsub.listen(CHANNEL)
    sender = send_burst(pg, pubsub, 8)
    got: List[Any] = []
    with pytest.raises(PendingOverflow) as info:
        for event in pubsub.events(select_timeout=TIMEOUT):
            got.append(event)
    assert got == burst(sender, 1, 6)
    assert info.value.lost == 3
    still_works(pg, pubsub)


def take_through_events(ps: PubSub, count: int, every: int) -> List[Any]:
    """``count`` events through ``events()`` loops broken out of after ``every`` each (an
    overflow raised counts as one, as the exception)."""
    got: List[Any] = []
    while len(got) < count:
        try:
            for event in ps.events(select_timeout=TIMEOUT):
                got.append(event)
                if len(got) % every == 0 or len(got) == count:
                    break
        except PendingOverflow as exc:
            got.append(exc)
    return got


@pytest.mark.parametrize("every", [1, 7, 64])
@pytest.mark.parametrize("overflow", ["raise", "drop-oldest"])
def test_events_left_and_taken_again_keep_the_markers_where_they_belong(
    pg: Server, connect: Callable[..., PubSub], overflow: str, every: int
) -> None:
    """events() takes many at a time (Pending.ready); loops broken out of every few events
    give what get_event gives, the marker of the bound exactly where the loss was."""
    pubsub = connect(max_pending=100, overflow=overflow)
    pubsub.listen(CHANNEL)
    sender = send_burst(pg, pubsub, 250)
    got = take_through_events(pubsub, 101, every)
    if overflow == "raise":
        assert got[:100] == burst(sender, 1, 101)
        assert isinstance(got[100], PendingOverflow) and got[100].lost == 150
    else:
        assert got == [Dropped(150), *burst(sender, 151, 251)]
    still_works(pg, pubsub)


# -- overflow='drop-oldest' -----------------------------------------------------------


def test_drop_oldest_says_how_many_went_then_delivers_the_newest(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = connect(max_pending=100, overflow="drop-oldest")
    pubsub.listen(CHANNEL)
    sender = send_burst(pg, pubsub, 250)

    assert pubsub.get_event(select_timeout=TIMEOUT) == Dropped(150)
    assert take(pubsub, 100) == burst(sender, 151, 251)
    assert pubsub.get_event(select_timeout=0.1) is None
    still_works(pg, pubsub)


def test_drop_oldest_with_get_events(pg: Server, connect: Callable[..., PubSub]) -> None:
    pubsub = connect(max_pending=100, overflow="drop-oldest")
    pubsub.listen(CHANNEL)
    sender = send_burst(pg, pubsub, 250)
    assert pubsub.get_events(select_timeout=TIMEOUT) == [Dropped(150), *burst(sender, 151, 251)]
    assert pubsub.get_events(select_timeout=0.1) is None


def test_within_the_bound_nothing_is_dropped_or_marked(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    for policy in ("raise", "drop-oldest"):
        pubsub = connect(max_pending=100, overflow=policy)
        pubsub.listen(CHANNEL)
        sender = send_burst(pg, pubsub, 100)
        assert pubsub.get_events(select_timeout=TIMEOUT) == burst(sender, 1, 101)
        assert pubsub.get_event(select_timeout=0.1) is None


# -- the options ---------------------------------------------------------------------


@pytest.mark.parametrize("max_pending", [0, -1, -1000])
def test_invalid_max_pending_is_refused(pg: Server, max_pending: int) -> None:
    with pytest.raises(ValueError, match="max_pending"):
        pgpubsub.connect(**pg.dsn_kwargs(), max_pending=max_pending)


@pytest.mark.parametrize("overflow", ["drop-newest", "drop_oldest", "Raise", ""])
def test_invalid_overflow_is_refused(pg: Server, overflow: str) -> None:
    with pytest.raises(ValueError, match="overflow"):
        pgpubsub.connect(**pg.dsn_kwargs(), max_pending=10, overflow=overflow)


def test_without_max_pending_nothing_is_dropped(pg: Server, connect: Callable[..., PubSub]) -> None:
    pubsub = connect()
    pubsub.listen(CHANNEL)
    out = pg.psql(
        f"BEGIN; SELECT pg_notify('{CHANNEL}', i::text) FROM generate_series(1, 5000) i; "
        "SELECT pg_backend_pid(); COMMIT;"
    )
    sender = int(out.split()[-1])
    got: List[Any] = []
    while len(got) < 5000:
        events = pubsub.get_events(select_timeout=TIMEOUT)
        assert events is not None, f"only {len(got)} of 5000 arrived"
        got.extend(events)
    assert got == burst(sender, 1, 5001)
    still_works(pg, pubsub)


# -- with reconnection --------------------------------------------------------------


def _fill_then_lose_the_connection(
    pg: Server, connect: Callable[..., PubSub], policy: str
) -> PubSub:
    """A PubSub with max_pending notifications waiting, whose connection is then lost
    (noticed by a command) and re-established (by the next command)."""
    pubsub = connect(max_pending=3, overflow=policy, reconnect=True)
    pubsub.listen(CHANNEL)
    send_burst(pg, pubsub, 3)
    pubsub.conn.poll()
    assert len(pubsub.conn.notifications) == 3
    pid = pubsub.conn.get_backend_pid()
    pg.psql(f"SELECT pg_terminate_backend({pid})")
    wait_for(
        lambda: pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}") == "0\n",
        TIMEOUT,
        message="the backend to exit",
    )
    if isinstance(pubsub, SyncPubSub):
        # The asyncio client's reader sees the loss at once: the command reconnects first.
        wait_for(lambda: pubsub.conn.closed == 2, TIMEOUT, message="the loss to be seen")
    else:
        with pytest.raises(OperationalError):
            pubsub.listen("backpressure_other")
    pubsub.listen("backpressure_other")  # reconnects first
    assert pubsub.conn.get_backend_pid() != pid
    return pubsub


def test_a_reconnection_keeps_the_pending_notifications(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = _fill_then_lose_the_connection(pg, connect, "raise")
    events: List[Any] = []
    for _ in range(4):
        try:
            events.append(pubsub.get_event(select_timeout=TIMEOUT))
        except PendingOverflow as exc:
            events.append(exc)
    assert [e.payload for e in events[:3]] == ["1", "2", "3"]
    assert isinstance(events[3], Reconnected)
    assert events[3].pid == pubsub.conn.get_backend_pid()


def test_a_reconnection_on_a_full_queue_is_not_an_overflow(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = _fill_then_lose_the_connection(pg, connect, "raise")
    take(pubsub, 4)  # three notifications and the Reconnected marker
    assert pubsub.get_event(select_timeout=0.1) is None
