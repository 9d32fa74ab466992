"""The reconnection policy end to end: attempts, the waits between them, and giving up, against
a server that stays down.

The scripted fake server serves the first connection (LISTEN, then it hangs up) and turns
every later one away as a server that is going down does (FATAL 57P03), recording when each
attempt came; one test lets the last attempt in.  The unit tests of ``ReconnectPolicy``
(test_events_unit.py) check its arithmetic; these check that the PubSub obeys it.
"""

from __future__ import annotations

import time
from typing import Any, Callable, List, Optional

import pytest
from timing import GUARD, LATE, TICK, assert_on_time, stopwatch, watchdog

from pgwire_pubsub import OperationalError, PubSub, Reconnected, ReconnectPolicy
from pgwire_pubsub.testing.fakebackend import FakeBackend, FakeConn
from pgwire_pubsub.testing.wirebytes import command_complete, ready

FIRST_PID, LAST_PID = 100, 300
# Enough connections for any of these policies; after them the port refuses.
CONNECTIONS = 40


class Outage:
    """The fake server's script: connection 0 listens and is then lost; every later one is
    refused, but the one numbered ``back_at`` (if any), which listens and stays."""

    def __init__(self, back_at: Optional[int] = None) -> None:
        self.back_at = back_at
        self.attempts: List[float] = []  # when each reconnection attempt arrived
        self.listened_again: List[str] = []

    def __call__(self, conn: FakeConn) -> None:
        if conn.index == 0:
            conn.handshake(pid=FIRST_PID)
            assert conn.read_query() == 'LISTEN "x"'
            conn.send(command_complete("LISTEN") + ready())
            return  # the connection is lost
        self.attempts.append(time.monotonic())
        if conn.index == self.back_at:
            conn.handshake(pid=LAST_PID)
            self.listened_again.append(conn.read_query())
            conn.send(command_complete("LISTEN") + ready())
            conn.read_until_eof()
            return
        conn.read_startup()
        conn.error({"S": "FATAL", "V": "FATAL", "C": "57P03",
                    "M": "the database system is shutting down"})


def lose(srv: FakeBackend, open_client: Callable[..., PubSub], policy: ReconnectPolicy) -> PubSub:
    ps = open_client(host=srv.host, port=srv.port, user="u", sslmode="disable",
                     connect_timeout=int(GUARD), reconnect=policy)
    ps.listen("x")
    return ps


def gaps(times: List[float]) -> List[float]:
    return [later - earlier for earlier, later in zip(times, times[1:])]


def steady(delay: float, **bounds: Any) -> ReconnectPolicy:
    """The same wait after every failed attempt."""
    return ReconnectPolicy(initial_delay=delay, max_delay=delay, multiplier=1.0, jitter=0.0,
                           **bounds)


def test_gives_up_after_max_attempts(open_client: Callable[..., PubSub]) -> None:
    outage = Outage()
    with FakeBackend(outage, connections=CONNECTIONS, timeout=GUARD) as srv:
        ps = lose(srv, open_client, steady(0.3, max_attempts=3))
        with watchdog(ps), stopwatch() as clock, pytest.raises(OperationalError) as info:
            ps.get_event(select_timeout=GUARD)
    assert info.value.sqlstate == "57P03"  # the last attempt's error
    assert len(outage.attempts) == 3
    for gap in gaps(outage.attempts):
        assert_on_time(gap, 0.3, "the wait between attempts")
    assert_on_time(clock.elapsed, 0.6, "giving up")
    with pytest.raises(OperationalError) as again:  # and for good
        ps.listen("y")
    assert again.value is info.value


def test_gives_up_after_max_duration(open_client: Callable[..., PubSub]) -> None:
    """Attempts every 0.2 s until 1.5 s have passed since the loss was noticed: the first
    attempt to fail after that is the last one."""
    outage = Outage()
    with FakeBackend(outage, connections=CONNECTIONS, timeout=GUARD) as srv:
        ps = lose(srv, open_client, steady(0.2, max_duration=1.5))
        with watchdog(ps), stopwatch() as clock, pytest.raises(OperationalError) as info:
            ps.get_event(select_timeout=GUARD)
    assert info.value.sqlstate == "57P03"
    assert_on_time(clock.elapsed, 1.5, "max_duration", late=0.2 + LATE)
    # Attempts 0.2 s apart at the least: the one at 1.6 s (the 9th) is the last there can be.
    assert 2 <= len(outage.attempts) <= 9
    for gap in gaps(outage.attempts):
        assert gap >= 0.2 - TICK


def test_the_waits_grow_by_the_multiplier_up_to_max_delay(
    open_client: Callable[..., PubSub]
) -> None:
    outage = Outage()
    policy = ReconnectPolicy(initial_delay=0.1, multiplier=10.0, max_delay=0.4, jitter=0.0,
                             max_attempts=4)
    with FakeBackend(outage, connections=CONNECTIONS, timeout=GUARD) as srv:
        ps = lose(srv, open_client, policy)
        with watchdog(ps), pytest.raises(OperationalError):
            ps.get_event(select_timeout=GUARD)
    waits = gaps(outage.attempts)
    assert len(waits) == 3
    for wait, due in zip(waits, [0.1, 0.4, 0.4]):
        assert_on_time(wait, due, "the wait between attempts")


def test_reconnected_counts_the_attempts_and_the_time_down(
    open_client: Callable[..., PubSub]
) -> None:
    """Two attempts refused, the third one in: the marker says so, and the channel is
    listened to again on the new connection."""
    outage = Outage(back_at=3)
    with FakeBackend(outage, connections=CONNECTIONS, timeout=GUARD) as srv:
        ps = lose(srv, open_client, steady(0.3, max_attempts=5))
        with watchdog(ps), stopwatch() as clock:
            event = ps.get_event(select_timeout=GUARD)
        assert isinstance(event, Reconnected), event
        assert (event.pid, event.attempts) == (LAST_PID, 3)
        assert 0.6 - TICK <= event.down_seconds <= clock.elapsed
        assert outage.listened_again == ['LISTEN "x"']
        assert ps.channels == {"x"}
        assert ps.conn.get_backend_pid() == LAST_PID
        ps.close()
