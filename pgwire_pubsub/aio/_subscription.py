"""Subscriptions and callbacks for the asyncio client (the fan-out logic is ``_shared.fanout``).

Everything happens on the loop: the connection routes what arrives the moment it
arrives (``AsyncPubSub._on_input``), so a subscription that waits is woken by it,
and one that never reads only holds its bound.  Callbacks run in one task, one after
another, in arrival order.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Generator, List, Optional, Tuple

from .._shared.fanout import Reader
from ..errors import InterfaceError
from ..protocol.events import Event

if TYPE_CHECKING:
    from ._pubsub import AsyncPubSub

logger = logging.getLogger("pgwire_pubsub")


class Subscription:
    """Events of some channels, for one consumer, with a bound of its own.

    ``async with pubsub.subscribe("orders") as sub:`` (or ``sub = await
    pubsub.subscribe(...)`` and later ``await sub.close()``); then ``async for event in
    sub`` or ``await sub.get(timeout)``.
    """

    def __init__(self, pubsub: AsyncPubSub, channels: Tuple[str, ...], max_pending: int,
                 overflow: str) -> None:
        self._pubsub = pubsub
        self.channels = frozenset(channels)
        self._options = (max_pending, overflow)
        self._reader: Optional[Reader] = None

    async def open(self) -> Subscription:
        """Start receiving (LISTEN for channels nobody listened on yet)."""
        if self._reader is None:
            self._reader = await self._pubsub._open_reader(self.channels, *self._options)
        return self

    def __await__(self) -> Generator[Any, None, Subscription]:
        return self.open().__await__()

    async def __aenter__(self) -> Subscription:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop receiving (UNLISTEN for channels nobody else wants); ends the iteration."""
        reader = self._reader
        if reader is not None and not reader.closed:
            await self._pubsub._close_reader(reader)

    @property
    def closed(self) -> bool:
        return self._reader is None or self._reader.closed

    def _opened(self) -> Reader:
        if self._reader is None:
            raise InterfaceError("the subscription is not open: use 'async with "
                                 "pubsub.subscribe(...)' or 'await pubsub.subscribe(...)'")
        return self._reader

    async def get(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting up to ``timeout`` seconds (None: no limit); None when
        none came in time, or once the subscription is closed."""
        reader = self._opened()
        pubsub = self._pubsub
        deadline = None if timeout is None else pubsub._now() + timeout
        while not reader.waiting:
            if reader.closed:
                return None
            left = None if deadline is None else deadline - pubsub._now()
            if left is not None and left <= 0:
                return None
            try:
                if pubsub._waits_on_feeds():
                    await pubsub._reader_input(reader, left)
                else:
                    await pubsub._drive(pubsub._waited_read(left, lambda: reader.waiting))
            except InterfaceError:
                if not reader.closed:
                    raise  # else the client was closed meanwhile: this ends the subscription
        return reader.next_event()

    async def get_events(self, timeout: Optional[float] = 0) -> Optional[List[Event]]:
        """Every event waiting (after up to ``timeout`` seconds for the first), or None."""
        reader = self._opened()
        if not reader.waiting:
            first = await self.get(timeout)
            if first is None:
                return None
            return [first, *(reader.take_events() or ())]
        return reader.take_events()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        reader = self._opened()
        while True:
            event = reader.next_event() if reader.waiting else await self.get()
            if event is None:
                return
            yield event

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<pgwire_pubsub.aio.Subscription {state} {sorted(self.channels)!r}>"


async def run_callbacks(pubsub: AsyncPubSub) -> None:
    """The one task that calls the callbacks, in arrival order, until none is left; it also
    keeps the connection checked and re-established, as any waiting task does."""
    hub = pubsub.hub
    while hub.callbacks:
        for callback, event in hub.take_calls():
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("a notification callback raised; delivery goes on")
        if hub.callbacks and not hub.calls:
            await pubsub._drive(pubsub._waited_read(None, lambda: bool(hub.calls)))
