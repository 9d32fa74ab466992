"""The benchmark suite's peers that speak the wire protocol themselves, without libpq:
pgwire_pubsub, pg8000 (pure Python too) and asyncpg (asyncio).

Each class's docstring says how the library is used and why (the report quotes it).
"""

from __future__ import annotations

import asyncio
import operator
import select
import time
from collections import deque
from typing import Any, Dict, List, Optional, Tuple

import bench_backlog
from bench_library import (
    CHANNEL,
    SEQ_CHANNEL,
    STALL,
    ConnInfo,
    Library,
    Meter,
    PubSubApi,
    Result,
    Stalled,
    burst_sql,
    check_last,
    fill,
    latency_stats,
    memory_result,
    memory_start,
    payload,
    take_batches,
    warmup_count,
)


class Pgwire(PubSubApi):
    """pgwire_pubsub: ``notify``, ``notify_many``; every receive workload both ways,
    ``get_events`` (a list of everything waiting) and ``for e in pubsub.events()``
    (pgpubsub's documented loop); ``get_event`` for ping-pong.  Pending notifications
    wait in ``conn.notifications``; ``conn.ping()`` (an empty query) reads without
    taking."""

    name = "pgwire_pubsub"
    module = "pgwire_pubsub"
    notify_many_how = "pubsub.notify_many()"
    ways = ("get_events", "events")

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        return self.m.connect(**{"sslmode": "disable", **(params or self.main)})

    def execute(self, conn: Any, sql: str) -> None:
        conn.conn.execute(sql)

    def notify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        conn.notify_many(items)

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        pending = conn.conn.notifications
        fill(pending, count, conn.conn.ping)
        return str(pending[-1].payload)


class Pg8000(Library):
    """pg8000's native API.  It reads notifications only while it runs a statement, into
    ``con.notifications`` (a deque limited to 100, replaced here by an unbounded one
    so that none is lost).  The listener waits for its socket to be readable (at most
    10 ms, as the reader may buffer the tail), runs ``SELECT 1`` and takes the whole
    deque.  It has no batch statement API."""

    name = "pg8000"
    module = "pg8000.native"
    SQL = "SELECT pg_notify(:c, :p)"

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        p = dict(params or self.main)
        kwargs: Dict[str, Any] = {"user": p["user"]}
        host = str(p.get("host", "localhost"))
        port = int(p.get("port", 5432))
        if host.startswith("/"):
            kwargs["unix_sock"] = f"{host}/.s.PGSQL.{port}"
        else:
            kwargs.update(host=host, port=port)
        if p.get("password") is not None:
            kwargs["password"] = p["password"]
        if p.get("dbname") is not None:
            kwargs["database"] = p["dbname"]
        conn = self.m.Connection(**kwargs)
        conn.notifications = deque()
        return conn

    def execute(self, conn: Any, sql: str) -> None:
        conn.run(sql)

    def notify_one(self, conn: Any, channel: str, payload: str) -> None:
        conn.run(self.SQL, c=channel, p=payload)

    @staticmethod
    def _collect(conn: Any) -> Any:
        """Wait (at most 10 ms) for data, run a statement, take what it brought in."""
        select.select([conn._usock], [], [], 0.01)
        conn.run("SELECT 1")
        batch = conn.notifications
        if batch:
            conn.notifications = deque()
        return batch

    def receive(self, conn: Any, count: int, way: str = "") -> Optional[str]:
        return take_batches(count, lambda: self._collect(conn), operator.itemgetter(2))

    def receive_one(self, conn: Any) -> Any:
        deadline = time.monotonic() + STALL
        while True:
            batch = self._collect(conn)
            if batch:
                return batch.popleft()
            if time.monotonic() > deadline:
                raise Stalled("no notification")

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        def read() -> None:
            select.select([conn._usock], [], [], 0.01)
            conn.run("SELECT 1")

        fill(conn.notifications, count, read)
        return str(conn.notifications[-1][2])


class Asyncpg(Library):
    """asyncpg on the default asyncio loop: ``add_listener`` callbacks.  ``notify_many``
    is ``executemany`` (pipelined, atomic).  asyncpg keeps no pending queue: the
    memory workload's callback keeps ``(pid, channel, payload)`` in a list."""

    name = "asyncpg"
    module = "asyncpg"
    notify_many_how = "executemany(): pipelined"
    SQL = "SELECT pg_notify($1, $2)"

    async def _connect(self, params: Optional[ConnInfo] = None) -> Any:
        p = params or self.main
        keys = {"host": "host", "port": "port", "user": "user", "password": "password",
                "dbname": "database"}
        kwargs = {keys[k]: v for k, v in p.items() if k in keys and v is not None}
        return await self.m.connect(ssl=False, **kwargs)

    def connect(self, count: int) -> Result:
        async def run() -> Result:
            await (await self._connect(self.scram)).close()
            meter = Meter()
            for _ in range(count):
                await (await self._connect(self.scram)).close()
            return meter.result(count)

        return asyncio.run(run())

    def notify(self, count: int) -> Result:
        async def run() -> Result:
            conn = await self._connect()
            payloads = [payload(i) for i in range(count)]
            for p in payloads[: warmup_count(count)]:
                await conn.execute(self.SQL, SEQ_CHANNEL, p)
            meter = Meter()
            for p in payloads:
                await conn.execute(self.SQL, SEQ_CHANNEL, p)
            result = meter.result(count)
            await conn.close()
            return result

        return asyncio.run(run())

    def notify_many(self, batches: int, size: int) -> Result:
        async def run() -> Result:
            conn = await self._connect()
            items = [(SEQ_CHANNEL, payload(i)) for i in range(size)]
            await conn.executemany(self.SQL, items)
            meter = Meter()
            for _ in range(batches):
                await conn.executemany(self.SQL, items)
            result = meter.result(batches * size)
            await conn.close()
            return result

        return asyncio.run(run())

    async def _async_burst(self, sender: Any, state: Dict[str, Any], count: int) -> Meter:
        loop = asyncio.get_running_loop()
        state.update(received=0, target=count, done=loop.create_future(), last=None)
        await sender.execute("BEGIN")
        await sender.fetchval(burst_sql(count))
        meter = Meter()
        commit = asyncio.ensure_future(sender.execute("COMMIT"))
        await asyncio.wait_for(state["done"], STALL * 5)
        meter.stop()
        await commit
        check_last(state["last"], count)
        return meter

    def receive_burst(self, count: int, warmup: int, way: str = "") -> Result:
        async def run() -> Result:
            listener, sender = await self._connect(), await self._connect()
            state: Dict[str, Any] = {}

            def on_notify(conn: Any, pid: int, channel: str, p: str) -> None:
                state["received"] += 1
                state["last"] = p
                if state["received"] == state["target"]:
                    state["done"].set_result(None)

            await listener.add_listener(CHANNEL, on_notify)
            await self._async_burst(sender, state, warmup)
            meter = await self._async_burst(sender, state, count)
            await listener.close()
            await sender.close()
            return meter.result(count)

        return asyncio.run(run())

    def backlog(self, workload: str, count: int, warmup: int, way: str = "") -> Result:
        """The backlog is made while the loop is held (``make`` blocks it), so that the
        listener reads nothing meanwhile; the clock runs while the callbacks take it."""
        channels, make, check = bench_backlog.SHAPES[workload]

        async def run() -> Result:
            listener = await self._connect()
            loop = asyncio.get_running_loop()
            state: Dict[str, Any] = {}

            def on_notify(conn: Any, pid: int, channel: str, p: str) -> None:
                state["received"] += 1
                if state["received"] == state["target"]:
                    state["last"] = p
                    state["done"].set_result(None)

            for channel in channels:
                await listener.add_listener(channel, on_notify)
            meter = Meter()
            for n in (warmup, count):
                make(self.main, n)
                state.update(received=0, target=n, done=loop.create_future(), last=None)
                meter = Meter()
                await asyncio.wait_for(state["done"], STALL * 5)
                meter.stop()
                check(state["last"], n)
            await listener.close()
            return meter.result(count)

        return asyncio.run(run())

    def pingpong(self, count: int) -> Result:
        async def run() -> Result:
            a, b = await self._connect(), await self._connect()
            loop = asyncio.get_running_loop()
            waiting: Dict[str, Any] = {}

            def on_notify(conn: Any, pid: int, channel: str, p: str) -> None:
                waiting.pop(channel).set_result(p)

            await a.add_listener("pong", on_notify)
            await b.add_listener("ping", on_notify)
            p = payload(0)
            samples: List[int] = []
            clock = time.perf_counter_ns
            meter = None
            for i in range(-warmup_count(count), count):
                if i == 0:
                    meter = Meter()
                t0 = clock()
                waiting["ping"] = ping = loop.create_future()
                await a.execute(self.SQL, "ping", p)
                await asyncio.wait_for(ping, STALL)
                waiting["pong"] = pong = loop.create_future()
                await b.execute(self.SQL, "pong", p)
                await asyncio.wait_for(pong, STALL)
                if i >= 0:
                    samples.append(clock() - t0)
            assert meter is not None
            result = meter.result(count, **latency_stats(samples))
            await a.close()
            await b.close()
            return result

        return asyncio.run(run())

    def memory(self, count: int, method: str, size: int) -> Result:
        async def run() -> Result:
            listener, sender = await self._connect(), await self._connect()
            loop = asyncio.get_running_loop()
            pending: List[Tuple[int, str, str]] = []
            done = loop.create_future()

            def on_notify(conn: Any, pid: int, channel: str, p: str) -> None:
                pending.append((pid, channel, p))
                if len(pending) == count:
                    done.set_result(None)

            await listener.add_listener(CHANNEL, on_notify)
            await sender.execute("BEGIN")
            await sender.fetchval(burst_sql(count, size))
            base = memory_start(method)
            await sender.execute("COMMIT")
            await asyncio.wait_for(done, STALL)
            result = memory_result(method, base, count, size)
            check_last(pending[-1][2], count, size)
            await listener.close()
            await sender.close()
            return result

        return asyncio.run(run())
