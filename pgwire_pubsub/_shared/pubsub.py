"""The pgpubsub API's logic, written once for every driver.

``PubSubCore`` holds a client's state (channels, options, the queue of events)
and its procedures: generators of requests (see ``requests``) that the
blocking ``PubSub`` and the asyncio ``AsyncPubSub`` run, each with its own way
of performing them.  Reconnection, health checks, ``verify()``, the bound and
``notify_many``'s batching live here and nowhere else.

What this expects of a driver's connection object: ``closed`` (0 open, 1 closed,
2 lost), ``machine`` (its ``Machine``), ``params``, ``get_backend_pid()`` and
``mark_broken(reason)``, all plain (not awaitable) in every driver.
"""

from __future__ import annotations

from typing import (
    Any,
    Callable,
    Iterable,
    List,
    Optional,
    Set,
    Tuple,
    Union,
)

from ..errors import DatabaseError, InterfaceError, OperationalError
from ..protocol.events import Bound, Event, QueueItem, Reconnected, _Overflowed, check_bound_options
from ..protocol.messages import Notify
from ..protocol.pending import Pending
from .channels import check_channel, check_payload, notify_statement, quote_ident, text_array
from .fanout import Hub
from .reconnect import ReconnectPolicy
from .requests import (
    Clock,
    Close,
    Exclusive,
    Execute,
    Idle,
    Open,
    Procedure,
    Sleep,
    Wait,
)
from .routing import Routing
from .verifying import VERIFY_TIMEOUT, Verifying

# Items per statement in notify_many (a few hundred kB of parameters).
BATCH_SIZE = 5000
# In array order (WITH ORDINALITY ... ORDER BY), one row back whatever the size.
NOTIFY_MANY_SQL = (
    "SELECT count(*) FROM (SELECT pg_catalog.pg_notify(c, p) "
    "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(c, p, i) ORDER BY i) AS s"
)
PUBSUB_OPTIONS = (
    "reconnect",
    "health_check_interval",
    "health_check_timeout",
    "health_check_channels",
    "max_pending",
    "overflow",
)


def check_options(
    health_check_interval: Optional[float], max_pending: Optional[int], overflow: str
) -> None:
    """Refuse bad client options before anything is connected."""
    if health_check_interval is not None and not health_check_interval > 0:
        raise ValueError(
            f"health_check_interval must be a positive number of seconds, not "
            f"{health_check_interval!r}"
        )
    check_bound_options(max_pending, overflow)


def split_options(kwargs: dict) -> dict:  # type: ignore[type-arg]
    """Take the client's own options out of ``connect()``'s keywords (the rest are libpq's),
    and check them."""
    options = {key: kwargs.pop(key) for key in PUBSUB_OPTIONS if key in kwargs}
    check_options(
        options.get("health_check_interval"),
        options.get("max_pending"),
        options.get("overflow", "raise"),
    )
    return options


class PubSubCore(Verifying, Routing):
    """LISTEN/NOTIFY on one connection: the state and procedures every driver shares.

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
        conn: Any,
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
        self._queue: Pending = conn.machine.notifications
        conn.machine.bound = self._bound
        self._gave_up: Optional[OperationalError] = None
        self._closing = False
        # Fan-out: while subscriptions or callbacks exist, the connection delivers into
        # _inbox and route() hands each notification on (see fanout.py).
        self.hub = Hub()
        self._inbox = self._queue
        self._server: Set[str] = set()  # the channels this session listens on, for us
        # Channels whose LISTEN or UNLISTEN was interrupted (cancelled, say, after the server
        # ran it): whether the server listens on them is unknown.  They count as not listened
        # to, so that a later sync says LISTEN again rather than leave a subscription deaf,
        # and a sync UNLISTENs those nobody wants.
        self._unsure: Set[str] = set()
        self._private: Set[str] = set()  # verify()'s channels, kept for it whatever else

    # -- commands --------------------------------------------------------

    def _execute(
        self, sql: str, params: Optional[List[Optional[str]]] = None
    ) -> Procedure[List[Any]]:
        """SQL on the connection, re-established first if it was lost and reconnection is on."""
        if self._gave_up is not None or self.conn.closed == 2:
            yield from self._connected()
        rows: List[Any] = yield Execute(sql, params)
        return rows

    def _listen(self, channel: str, verify: bool) -> Procedure[None]:
        yield from self._execute("LISTEN " + quote_ident(check_channel(channel)))
        self.channels.add(channel)
        self._server.add(channel)
        if verify:
            yield from self._verify(VERIFY_TIMEOUT)

    def _unlisten(self, channel: Optional[str]) -> Procedure[None]:
        """Stop listening on ``channel`` (None or ``'*'``: every channel), except where a
        subscription or callback still wants it."""
        wanted = self.hub.wanted()
        if channel is None or channel == "*":
            if not wanted:
                self._unsure |= self._server
                self._server.clear()
                yield from self._execute("UNLISTEN *")
                self._unsure.clear()
            else:
                for name in sorted((self._server | self._unsure) - wanted):
                    yield from self._set_listening(name, False)
            self.channels.clear()
            return
        check_channel(channel)
        if channel not in wanted:
            yield from self._set_listening(channel, False)
        self.channels.discard(channel)

    def _notify(self, channel: str, payload: Optional[str]) -> Procedure[None]:
        yield from self._execute(notify_statement(check_channel(channel), check_payload(payload)))

    def _notify_many(self, notifications: Iterable[Tuple[str, Optional[str]]]) -> Procedure[int]:
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
        conn = yield from self._connected()
        starts = range(0, len(channels), BATCH_SIZE)
        own_transaction = len(starts) > 1 and conn.machine.transaction_status == "I"
        try:
            if own_transaction:
                yield Execute("BEGIN")
            for start in starts:
                stop = start + BATCH_SIZE
                arrays = [text_array(channels[start:stop]), text_array(payloads[start:stop])]
                yield Execute(NOTIFY_MANY_SQL, arrays)
            if own_transaction:
                yield Execute("COMMIT")
        except DatabaseError as exc:
            if own_transaction and conn.closed == 0 and conn.machine.transaction_status != "I":
                yield Execute("ROLLBACK")
            message = f"notify_many: none of the {len(channels)} notifications was sent: {exc}"
            raise type(exc)(message, exc.fields) from None
        return len(channels)

    def _queue_usage(self) -> Procedure[float]:
        rows = yield from self._execute("SELECT pg_catalog.pg_notification_queue_usage()")
        return float(rows[0][0])

    # -- receiving -------------------------------------------------------

    def _take(self) -> Optional[Event]:
        item = self._queue.popleft()
        return item if type(item) is Notify else self._marker(item)

    def _marker(self, item: QueueItem) -> Optional[Event]:
        """A marker taken from the queue (``_take``'s part for them): the overflow marker
        raises ``PendingOverflow``."""
        if self._bound is not None:
            return self._bound.take(item)
        return item  # type: ignore[return-value]

    def _take_all(self) -> Optional[List[Event]]:
        """Every event waiting, or None; stops before an overflow marker that is not first,
        so that it raises on the next call, at the point of loss."""
        queue = self._queue
        if self._bound is None:  # no overflow markers: hand over the whole queue at once
            events: List[Event] = queue.take_all()  # type: ignore[assignment]
            return events or None
        events = []
        while queue:
            if events and type(queue[0]) is _Overflowed:
                break
            event = self._take()
            if event is not None:
                events.append(event)
        return events or None

    def _check_usable(self) -> None:
        if self.conn.closed == 1:
            raise InterfaceError("connection already closed")

    def _wait(self, timeout: Optional[float]) -> Procedure[None]:
        """Wait for an event until ``timeout`` (None: no limit, as with select)."""
        self._check_usable()
        deadline = None if timeout is None else (yield Clock()) + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - (yield Clock()))
            yield from self._waited_read(left)
            if self._queue.items or (deadline is not None and (yield Clock()) >= deadline):
                return

    def _waited_read(
        self, timeout: Optional[float], waiting: Optional[Callable[[], bool]] = None,
        more: bool = False,
    ) -> Procedure[None]:
        """One wait for data (at most ``timeout``), with health checks and recovery; with
        ``more``, even while notifications are waiting.  After a loss, what the caller was
        handed before it (``waiting()``: by default, whether the client's queue holds
        anything) is taken before the loss is raised."""
        has_something = waiting or (lambda: bool(self._queue.items))
        yield from self._connected()
        if has_something():  # a reconnection just marked the gap, for one
            return
        interval = self.health_check_interval
        if interval is not None:
            due = interval - (yield Idle())
            if due <= 0:
                yield from self._health_check()
                return
            timeout = due if timeout is None else min(timeout, due)
        try:
            yield Wait(timeout, more)
        except OperationalError as exc:
            if has_something():
                return
            yield from self._recover(exc)

    def _health_check(self) -> Procedure[None]:
        conn = self.conn
        timeout = self.health_check_timeout
        try:
            yield Execute("", timeout=timeout)
            if self.health_check_channels and self._server:
                rows = yield Execute("SELECT pg_catalog.pg_listening_channels()", timeout=timeout)
                missing = self._server - {str(row[0]) for row in rows}
                if missing:
                    raise conn.mark_broken(
                        f"the server no longer listens on {sorted(missing)!r} for this "
                        "session (is a connection pooler in transaction mode in between?)"
                    )
        except OperationalError as exc:
            if conn.closed == 2 and "timeout" in str(exc):
                exc = OperationalError(
                    f"health check: no answer from the server within {timeout:g} s; the "
                    "connection is presumed dead"
                )
            yield from self._recover(exc)

    # -- recovery --------------------------------------------------------

    def _connected(self) -> Procedure[Any]:
        """The connection, re-established first if it was lost and reconnection is on."""
        if self._gave_up is not None:
            raise self._gave_up
        if self.conn.closed == 2 and self.policy is not None:
            yield Exclusive(self._reconnect_if_lost())
        return self.conn

    def _recover(self, error: OperationalError) -> Procedure[None]:
        """A lost connection: raise (the default), or reconnect and mark the gap."""
        if self.policy is None or self.conn.closed != 2:
            raise error
        yield Exclusive(self._reconnect_if_lost())

    def _reconnect_if_lost(self) -> Procedure[None]:
        if self._gave_up is not None:  # another task's attempt gave up meanwhile
            raise self._gave_up
        if self.conn.closed == 2:  # and not re-established by another task meanwhile
            yield from self._reconnect()

    def _reconnect(self) -> Procedure[None]:
        policy = self.policy
        assert policy is not None
        started = yield Clock()
        attempt = 0
        while True:
            attempt += 1
            conn = None
            try:
                conn = yield Open()
                for channel in sorted(self._server):
                    yield Execute("LISTEN " + quote_ident(channel), conn=conn)
                break
            except OperationalError as exc:
                if conn is not None:
                    yield Close(conn)
                if policy.gives_up(attempt, (yield Clock()) - started):
                    self._gave_up = exc
                    raise
                if (yield Sleep(policy.delay(attempt))):
                    raise InterfaceError("connection closed while reconnecting") from None
        if self._closing:  # close() came while the new connection was being made
            yield Close(conn)
            raise InterfaceError("connection closed while reconnecting")
        # The marker goes exactly between what came before the loss and what follows.
        down = (yield Clock()) - started
        marker = Reconnected(down, conn.get_backend_pid(), attempt)
        if self._inbox is self._queue:
            self._queue.append(marker)
            conn.machine.adopt_queue(self._queue, self._bound)
        else:  # routed to every subscription and callback, and to the client's queue
            self._inbox.append(marker)
            conn.machine.adopt_queue(self._inbox, None)
        self.conn = conn
        self.route()

    PUBLIC_NAME = "pgwire_pubsub.PubSub"

    def __repr__(self) -> str:
        return f"<{self.PUBLIC_NAME} channels={sorted(self.channels)!r} conn={self.conn!r}>"
