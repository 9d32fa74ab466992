"""The benchmark suite's asyncio peers: pgwire_pubsub.aio, asyncpg and psycopg 3's
``AsyncConnection``, each on the default asyncio loop; their workloads are written once,
in ``bench_async_library.AsyncLibrary``.

Each class's docstring says how the library is used and why (the report quotes it).
"""

from __future__ import annotations

import asyncio
import functools
import operator
import time
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from bench_async_library import AsyncLibrary, readable, take_batches, take_each
from bench_libpq_peers import _Conn
from bench_library import STALL, ConnInfo, Stalled, libpq_dsn


class PgwireAio(AsyncLibrary):
    """pgwire_pubsub.aio: ``await pubsub.notify``, ``await pubsub.notify_many``; every
    receive workload both ways, ``await pubsub.get_events()`` (a list of everything
    waiting) and ``async for e in pubsub.events()``; ``await pubsub.get_event()`` for
    ping-pong.  Pending notifications wait in ``pubsub.conn.notifications`` (the
    connection reads whenever the loop runs; the memory workload waits on
    ``conn.wait()`` until all have come)."""

    name = "pgwire_pubsub.aio"
    module = "pgwire_pubsub.aio"
    notify_many_how = "await pubsub.notify_many()"
    ways = ("get_events", "events")
    way_labels: ClassVar[Dict[str, str]] = {"get_events": "await get_events()",
                                            "events": "async for e in events()"}

    async def aopen(self, params: Optional[ConnInfo] = None) -> Any:
        return await self.m.connect(**{"sslmode": "disable", **(params or self.main)})

    async def aexecute(self, conn: Any, sql: str) -> None:
        await conn.conn.execute(sql)

    async def alisten(self, conn: Any, channel: str, keep: bool = False) -> None:
        await conn.listen(channel)

    async def anotify_one(self, conn: Any, channel: str, payload: str) -> None:
        await conn.notify(channel, payload)

    async def anotify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        await conn.notify_many(items)

    async def areceive(self, conn: Any, count: int, way: str = "") -> Optional[str]:
        if way == "events":
            return await take_each(count, conn.events(timeout=STALL, yield_timeouts=True))
        return await take_batches(count, functools.partial(conn.get_events, timeout=STALL),
                                  operator.attrgetter("payload"))

    async def areceive_one(self, conn: Any) -> Any:
        event = await conn.get_event(timeout=STALL)
        if event is None:
            raise Stalled("no notification")
        return event

    async def afill_pending(self, conn: Any, count: int) -> Optional[str]:
        pending = conn.conn.notifications
        deadline = time.monotonic() + STALL
        while len(pending) < count:
            await conn.conn.wait(STALL, more=True)
            if time.monotonic() > deadline:
                raise Stalled(f"{len(pending)} pending")
        return str(pending[-1].payload)


class _Listening:
    """An asyncpg connection and what its ``add_listener`` callback has counted (or, for
    the memory workload, kept)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.received = self.taken = self.wanted = 0
        self.last: Optional[str] = None
        self.done: Optional[asyncio.Future[None]] = None
        self.kept: List[Tuple[int, str, str]] = []

    def count(self, conn: Any, pid: int, channel: str, p: str) -> None:
        self.received += 1
        self.last = p
        if self.received == self.wanted:
            self.done.set_result(None)  # type: ignore[union-attr]

    def keep(self, conn: Any, pid: int, channel: str, p: str) -> None:
        self.kept.append((pid, channel, p))
        self.count(conn, pid, channel, p)

    async def take(self, count: int) -> Optional[str]:
        """Until ``count`` more have come; the last one's payload."""
        self.wanted = self.taken + count
        if self.received < self.wanted:
            self.done = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.done, STALL * 5)
            except asyncio.TimeoutError:
                raise Stalled(f"{self.received - self.taken} of {count} came") from None
        self.taken = self.wanted
        return self.last


class Asyncpg(AsyncLibrary):
    """asyncpg: ``add_listener`` callbacks (they count the notifications and keep the
    last payload; a future wakes the waiting task at the count).  ``notify`` is
    ``conn.execute`` of ``pg_notify($1, $2)``; ``notify_many`` is ``executemany``
    (pipelined, atomic).  asyncpg keeps no pending queue: the memory workload's
    callback keeps ``(pid, channel, payload)`` in a list."""

    name = "asyncpg"
    module = "asyncpg"
    notify_many_how = "executemany(): pipelined"
    SQL = "SELECT pg_notify($1, $2)"

    async def aopen(self, params: Optional[ConnInfo] = None) -> Any:
        p = params or self.main
        keys = {"host": "host", "port": "port", "user": "user", "password": "password",
                "dbname": "database"}
        kwargs = {keys[k]: v for k, v in p.items() if k in keys and v is not None}
        return _Listening(await self.m.connect(ssl=False, **kwargs))

    async def aclose(self, conn: Any) -> None:
        await conn.conn.close()

    async def aexecute(self, conn: Any, sql: str) -> None:
        await conn.conn.execute(sql)

    async def alisten(self, conn: Any, channel: str, keep: bool = False) -> None:
        await conn.conn.add_listener(channel, conn.keep if keep else conn.count)

    async def anotify_one(self, conn: Any, channel: str, payload: str) -> None:
        await conn.conn.execute(self.SQL, channel, payload)

    async def anotify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        await conn.conn.executemany(self.SQL, items)

    async def areceive(self, conn: _Listening, count: int, way: str = "") -> Optional[str]:
        return await conn.take(count)

    async def areceive_one(self, conn: Any) -> Any:
        return await conn.take(1)

    async def afill_pending(self, conn: Any, count: int) -> Optional[str]:
        await conn.take(count)
        return conn.kept[-1][2]  # type: ignore[no-any-return]


class PsycopgAsync(AsyncLibrary):
    """psycopg 3's ``AsyncConnection`` (autocommit), used as the blocking psycopg class
    where it can be: ``notify`` reuses one cursor (prepared after 5 runs);
    ``notify_many`` is ``cursor.executemany``, which pipelines.  Every receive workload
    and ping-pong: ``async for n in conn.notifies(timeout=..., stop_after=...)``, the
    documented asyncio way (a notify handler is called only while a statement or
    ``notifies()`` runs).  Pending notifications wait in the connection's backlog
    deque, read by ``SELECT 1`` when the socket is readable (at most 10 ms apart)."""

    name = "psycopg-async"
    module = "psycopg"
    notify_many_how = "AsyncCursor.executemany(): pipelined"
    SQL = "SELECT pg_notify(%s, %s)"

    @classmethod
    def version(cls) -> str:
        psycopg = cls.load()
        return f"{psycopg.__version__} ({psycopg.pq.__impl__})"

    async def aopen(self, params: Optional[ConnInfo] = None) -> Any:
        connect = self.m.AsyncConnection.connect
        return _Conn(await connect(libpq_dsn(params or self.main), autocommit=True))

    async def aclose(self, conn: Any) -> None:
        await conn.conn.close()

    async def aexecute(self, conn: Any, sql: str) -> None:
        await conn.cur.execute(sql)

    async def alisten(self, conn: Any, channel: str, keep: bool = False) -> None:
        await conn.cur.execute(f"LISTEN {channel}")

    async def anotify_one(self, conn: Any, channel: str, payload: str) -> None:
        await conn.cur.execute(self.SQL, (channel, payload))

    async def anotify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        await conn.cur.executemany(self.SQL, items)

    async def areceive(self, conn: Any, count: int, way: str = "") -> Optional[str]:
        received = 0
        last: Optional[str] = None
        while received < count:
            before = received
            # Run to its end (stop_after), so that it lets go of the connection's lock.
            async for n in conn.conn.notifies(timeout=STALL, stop_after=count - received):
                received += 1
                last = n.payload
            if received == before:
                raise Stalled(f"stalled after {received} notifications")
        return last

    async def areceive_one(self, conn: Any) -> Any:
        return await self.areceive(conn, 1)

    async def afill_pending(self, conn: Any, count: int) -> Optional[str]:
        # Received outside notifies() and without a handler, they wait in the
        # connection's backlog (private; read here only to know when all have come).
        backlog = conn.conn._notifies_backlog
        fd = conn.conn.fileno()
        deadline = time.monotonic() + STALL
        while len(backlog) < count:
            await readable(fd, 0.01)
            await conn.cur.execute("SELECT 1")
            if time.monotonic() > deadline:
                raise Stalled(f"{len(backlog)} pending")
        return str(backlog[-1].payload)
