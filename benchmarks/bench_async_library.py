"""The benchmark suite's machinery for asyncio clients: ``AsyncLibrary`` writes the
workloads of ``bench_library.Library`` once more, as coroutines over a few async
primitives that each library supplies.  Every workload is one ``asyncio.run`` on the
default loop, so that no operation pays for a bridge between blocking and asyncio code.

The libraries are in ``bench_async_peers.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
)

import bench_backlog
from bench_library import (
    CHANNEL,
    SEQ_CHANNEL,
    STALL,
    ConnInfo,
    Library,
    Meter,
    Result,
    Stalled,
    burst_sql,
    check_last,
    latency_stats,
    memory_result,
    memory_start,
    payload,
    warmup_count,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """A workload's coroutine, on a fresh default event loop."""
    return asyncio.run(coro)


async def timed_round_trips(count: int, round_trip: Callable[[], Awaitable[None]]) -> Result:
    """``bench_library.timed_round_trips`` for a coroutine function."""
    clock = time.perf_counter_ns
    for _ in range(warmup_count(count)):
        await round_trip()
    samples: List[int] = []
    meter = Meter()
    for _ in range(count):
        t0 = clock()
        await round_trip()
        samples.append(clock() - t0)
    return meter.result(count, **latency_stats(samples))


async def take_batches(count: int, take: Callable[[], Awaitable[Optional[Sequence[Any]]]],
                       payload_of: Callable[[Any], str]) -> Optional[str]:
    """``bench_library.take_batches`` for a coroutine function."""
    received, last = 0, None
    deadline = time.monotonic() + STALL
    while received < count:
        batch = await take()
        if batch:
            received += len(batch)
            last = payload_of(batch[-1])
            deadline = time.monotonic() + STALL
        elif time.monotonic() > deadline:
            raise Stalled(f"stalled after {received} notifications")
    return last


async def take_each(count: int, events: AsyncIterator[Any]) -> Optional[str]:
    """``bench_library.take_each`` for an async iterator (an async generator, closed
    at the end)."""
    received = 0
    try:
        async for event in events:
            if event is None:
                raise Stalled(f"stalled after {received} notifications")
            received += 1
            if received == count:
                return str(event.payload)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    raise Stalled(f"the loop ended after {received} notifications")


class AsyncLibrary(Library):
    """An asyncio client library: the workloads of ``Library`` as coroutines, over the
    async primitives below (``a`` + the blocking primitive's name)."""

    async def aopen(self, params: Optional[ConnInfo] = None) -> Any:
        raise NotImplementedError

    async def aclose(self, conn: Any) -> None:
        await conn.close()

    async def aexecute(self, conn: Any, sql: str) -> None:
        raise NotImplementedError

    async def alisten(self, conn: Any, channel: str, keep: bool = False) -> None:
        """LISTEN; with ``keep``, a library without a pending queue of its own keeps what
        comes (the memory workload)."""
        raise NotImplementedError

    async def anotify_one(self, conn: Any, channel: str, payload: str) -> None:
        raise NotImplementedError

    async def anotify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        raise NotImplementedError

    async def areceive(self, conn: Any, count: int, way: str = "") -> Optional[str]:
        raise NotImplementedError

    async def areceive_one(self, conn: Any) -> Any:
        raise NotImplementedError

    async def afill_pending(self, conn: Any, count: int) -> Optional[str]:
        raise NotImplementedError

    # -- workloads ---------------------------------------------------------------------

    def connect(self, count: int) -> Result:
        async def connect() -> Result:
            await self.aclose(await self.aopen(self.scram))
            meter = Meter()
            for _ in range(count):
                await self.aclose(await self.aopen(self.scram))
            return meter.result(count)

        return run(connect())

    def notify(self, count: int) -> Result:
        async def notify() -> Result:
            conn = await self.aopen()
            notify_one = self.anotify_one
            payloads = [payload(i) for i in range(count)]
            for p in payloads[: warmup_count(count)]:
                await notify_one(conn, SEQ_CHANNEL, p)
            meter = Meter()
            for p in payloads:
                await notify_one(conn, SEQ_CHANNEL, p)
            result = meter.result(count)
            await self.aclose(conn)
            return result

        return run(notify())

    def notify_many(self, batches: int, size: int) -> Result:
        async def notify_many() -> Result:
            conn = await self.aopen()
            items = [(SEQ_CHANNEL, payload(i)) for i in range(size)]
            await self.anotify_batch(conn, items)
            meter = Meter()
            for _ in range(batches):
                await self.anotify_batch(conn, items)
            result = meter.result(batches * size)
            await self.aclose(conn)
            return result

        return run(notify_many())

    async def _aburst(self, listener: Any, sender: Any, count: int, way: str) -> Result:
        """The sender queues ``count`` notifications in a transaction; the clock starts, a
        task commits (its one round trip counts), and the clock stops when the listener
        has taken the last one."""
        await self.aexecute(sender, "BEGIN")
        await self.aexecute(sender, burst_sql(count))
        meter = Meter()
        commit = asyncio.ensure_future(self.aexecute(sender, "COMMIT"))
        last = await self.areceive(listener, count, way)
        meter.stop()
        await commit
        check_last(last, count)
        return meter.result(count)

    def receive_burst(self, count: int, warmup: int, way: str = "") -> Result:
        async def receive_burst() -> Result:
            listener, sender = await self.aopen(), await self.aopen()
            await self.alisten(listener, CHANNEL)
            await self._aburst(listener, sender, warmup, way)
            result = await self._aburst(listener, sender, count, way)
            await self.aclose(listener)
            await self.aclose(sender)
            return result

        return run(receive_burst())

    def backlog(self, workload: str, count: int, warmup: int, way: str = "") -> Result:
        """One of ``bench_backlog.SHAPES``.  The backlog is made while the loop is held
        (``make`` blocks it), so that the listener reads nothing meanwhile; the clock runs
        while it takes the ``count``."""
        channels, make, check = bench_backlog.SHAPES[workload]

        async def backlog() -> Result:
            listener = await self.aopen()
            for channel in channels:
                await self.alisten(listener, channel)
            make(self.main, warmup)
            check(await self.areceive(listener, warmup, way), warmup)
            make(self.main, count)
            meter = Meter()
            last = await self.areceive(listener, count, way)
            result = meter.result(count)
            check(last, count)
            await self.aclose(listener)
            return result

        return run(backlog())

    def pingpong(self, count: int) -> Result:
        """A notifies B, B answers A, in one loop (both sides' CPU counts)."""
        async def pingpong() -> Result:
            a, b = await self.aopen(), await self.aopen()
            await self.alisten(a, "pong")
            await self.alisten(b, "ping")
            p = payload(0)
            notify_one, receive_one = self.anotify_one, self.areceive_one

            async def round_trip() -> None:
                await notify_one(a, "ping", p)
                await receive_one(b)
                await notify_one(b, "pong", p)
                await receive_one(a)

            result = await timed_round_trips(count, round_trip)
            await self.aclose(a)
            await self.aclose(b)
            return result

        return run(pingpong())

    def memory(self, count: int, method: str, size: int) -> Result:
        async def memory() -> Result:
            listener, sender = await self.aopen(), await self.aopen()
            await self.alisten(listener, CHANNEL, keep=True)
            await self.aexecute(sender, "BEGIN")
            await self.aexecute(sender, burst_sql(count, size))
            base = memory_start(method)
            await self.aexecute(sender, "COMMIT")
            last = await self.afill_pending(listener, count)
            result = memory_result(method, base, count, size)
            check_last(last, count, size)
            await self.aclose(listener)
            await self.aclose(sender)
            return result

        return run(memory())



async def readable(fd: int, timeout: float) -> None:
    """Until ``fd`` is readable or ``timeout`` seconds pass."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(ready, timeout)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)
