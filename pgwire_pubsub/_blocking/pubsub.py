"""The pgpubsub API for blocking code: ``connect()`` and ``PubSub``.

Every procedure comes from ``_shared.pubsub``; this module runs them with the
blocking ``Connection`` and the clock, and adds what only blocking code has:
``close()`` from any thread or a signal handler, and generator-based ``events()``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple, Union

from .._shared.channels import check_channel, check_payload, quote_ident
from .._shared.fanout import Reader
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
from ..errors import InterfaceError, OperationalError
from ..protocol.events import Event, check_bound_options
from ..protocol.messages import Notify
from .connection import Connection, connect_raw
from .fanout import ReaderThread, Subscription

__all__ = ["PubSub", "connect", "quote_ident"]


class PubSub(PubSubCore):
    """LISTEN/NOTIFY on one connection, with pgpubsub's methods (see ``PubSubCore`` for
    the options).  One thread at a time; ``close()`` from anywhere."""

    conn: Connection

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
        super().__init__(
            conn,
            reconnect=reconnect,
            health_check_interval=health_check_interval,
            health_check_timeout=health_check_timeout,
            health_check_channels=health_check_channels,
            max_pending=max_pending,
            overflow=overflow,
        )
        self._stop = threading.Event()
        # Fan-out (see fanout.py): the reader thread while subscriptions or callbacks exist.
        self._hub_cond = threading.Condition()
        self._hub_lock = threading.Lock()  # opening and closing subscriptions, one at a time
        self._reader_thread: Optional[ReaderThread] = None

    # -- commands --------------------------------------------------------

    def listen(self, channel: str, verify: bool = False) -> None:
        """Subscribe to ``channel`` (an exact name: no case folding, any characters).

        With ``verify``, also run ``verify()`` to prove that notifications come back.
        """
        self._drive(self._listen(channel, verify))

    def unlisten(self, channel: Optional[str] = None) -> None:
        """Unsubscribe from ``channel``; with no channel (or ``'*'``), from every channel."""
        self._drive(self._unlisten(channel))

    def notify(self, channel: str, payload: Optional[str] = None) -> None:
        """Send ``payload`` (default empty) on ``channel``, both quoted exactly."""
        self._drive(self._notify(channel, payload))

    def notify_many(self, notifications: Iterable[Tuple[str, Optional[str]]]) -> int:
        """Send many ``(channel, payload)`` notifications atomically and in order: all are
        delivered, in one transaction, or none.  Far faster than ``notify`` in a loop: one
        statement (two array parameters) per ``BATCH_SIZE`` items.  Every item is checked
        first; a bad one fails the whole batch with an error naming it.  Returns how many
        were sent."""
        return self._drive(self._notify_many(notifications))

    def queue_usage(self) -> float:
        """``pg_notification_queue_usage()``: the fraction of the server's notification
        queue in use (a slow listener anywhere makes it grow)."""
        return self._drive(self._queue_usage())

    def verify(self, timeout: float = VERIFY_TIMEOUT) -> None:
        """Prove that LISTEN works here: a notification to a private channel must come back.

        Raises ``OperationalError`` when it does not within ``timeout`` seconds
        (for example behind a connection pooler in transaction mode), and when the server
        does not answer within them (the connection is then closed).
        Notifications received meanwhile stay queued, in order.
        """
        self._drive(self._verify(timeout))

    # -- receiving -------------------------------------------------------

    def get_event(self, select_timeout: Optional[float] = 0) -> Optional[Event]:
        """The next event, waiting up to ``select_timeout`` seconds (None: no limit)."""
        self._check_usable()
        if not self._queue.items:  # the deque's truth test, in C: this runs per event
            self._wait_here(select_timeout)
        return self._take() if self._queue.items else None

    def get_events(self, select_timeout: Optional[float] = 0) -> Optional[List[Event]]:
        """Every event waiting (after up to ``select_timeout`` seconds), or None."""
        self._check_usable()
        if not self._queue:
            self._wait_here(select_timeout)
        return self._take_all()

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
            if queue.items:
                # Many waiting: made in bulk, each taken with a step of a C iterator that
                # keeps its place in the queue, so that a break leaves the rest there.
                ready = queue.ready()
                if ready is None:
                    yield self._take()
                    continue
                for event in ready:  # close() ends it: see Pending.halt
                    yield event if type(event) is Notify else self._marker(event)
                continue
            try:
                self._wait_here(select_timeout)
            except InterfaceError:
                if self.conn.closed == 1:
                    return
                raise
            if not queue.items and yield_timeouts:
                yield None

    def _wait_here(self, timeout: Optional[float]) -> None:
        """Wait for the client's own queue: by reading (the shared procedure), or, while the
        reader thread reads, until it hands something over."""
        if self._reader_thread is None:
            self._drive(self._wait(timeout))
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._hub_cond:
            while not self._queue.items:
                self._raise_if_stopped()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                self._hub_cond.wait(left)

    # -- fan-out -----------------------------------------------------------

    def subscribe(self, *channels: str, max_pending: int = 1000,
                  overflow: str = "drop-oldest") -> Subscription:
        """A subscription to ``channels``, open at once, with a bound of its own; any thread
        may read it.  Every subscription of a channel gets each of its notifications, and
        LISTEN/UNLISTEN follow the first opening and the last closing.  While subscriptions
        (or callbacks) exist, a background thread reads the connection, and every method of
        this client may be called from any thread."""
        for channel in channels:
            check_channel(channel)
        check_bound_options(max_pending, overflow)
        self._check_usable()
        with self._hub_lock:
            self._start_reader()
            with self._hub_cond:
                reader = self.hub.open(channels, max_pending, overflow)
            self._sync_or_undo(lambda: self.hub.close(reader))
        return Subscription(self, reader)

    def add_listener(self, channel: str, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(event)`` for every notification on ``channel`` (and every marker),
        on the reader thread, one after another in arrival order; one that raises is logged
        and delivery goes on."""
        check_channel(channel)
        self._check_usable()
        with self._hub_lock:
            self._start_reader()
            with self._hub_cond:
                self.hub.add_callback(channel, callback)
            self._sync_or_undo(lambda: self.hub.remove_callback(channel, callback))

    def remove_listener(self, channel: str, callback: Callable[[Any], Any]) -> None:
        """Stop calling ``callback`` for ``channel`` (UNLISTEN when nothing else wants it)."""
        with self._hub_lock:
            with self._hub_cond:
                removed = self.hub.remove_callback(channel, callback)
            if removed:
                self._settle()

    def _close_reader(self, reader: Reader) -> None:
        with self._hub_lock:
            with self._hub_cond:
                if reader.closed:
                    return
                self.hub.close(reader)
                self._hub_cond.notify_all()
            self._settle()

    def _start_reader(self) -> None:
        if self._reader_thread is None:
            self._hub_on()
            self._reader_thread = ReaderThread(self, self._hub_cond)
            self._reader_thread.start()

    def _sync_or_undo(self, undo: Callable[[], object]) -> None:
        try:
            self._drive(self._sync_listens())
        except BaseException:
            with self._hub_cond:
                undo()
            self._settle()
            raise

    def _settle(self) -> None:
        """After a closing: UNLISTEN what nobody wants; stop the reader thread when nothing
        is left to fan out."""
        if self.conn.closed == 0 and self._reader_thread is not None:
            with contextlib.suppress(OperationalError, InterfaceError):
                self._drive(self._sync_listens())
        if not self.hub.active and self._reader_thread is not None:
            self._reader_thread.stop()
            self._reader_thread = None
            self._hub_off()

    def _raise_if_stopped(self) -> None:
        """In a wait on the reader thread: raise why it stopped, if it did."""
        thread = self._reader_thread
        if self.conn.closed == 1 or self._closing:
            raise InterfaceError("connection already closed")
        if thread is not None and thread.error is not None:
            error = thread.error
            raise error if isinstance(error, Exception) else InterfaceError(str(error))

    # -- running the shared procedures ----------------------------------------

    def _drive(self, procedure: Procedure[T]) -> T:
        """Run ``procedure``: here, or on the reader thread while there is one."""
        thread = self._reader_thread
        if thread is not None and not thread.here:
            return thread.run(procedure)
        return self._drive_here(procedure)

    def _drive_here(self, procedure: Procedure[T]) -> T:
        """Run ``procedure`` to its end, performing its requests; whatever performing one
        raises (an interrupt too) goes back into it, so its own cleanup runs."""
        value: Any = None
        error: Optional[BaseException] = None
        while True:
            try:
                request = procedure.throw(error) if error is not None else procedure.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = error = None
            try:
                value = self._perform(request)
            except BaseException as exc:
                error = exc

    def _perform(self, request: Any) -> Any:
        kind = type(request)
        if kind is Execute:
            conn = request.conn or self.conn
            if request.timeout is None:
                rows = conn.execute(request.sql, request.params)
            else:
                rows = conn.run_within(request.sql, request.params, request.timeout)
            self._hand_on()
            return rows
        if kind is Wait:
            self.conn.wait(request.timeout, request.more)
            self._hand_on()
            return None
        if kind is Clock:
            return time.monotonic()
        if kind is Idle:
            return self.conn.idle_seconds
        if kind is Open:
            conn = Connection(self.conn.params)
            conn.owner = self._reader_thread
            return conn
        if kind is Close:
            return request.conn.close()
        if kind is Sleep:
            return self._stop.wait(request.seconds)
        if kind is Exclusive:  # one thread at a time already
            return self._drive_here(request.procedure)
        raise TypeError(f"unknown request {request!r}")

    def _hand_on(self) -> None:
        """While fanning out, route what a command or a wait took in at once, as the asyncio
        client does on every input: verify() looks for its notification in the client's
        queue."""
        thread = self._reader_thread
        if thread is not None:
            thread.hand_on()

    # -- the rest --------------------------------------------------------

    def close(self) -> None:
        """Close the connection; safe from another thread or a signal handler, where it
        wakes a thread blocked in ``events()`` (which then ends)."""
        self._closing = True
        self._queue.halt()  # an events() loop taking what waits ends at its next step
        self._stop.set()
        thread = self._reader_thread
        if thread is not None:
            with self._hub_cond:
                for feed in list(self.hub.feeds.values()):
                    for reader in list(feed.readers):
                        self.hub.close(reader)
                self.hub.callbacks.clear()
                thread.stopping = True
                self._hub_cond.notify_all()
        self.conn.close()
        if thread is not None and not thread.here:
            thread.thread.join()

    def __enter__(self) -> PubSub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(dsn: Optional[str] = None, **kwargs: Any) -> PubSub:
    """Connect and return a ``PubSub``; takes what ``psycopg2.connect()`` takes, plus the
    PubSub options (``reconnect``, ``health_check_interval``, ``max_pending``...)."""
    options = split_options(kwargs)
    return PubSub(Connection(make_params(dsn, **kwargs)), **options)


# Kept importable from here for existing code.
__all__ += ["check_channel", "check_payload", "connect_raw"]
