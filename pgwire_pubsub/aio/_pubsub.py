"""The pgpubsub API for asyncio: ``connect()`` and ``AsyncPubSub``.

Every procedure comes from ``_shared.pubsub``, as for the blocking ``PubSub``;
this module performs their requests with ``AsyncConnection`` and the loop's clock.
Any number of tasks may use one ``AsyncPubSub`` at once: commands are queued,
and tasks that wait for events all wake when they come.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Tuple,
    Union,
)

from .._shared.channels import check_channel
from .._shared.fanout import Feed, Reader
from .._shared.pubsub import PubSubCore, split_options
from .._shared.reconnect import ReconnectPolicy
from .._shared.requests import (
    Clock,
    Close,
    Exclusive,
    Execute,
    Idle,
    Open,
    Procedure,
    Sleep,
    T,
    Wait,
)
from .._shared.verifying import VERIFY_TIMEOUT
from ..conninfo import make_params
from ..errors import InterfaceError
from ..protocol.events import Event, check_bound_options
from ..protocol.messages import Notify
from ._connection import AsyncConnection, wait_on
from ._subscription import Subscription, run_callbacks


class AsyncPubSub(PubSubCore):
    """LISTEN/NOTIFY on one connection for asyncio, with the blocking ``PubSub``'s methods
    as coroutines (see ``PubSubCore`` for the options)."""

    conn: AsyncConnection
    PUBLIC_NAME = "pgwire_pubsub.aio.AsyncPubSub"

    def __init__(
        self,
        conn: AsyncConnection,
        *,
        reconnect: Union[bool, ReconnectPolicy, None] = None,
        health_check_interval: Optional[float] = None,
        health_check_timeout: float = 5.0,
        health_check_channels: bool = False,
        max_pending: Optional[int] = None,
        overflow: str = "raise",
    ) -> None:
        super().__init__(
            conn,
            reconnect=reconnect,
            health_check_interval=health_check_interval,
            health_check_timeout=health_check_timeout,
            health_check_channels=health_check_channels,
            max_pending=max_pending,
            overflow=overflow,
        )
        self._stop = asyncio.Event()
        self._exclusive = asyncio.Lock()
        self._callbacks_task: Optional[asyncio.Task[None]] = None
        # Subscriptions waiting for input (see Subscription.get), woken only when their feed
        # gets something, they close, or the connection is lost or closed.
        self._waiters: Dict[Reader, List[asyncio.Future[None]]] = {}
        self.hub.on_feed = self._wake_feed
        conn.on_input = self._on_input

    # -- commands --------------------------------------------------------

    async def listen(self, channel: str, verify: bool = False) -> None:
        """Subscribe to ``channel`` (an exact name); with ``verify``, also run ``verify()``."""
        await self._drive(self._listen(channel, verify))

    async def unlisten(self, channel: Optional[str] = None) -> None:
        """Unsubscribe from ``channel``; with no channel (or ``'*'``), from every channel."""
        await self._drive(self._unlisten(channel))

    async def notify(self, channel: str, payload: Optional[str] = None) -> None:
        """Send ``payload`` (default empty) on ``channel``, both quoted exactly."""
        await self._drive(self._notify(channel, payload))

    async def notify_many(self, notifications: Iterable[Tuple[str, Optional[str]]]) -> int:
        """Send many ``(channel, payload)`` notifications atomically and in order; returns
        how many were sent (see ``PubSub.notify_many``)."""
        return await self._drive(self._notify_many(notifications))

    async def queue_usage(self) -> float:
        """``pg_notification_queue_usage()``: the fraction of the server's queue in use."""
        return await self._drive(self._queue_usage())

    async def verify(self, timeout: float = VERIFY_TIMEOUT) -> None:
        """Prove that LISTEN works here: a notification to a private channel must come back
        within ``timeout`` seconds, which bound the whole call (``OperationalError``
        otherwise; a server that does not answer in time closes the connection)."""
        await self._drive(self._verify(timeout))

    # -- receiving -------------------------------------------------------

    async def get_event(self, timeout: Optional[float] = 0) -> Optional[Event]:
        """The next event, waiting up to ``timeout`` seconds (None: no limit); None when none
        came in time."""
        self._check_usable()
        if not self._queue.items:
            await self._drive(self._wait(timeout))
        return self._take() if self._queue.items else None

    async def get_events(self, timeout: Optional[float] = 0) -> Optional[List[Event]]:
        """Every event waiting (after up to ``timeout`` seconds for the first), or None."""
        self._check_usable()
        if not self._queue:
            await self._drive(self._wait(timeout))
        return self._take_all()

    async def events(
        self, timeout: Optional[float] = None, yield_timeouts: bool = False
    ) -> AsyncIterator[Optional[Event]]:
        """Events as they arrive (``async for``), until ``close()`` from any task ends the
        loop; with ``timeout`` and ``yield_timeouts``, None after each ``timeout`` seconds
        without one."""
        self._check_usable()
        queue = self._queue
        while True:
            if self.conn.closed == 1:
                return
            if queue.items:  # see PubSub.events
                ready = queue.ready()
                if ready is None:
                    yield self._take()
                    continue
                for event in ready:  # close() ends it: see Pending.halt
                    yield event if type(event) is Notify else self._marker(event)
                continue
            try:
                await self._drive(self._wait(timeout))
            except InterfaceError:
                if self.conn.closed == 1:
                    return
                raise
            if not queue.items and yield_timeouts:
                yield None

    # -- fan-out -----------------------------------------------------------

    def subscribe(self, *channels: str, max_pending: int = 1000,
                  overflow: str = "drop-oldest") -> Subscription:
        """A subscription to ``channels`` with a bound of its own; open it with ``async with``
        (or ``await``).  Every subscription of a channel gets each of its notifications, and
        LISTEN/UNLISTEN follow the first opening and the last closing."""
        for channel in channels:
            check_channel(channel)
        check_bound_options(max_pending, overflow)
        return Subscription(self, channels, max_pending, overflow)

    async def add_listener(self, channel: str, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(event)`` for every notification on ``channel`` (and every marker);
        a coroutine function's result is awaited.  Callbacks run one after another, in
        arrival order, in one task; one that raises is logged and delivery goes on."""
        check_channel(channel)
        self._hub_on()
        self.hub.add_callback(channel, callback)
        try:
            await self._drive(self._sync_listens_exclusively())
        except BaseException:
            self.hub.remove_callback(channel, callback)
            raise
        if self._callbacks_task is None or self._callbacks_task.done():
            self._callbacks_task = asyncio.ensure_future(run_callbacks(self))

    async def remove_listener(self, channel: str, callback: Callable[[Any], Any]) -> None:
        """Stop calling ``callback`` for ``channel`` (UNLISTEN when nothing else wants it)."""
        if self.hub.remove_callback(channel, callback):
            await self._drive(self._sync_listens_exclusively())

    async def _open_reader(self, channels: FrozenSet[str], max_pending: int,
                           overflow: str) -> Reader:
        self._check_usable()
        self._hub_on()
        reader = self.hub.open(channels, max_pending, overflow)
        try:
            await self._drive(self._sync_listens_exclusively())
        except BaseException:
            self.hub.close(reader)
            raise
        return reader

    async def _close_reader(self, reader: Reader) -> None:
        self.hub.close(reader)
        self.conn._wake()  # its waiting task ends
        self._wake_reader(reader)
        if self.conn.closed == 0:
            await self._drive(self._sync_listens_exclusively())

    def _on_input(self) -> None:
        self.route()
        if self.conn.closed:  # the waiting subscriptions see to it (reconnect or raise)
            self._wake_all()

    def _waits_on_feeds(self) -> bool:
        """Whether a subscription may wait for its own feed alone: the connection routes
        every arrival (``_on_input``), and nothing is due that a waiting task must do
        (reconnect, health checks)."""
        return (self.conn.closed == 0 and self._gave_up is None
                and self.health_check_interval is None)

    async def _reader_input(self, reader: Reader, timeout: Optional[float]) -> None:
        """Until ``reader``'s feed gets something, it closes, the connection is lost or
        closed, or ``timeout`` seconds pass: one wake for each subscription that got
        something, rather than for every subscription at every arrival."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        waiters = self._waiters.setdefault(reader, [])
        if len(waiters) > 8:  # those that timed out
            waiters[:] = [w for w in waiters if not w.done()]
        waiters.append(waiter)
        with contextlib.suppress(TimeoutError):
            await wait_on(waiter, None if timeout is None else loop.time() + timeout, loop)

    def _wake_feed(self, feed: Feed) -> None:
        waiting = self._waiters
        if waiting:
            for reader in feed.readers:
                if reader in waiting:
                    self._wake_reader(reader)

    def _wake_reader(self, reader: Reader) -> None:
        for waiter in self._waiters.pop(reader, ()):
            if not waiter.done():
                waiter.set_result(None)

    def _wake_all(self) -> None:
        for reader in list(self._waiters):
            self._wake_reader(reader)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- running the shared procedures ----------------------------------------

    async def _drive(self, procedure: Procedure[T]) -> T:
        """Run ``procedure`` to its end, performing its requests; whatever performing one
        raises (a cancellation too) goes back into it, so its own cleanup runs."""
        value: Any = None
        error: Optional[BaseException] = None
        while True:
            try:
                request = procedure.throw(error) if error is not None else procedure.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = error = None
            try:
                value = await self._perform(request)
            except BaseException as exc:
                error = exc

    async def _perform(self, request: Any) -> Any:
        kind = type(request)
        if kind is Execute:
            conn = request.conn or self.conn
            return await conn.execute(request.sql, request.params, request.timeout)
        if kind is Wait:
            return await self.conn.wait(request.timeout, request.more)
        if kind is Clock:
            return asyncio.get_running_loop().time()
        if kind is Idle:
            return self.conn.idle_seconds
        if kind is Open:
            conn = await AsyncConnection.connect(self.conn.params)
            conn.on_input = self._on_input
            return conn
        if kind is Close:
            return await request.conn.close()
        if kind is Sleep:
            try:
                await asyncio.wait_for(self._stop.wait(), request.seconds)
            except asyncio.TimeoutError:
                return False
            return True
        if kind is Exclusive:
            async with self._exclusive:
                return await self._drive(request.procedure)
        raise TypeError(f"unknown request {request!r}")

    # -- the rest --------------------------------------------------------

    async def close(self) -> None:
        """Close the connection; every task waiting on it (``events()``, ``get_event()``, a
        subscription, a reconnection's pause) wakes at once, and iterations end."""
        self._closing = True
        self._queue.halt()  # an events() loop taking what waits ends at its next step
        self._stop.set()
        for feed in list(self.hub.feeds.values()):
            for reader in list(feed.readers):
                self.hub.close(reader)
        self.hub.callbacks.clear()
        self._wake_all()
        await self.conn.close()

    async def __aenter__(self) -> AsyncPubSub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connect(dsn: Optional[str] = None, **kwargs: Any) -> AsyncPubSub:
    """Connect and return an ``AsyncPubSub``; takes exactly what the blocking
    ``pgwire_pubsub.connect()`` takes, resolved the same way."""
    options = split_options(kwargs)
    params = make_params(dsn, **kwargs)
    return AsyncPubSub(await AsyncConnection.connect(params), **options)
