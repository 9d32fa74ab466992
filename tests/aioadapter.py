"""The asyncio client behind the blocking client's API, so one behavioural suite runs on both.

``AsyncClient(loop_kind).connect(...)`` connects ``pgwire_pubsub.aio`` on an event loop
running in a thread of its own (the default loop, or uvloop), and returns a ``SyncPubSub``:
every method runs the coroutine of the same name on that loop and waits for it.
``select_timeout`` becomes ``timeout`` and ``events()`` iterates the async iterator, so
tests written for ``PubSub`` run unchanged.  ``close()`` may come from any thread, as the
blocking client allows.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, Iterator, List, Optional, TypeVar

import pgwire_pubsub.aio as aio
from pgwire_pubsub import make_params

T = TypeVar("T")

GUARD = 120.0  # seconds: a failure guard only, far above any test's own timeouts


class LoopThread:
    """An event loop running in a daemon thread until ``stop()``."""

    def __init__(self, kind: str = "asyncio") -> None:
        if kind == "uvloop":
            import uvloop

            self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float = GUARD) -> T:
        future = asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        pending = self.run(_pending_tasks())
        for task in pending:
            self.loop.call_soon_threadsafe(task.cancel)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


async def _pending_tasks() -> List[asyncio.Task[Any]]:
    me = asyncio.current_task()
    return [task for task in asyncio.all_tasks() if task is not me]


class SyncConnection:
    """``pubsub.conn`` of the asyncio client, with the blocking ``Connection``'s methods."""

    def __init__(self, runner: LoopThread, conn: aio.AsyncConnection) -> None:
        self._runner = runner
        self.aconn = conn

    def execute(self, sql: str, params: Optional[List[Optional[str]]] = None) -> List[Any]:
        return self._runner.run(self.aconn.execute(sql, params))

    def run_within(self, sql: str, params: Optional[List[Optional[str]]],
                   timeout: Optional[float]) -> List[Any]:
        return self._runner.run(self.aconn.execute(sql, params, timeout))

    def fileno(self) -> int:
        """The event loop's socket of this connection (for socket options only: the loop
        reads it)."""
        transport = self.aconn._transport
        assert transport is not None, "the connection is closed"
        return int(transport.get_extra_info("socket").fileno())

    def poll(self) -> None:
        """Nothing to do: the asyncio client takes in what arrives as it arrives."""

    def cancel(self) -> None:
        self._runner.run(self.aconn.cancel())

    def close(self) -> None:
        self._runner.run(self.aconn.close())

    def __enter__(self) -> SyncConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:  # closed, get_backend_pid, server_version...
        return getattr(self.aconn, name)


class SyncPubSub:
    """An ``AsyncPubSub`` used through ``PubSub``'s blocking methods."""

    def __init__(self, runner: LoopThread, pubsub: aio.AsyncPubSub) -> None:
        self._runner = runner
        self.apubsub = pubsub

    @property
    def conn(self) -> SyncConnection:  # the connection may change on reconnection
        return SyncConnection(self._runner, self.apubsub.conn)

    def __getattr__(self, name: str) -> Any:  # channels, policy, options...
        return getattr(self.apubsub, name)

    def _call(self, name: str) -> Callable[..., Any]:
        method = getattr(self.apubsub, name)
        return lambda *args, **kwargs: self._runner.run(method(*args, **kwargs))

    def listen(self, channel: str, verify: bool = False) -> None:
        self._call("listen")(channel, verify)

    def unlisten(self, channel: Optional[str] = None) -> None:
        self._call("unlisten")(channel)

    def notify(self, channel: str, payload: Optional[str] = None) -> None:
        self._call("notify")(channel, payload)

    def notify_many(self, items: Any) -> int:
        return self._call("notify_many")(items)  # type: ignore[no-any-return]

    def queue_usage(self) -> float:
        return self._call("queue_usage")()  # type: ignore[no-any-return]

    def verify(self, timeout: float = 5.0) -> None:
        self._call("verify")(timeout)

    def get_event(self, select_timeout: Optional[float] = 0) -> Any:
        return self._call("get_event")(select_timeout)

    def get_events(self, select_timeout: Optional[float] = 0) -> Any:
        return self._call("get_events")(select_timeout)

    def events(self, select_timeout: Optional[float] = 5,
               yield_timeouts: bool = False) -> Iterator[Any]:
        iterator = self.apubsub.events(select_timeout, yield_timeouts)
        while True:
            try:
                yield self._runner.run(iterator.__anext__())
            except StopAsyncIteration:
                return

    def subscribe(self, *channels: str, **options: Any) -> SyncSubscription:
        subscription = self.apubsub.subscribe(*channels, **options)
        self._runner.run(subscription.open())
        return SyncSubscription(self._runner, subscription)

    def add_listener(self, channel: str, callback: Callable[[Any], Any]) -> None:
        self._call("add_listener")(channel, callback)

    def remove_listener(self, channel: str, callback: Callable[[Any], Any]) -> None:
        self._call("remove_listener")(channel, callback)

    def close(self) -> None:
        self._runner.run(self.apubsub.close())

    def __enter__(self) -> SyncPubSub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncSubscription:
    """An asyncio ``Subscription`` used through the blocking ``Subscription``'s methods."""

    def __init__(self, runner: LoopThread, subscription: aio.Subscription) -> None:
        self._runner = runner
        self.asubscription = subscription
        self.channels = subscription.channels

    @property
    def closed(self) -> bool:
        return self.asubscription.closed

    def get(self, timeout: Optional[float] = None) -> Any:
        return self._runner.run(self.asubscription.get(timeout))

    def get_events(self, timeout: Optional[float] = 0) -> Any:
        return self._runner.run(self.asubscription.get_events(timeout))

    def __iter__(self) -> Iterator[Any]:
        iterator = self.asubscription.__aiter__()
        while True:
            try:
                yield self._runner.run(iterator.__anext__())
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self._runner.run(self.asubscription.close())

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """Connects asyncio clients on one loop thread; ``stop()`` ends the thread."""

    def __init__(self, kind: str = "asyncio") -> None:
        self.runner = LoopThread(kind)

    def connect(self, *args: Any, **kwargs: Any) -> SyncPubSub:
        return SyncPubSub(self.runner, self.runner.run(aio.connect(*args, **kwargs)))

    def connect_raw(self, dsn: Optional[str] = None, **kwargs: Any) -> SyncConnection:
        async def connect() -> aio.AsyncConnection:
            return await aio.AsyncConnection.connect(make_params(dsn, **kwargs))

        return SyncConnection(self.runner, self.runner.run(connect()))

    def stop(self) -> None:
        self.runner.stop()
