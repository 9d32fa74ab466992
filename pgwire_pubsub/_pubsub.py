"""The pgpubsub API: connect(), PubSub with listen/unlisten/notify/get_event/get_events/events,
plus what keeps a stream honest: reconnection, health checks, a bound, a self-test."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any, Iterable, Iterator, List, Optional, Set, Tuple, Union

from ._blocking.connection import Connection, connect_raw
from ._shared.channels import (
    check_channel,
    check_payload,
    notify_statement,
    quote_ident,
    text_array,
)
from ._shared.reconnect import ReconnectPolicy
from .conninfo import make_params
from .errors import DatabaseError, InterfaceError, OperationalError
from .protocol.events import Bound, Event, Reconnected, _Overflowed, check_bound_options
from .protocol.pending import Pending

__all__ = ["PubSub", "connect", "quote_ident"]

VERIFY_TIMEOUT = 5.0
# Items per statement in notify_many (a few hundred kB of parameters).
BATCH_SIZE = 5000
# In array order (WITH ORDINALITY ... ORDER BY), one row back whatever the size.
NOTIFY_MANY_SQL = (
    "SELECT count(*) FROM (SELECT pg_catalog.pg_notify(c, p) "
    "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(c, p, i) ORDER BY i) AS s"
)


class PubSub:
    """LISTEN/NOTIFY on one connection, with pgpubsub's methods.

    Options (all off by default, as in pgpubsub):

    - ``reconnect``: True or a ``ReconnectPolicy``.  A lost connection is
      re-established through the same settings, every channel is listened to
      again, and a ``Reconnected`` event marks the gap in the stream.
    - ``health_check_interval``: seconds without traffic after which a round
      trip checks the server (within ``health_check_timeout``; with
      ``health_check_channels``, also that it still listens on every channel).
    - ``max_pending`` and ``overflow`` (``"raise"`` or ``"drop-oldest"``): a
      bound on notifications waiting to be taken.
    """

    def __init__(
        self,
        conn: Connection,
        *,
        reconnect: Union[bool, ReconnectPolicy, None] = None,
        health_check_interval: Optional[float] = None,
        health_check_timeout: float = 5.0,
        health_check_channels: bool = False,
        max_pending: Optional[int] = None,
        overflow: str = "raise",
    ) -> None:
        check_options(health_check_interval, max_pending, overflow)
        self.conn = conn
        self.channels: Set[str] = set()
        self.policy = ReconnectPolicy() if reconnect is True else (reconnect or None)
        self.health_check_interval = health_check_interval
        self.health_check_timeout = health_check_timeout
        self.health_check_channels = health_check_channels
        self._bound = Bound(max_pending, overflow) if max_pending is not None else None
        self._queue: Pending = conn.notifications
        conn.bound = self._bound
        self._gave_up: Optional[OperationalError] = None
        self._stop = threading.Event()

    # -- commands --------------------------------------------------------

    def listen(self, channel: str, verify: bool = False) -> None:
        """Subscribe to ``channel`` (an exact name: no case folding, any characters).

        With ``verify``, also run ``verify()`` to prove that notifications come back.
        """
        self._connected().execute("LISTEN " + quote_ident(check_channel(channel)))
        self.channels.add(channel)
        if verify:
            self.verify()

    def unlisten(self, channel: Optional[str] = None) -> None:
        """Unsubscribe from ``channel``; with no channel (or ``'*'``), from every channel."""
        if channel is None or channel == "*":
            self._connected().execute("UNLISTEN *")
            self.channels.clear()
            return
        self._connected().execute("UNLISTEN " + quote_ident(check_channel(channel)))
        self.channels.discard(channel)

    def notify(self, channel: str, payload: Optional[str] = None) -> None:
        """Send ``payload`` (default empty) on ``channel``, both quoted exactly."""
        self._connected().execute(notify_statement(check_channel(channel), check_payload(payload)))

    def notify_many(self, notifications: Iterable[Tuple[str, Optional[str]]]) -> int:
        """Send many ``(channel, payload)`` notifications atomically and in order: all are
        delivered, in one transaction, or none.  Far faster than ``notify`` in a loop: one
        statement (two array parameters) per ``BATCH_SIZE`` items.  Every item is checked
        first; a bad one fails the whole batch with an error naming it.  Returns how many
        were sent."""
        channels: List[str] = []
        payloads: List[str] = []
        for index, item in enumerate(notifications):
            try:
                channel, payload = item
                channels.append(check_channel(channel))
                payloads.append(check_payload(payload))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"notification {index}: {exc}") from None
        if not channels:
            return 0
        conn = self._connected()
        starts = range(0, len(channels), BATCH_SIZE)
        own_transaction = len(starts) > 1 and conn.transaction_status == "I"
        if own_transaction:
            conn.execute("BEGIN")
        try:
            for start in starts:
                stop = start + BATCH_SIZE
                arrays = [text_array(channels[start:stop]), text_array(payloads[start:stop])]
                conn.execute(NOTIFY_MANY_SQL, arrays)
            if own_transaction:
                conn.execute("COMMIT")
        except DatabaseError as exc:
            if own_transaction and conn.closed == 0 and conn.transaction_status != "I":
                conn.execute("ROLLBACK")
            message = f"notify_many: none of the {len(channels)} notifications was sent: {exc}"
            raise type(exc)(message, exc.fields) from None
        return len(channels)

    def queue_usage(self) -> float:
        """``pg_notification_queue_usage()``: the fraction of the server's notification
        queue in use (a slow listener anywhere makes it grow)."""
        rows = self._connected().execute("SELECT pg_catalog.pg_notification_queue_usage()")
        return float(rows[0][0])

    def verify(self, timeout: float = VERIFY_TIMEOUT) -> None:
        """Prove that LISTEN works here: a notification to a private channel must come back.

        Raises ``OperationalError`` when it does not within ``timeout`` seconds
        (for example behind a connection pooler in transaction mode).
        Notifications received meanwhile stay queued, in order.
        """
        conn = self._connected()
        channel = f"pgwire_pubsub_verify_{conn.get_backend_pid()}_{secrets.token_hex(6)}"
        token = secrets.token_hex(8)
        # The bound must not drop the self-test's own notification (nor one of yours for it).
        bound, conn.bound = conn.bound, None
        try:
            self._self_test(conn, channel, token, timeout)
        finally:
            conn.bound = bound
            if bound is not None:
                bound.enforce(self._queue)

    def _self_test(self, conn: Connection, channel: str, token: str, timeout: float) -> None:
        conn.execute("LISTEN " + quote_ident(channel))
        try:
            conn.execute(notify_statement(channel, token))
            deadline = time.monotonic() + timeout
            while not self._take_private(channel, token):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OperationalError(
                        f"LISTEN/NOTIFY self-test failed: a notification this session sent "
                        f"to itself did not come back within {timeout:g} s. Notifications "
                        "are probably not delivered to this connection: a connection pooler "
                        "in transaction or statement mode (e.g. PgBouncer with "
                        "pool_mode=transaction) does not keep LISTEN; connect to PostgreSQL "
                        "directly or through a session-mode pool"
                    )
                self._waited_read(left, more=True)  # others may be waiting: read on
        finally:
            if not conn.closed:
                conn.execute("UNLISTEN " + quote_ident(channel))

    def _take_private(self, channel: str, token: str) -> bool:
        return self._queue.take_first(
            lambda item: item.channel == channel and item.payload == token
        )

    # -- receiving -------------------------------------------------------

    def get_event(self, select_timeout: Optional[float] = 0) -> Optional[Event]:
        """The next event, waiting up to ``select_timeout`` seconds (None: no limit)."""
        self._check_usable()
        if not self._queue.items:  # the deque's truth test, in C: this runs per event
            self._wait(select_timeout)
        return self._take() if self._queue.items else None

    def get_events(self, select_timeout: Optional[float] = 0) -> Optional[List[Event]]:
        """Every event waiting (after up to ``select_timeout`` seconds), or None."""
        self._check_usable()
        if not self._queue:
            self._wait(select_timeout)
        queue = self._queue
        if self._bound is None:  # no overflow markers: hand over the whole queue at once
            events: List[Event] = queue.take_all()  # type: ignore[assignment]
            return events or None
        events = []
        while queue:
            if events and type(queue[0]) is _Overflowed:
                break  # raised by the next call, at the point of loss
            event = self._take()
            if event is not None:
                events.append(event)
        return events or None

    def events(
        self, select_timeout: Optional[float] = 5, yield_timeouts: bool = False
    ) -> Iterator[Optional[Event]]:
        """Events as they arrive, until ``close()`` (from any thread) ends the loop; with
        ``yield_timeouts``, None after each ``select_timeout`` seconds without one.

        Iterating a closed PubSub raises ``InterfaceError``; closing it while
        iterating (from the loop, another thread or a signal handler) ends the loop."""
        self._check_usable()
        queue = self._queue
        while True:
            if self.conn.closed == 1:
                return
            while queue.items and self.conn.closed != 1:
                yield self._take()
            try:
                self._wait(select_timeout)
            except InterfaceError:
                if self.conn.closed == 1:
                    return
                raise
            if not queue.items and yield_timeouts:
                yield None

    def _take(self) -> Optional[Event]:
        item = self._queue.popleft()
        if self._bound is not None:
            return self._bound.take(item)
        return item  # type: ignore[return-value]

    def _check_usable(self) -> None:
        if self.conn.closed == 1:
            raise InterfaceError("connection already closed")

    def _wait(self, timeout: Optional[float]) -> None:
        """Wait for an event until ``timeout`` (None: no limit, as with select)."""
        self._check_usable()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._waited_read(left)
            if self._queue.items or (deadline is not None and time.monotonic() >= deadline):
                return

    def _waited_read(self, timeout: Optional[float], more: bool = False) -> None:
        """One wait for data (at most ``timeout``), with health checks and recovery; with
        ``more``, even while notifications are waiting."""
        conn = self._connected()
        interval = self.health_check_interval
        if interval is not None:
            due = interval - conn.idle_seconds
            if due <= 0:
                self._health_check()
                return
            timeout = due if timeout is None else min(timeout, due)
        try:
            conn.wait_notifications(timeout, more)
        except OperationalError as exc:
            self._recover(exc)

    def _health_check(self) -> None:
        conn = self.conn
        try:
            conn.ping(self.health_check_timeout)
            if self.health_check_channels and self.channels:
                missing = self.channels - set(conn.listening_channels(self.health_check_timeout))
                if missing:
                    raise conn.mark_broken(
                        f"the server no longer listens on {sorted(missing)!r} for this "
                        "session (is a connection pooler in transaction mode in between?)"
                    )
        except OperationalError as exc:
            if conn.closed == 2 and "timeout" in str(exc):
                exc = OperationalError(
                    f"health check: no answer from the server within "
                    f"{self.health_check_timeout:g} s; the connection is presumed dead"
                )
            self._recover(exc)

    # -- recovery --------------------------------------------------------

    def _connected(self) -> Connection:
        """The connection, re-established first if it was lost and reconnection is on."""
        if self._gave_up is not None:
            raise self._gave_up
        if self.conn.closed == 2 and self.policy is not None:
            self._reconnect()
        return self.conn

    def _recover(self, error: OperationalError) -> None:
        """A lost connection: raise (the default), or reconnect and mark the gap."""
        if self.policy is None or self.conn.closed != 2:
            raise error
        self._reconnect()

    def _reconnect(self) -> None:
        policy = self.policy
        assert policy is not None
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            conn: Optional[Connection] = None
            try:
                conn = Connection(self.conn.params)
                for channel in sorted(self.channels):
                    conn.execute("LISTEN " + quote_ident(channel))
                break
            except OperationalError as exc:
                if conn is not None:
                    conn.close()
                if policy.gives_up(attempt, time.monotonic() - started):
                    self._gave_up = exc
                    raise
                if self._stop.wait(policy.delay(attempt)):
                    raise InterfaceError("connection closed while reconnecting") from None
        if self._stop.is_set():  # close() came while the new connection was being made
            conn.close()
            raise InterfaceError("connection closed while reconnecting")
        # The marker goes exactly between what came before the loss and what follows.
        self._queue.append(Reconnected(time.monotonic() - started, conn.get_backend_pid(), attempt))
        if self._bound is not None:
            self._bound.marker_added()
        conn.adopt_queue(self._queue, self._bound)
        self.conn = conn

    # -- the rest --------------------------------------------------------

    def close(self) -> None:
        """Close the connection; safe from another thread or a signal handler, where it
        wakes a thread blocked in ``events()`` (which then ends)."""
        self._stop.set()
        self.conn.close()

    def __enter__(self) -> PubSub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pgwire_pubsub.PubSub channels={sorted(self.channels)!r} conn={self.conn!r}>"


_PUBSUB_OPTIONS = (
    "reconnect",
    "health_check_interval",
    "health_check_timeout",
    "health_check_channels",
    "max_pending",
    "overflow",
)


def connect(dsn: Optional[str] = None, **kwargs: Any) -> PubSub:
    """Connect and return a ``PubSub``; takes what ``psycopg2.connect()`` takes, plus the
    PubSub options (``reconnect``, ``health_check_interval``, ``max_pending``...)."""
    options = {key: kwargs.pop(key) for key in _PUBSUB_OPTIONS if key in kwargs}
    check_options(
        options.get("health_check_interval"),
        options.get("max_pending"),
        options.get("overflow", "raise"),
    )
    params = make_params(dsn, **kwargs)
    return PubSub(Connection(params), **options)


def check_options(
    health_check_interval: Optional[float], max_pending: Optional[int], overflow: str
) -> None:
    """Refuse bad PubSub options before anything is connected."""
    if health_check_interval is not None and not health_check_interval > 0:
        raise ValueError(
            f"health_check_interval must be a positive number of seconds, not "
            f"{health_check_interval!r}"
        )
    check_bound_options(max_pending, overflow)


ConnectionLike = Union[Connection, PubSub]


def as_connection(conn: ConnectionLike) -> Connection:
    return conn.conn if isinstance(conn, PubSub) else conn


# Kept importable from here for existing code.
__all__ += ["check_channel", "check_payload", "connect_raw"]
