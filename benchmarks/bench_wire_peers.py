"""The benchmark suite's blocking peers that speak the wire protocol themselves, without
libpq: pgwire_pubsub and pg8000 (pure Python too).  asyncpg, the asyncio one, is in
``bench_async_peers.py``.

Each class's docstring says how the library is used and why (the report quotes it).
"""

from __future__ import annotations

import operator
import select
import time
from collections import deque
from typing import Any, Dict, List, Optional, Tuple

from bench_library import (
    STALL,
    ConnInfo,
    Library,
    PubSubApi,
    Stalled,
    fill,
    take_batches,
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

