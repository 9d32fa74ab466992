"""Subscriptions and callbacks for the blocking client (the fan-out logic is
``_shared.fanout``).

Fan-out needs a reader that runs while subscribers wait, so while a subscription or
callback exists, one background thread (``Reader thread``) owns the connection: it
waits for input, routes it, runs the callbacks, and runs every command any other thread
asks for (``run``), one at a time.  It starts with the first subscription or callback
and stops after the last one.  All the hub's state is guarded by one condition, on
which waiting threads sleep.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Iterator, List, Optional, Tuple

from .._shared.fanout import Reader
from .._shared.requests import Procedure, T
from ..errors import InterfaceError
from ..protocol.events import Event

if TYPE_CHECKING:
    from .pubsub import PubSub

logger = logging.getLogger("pgwire_pubsub")


class ReaderThread:
    """The thread that owns a ``PubSub``'s connection while it fans out."""

    def __init__(self, pubsub: PubSub, cond: threading.Condition) -> None:
        self.pubsub = pubsub
        self.cond = cond
        self.jobs: Deque[Tuple[Procedure[Any], concurrent.futures.Future[Any]]] = deque()
        self.stopping = False
        self.error: Optional[BaseException] = None  # why it stopped, if not asked to
        self.thread = threading.Thread(target=self._loop, name="pgwire_pubsub reader",
                                       daemon=True)

    def start(self) -> None:
        self.pubsub.conn.owner = self
        self.thread.start()

    @property
    def here(self) -> bool:
        return threading.current_thread() is self.thread

    def run(self, procedure: Procedure[T]) -> T:
        """Run ``procedure`` on the reader thread and wait for its result."""
        if self.here:
            return self.pubsub._drive_here(procedure)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self.cond:
            if self.error is not None or self.stopping:
                procedure.close()
                raise self.error or InterfaceError("connection already closed")
            self.jobs.append((procedure, future))
        self.pubsub.conn.nudge()
        return future.result()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
        self.pubsub.conn.nudge()
        if not self.here:
            self.thread.join()
        self.pubsub.conn.owner = None

    def _loop(self) -> None:
        pubsub = self.pubsub
        try:
            while not self.stopping:
                self._run_jobs()
                if self.stopping:
                    break
                pubsub._drive_here(pubsub._waited_read(None, lambda: False))
                self._deliver()
        except BaseException as exc:  # lost for good, or closed: the waiting threads say so
            with self.cond:
                self.error = exc
        finally:
            with self.cond:
                jobs, self.jobs = list(self.jobs), deque()
                self.cond.notify_all()
            for procedure, future in jobs:
                procedure.close()
                future.set_exception(self.error or InterfaceError("connection already closed"))

    def _run_jobs(self) -> None:
        while True:
            with self.cond:
                if not self.jobs:
                    return
                procedure, future = self.jobs.popleft()
            try:
                future.set_result(self.pubsub._drive_here(procedure))
            except BaseException as exc:
                future.set_exception(exc)
            self._deliver()

    def hand_on(self) -> None:
        """Route what arrived and wake the waiting threads (the callbacks wait for the next
        ``_deliver``)."""
        with self.cond:
            self.pubsub.route()
            self.cond.notify_all()

    def _deliver(self) -> None:
        """Route what arrived, wake the waiting threads, and run the callbacks."""
        pubsub = self.pubsub
        with self.cond:
            pubsub.route()
            calls = pubsub.hub.take_calls()
            self.cond.notify_all()
        for callback, event in calls:
            try:
                callback(event)
            except Exception:
                logger.exception("a notification callback raised; delivery goes on")


class Subscription:
    """Events of some channels, for any thread, with a bound of its own.

    ``with pubsub.subscribe("orders") as sub: for event in sub: ...``; ``sub.get(timeout)``
    waits for one.  Leaving the ``with`` (or ``close()``) ends it.
    """

    def __init__(self, pubsub: PubSub, reader: Reader) -> None:
        self._pubsub = pubsub
        self._reader = reader
        self.channels = reader.feed.channels

    @property
    def closed(self) -> bool:
        return self._reader.closed

    def get(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting up to ``timeout`` seconds (None: no limit); None when
        none came in time, or once the subscription is closed.  If the connection is lost
        for good, what came before is handed over first, then the loss raises."""
        reader = self._reader
        cond = self._pubsub._hub_cond
        deadline = None if timeout is None else time.monotonic() + timeout
        with cond:
            while not reader.waiting:
                if reader.closed:
                    return None
                self._pubsub._raise_if_stopped()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                cond.wait(left)
            return reader.next_event()

    def get_events(self, timeout: Optional[float] = 0) -> Optional[List[Event]]:
        """Every event waiting (after up to ``timeout`` seconds for the first), or None."""
        reader = self._reader
        with self._pubsub._hub_cond:
            if reader.waiting:
                return reader.take_events()
        first = self.get(timeout)
        if first is None:
            return None
        with self._pubsub._hub_cond:
            return [first, *(reader.take_events() or ())]

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self.get()
            if event is None:
                return
            yield event

    def close(self) -> None:
        """Stop receiving (UNLISTEN for channels nobody else wants); ends the iteration."""
        self._pubsub._close_reader(self._reader)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<pgwire_pubsub.Subscription {state} {sorted(self.channels)!r}>"
