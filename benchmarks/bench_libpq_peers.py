"""The benchmark suite's peers on libpq: psycopg2, pgpubsub 0.0.5 (on psycopg2, or its
code path emulated when it is not installed) and psycopg 3.

Each class's docstring says how the library is used and why (the report quotes it).
"""

from __future__ import annotations

import select
import time
from typing import Any, Dict, List, Optional, Tuple

from bench_library import (
    STALL,
    ConnInfo,
    Library,
    PubSubApi,
    Stalled,
    fill,
    libpq_dsn,
)


def fill_psycopg2_notifies(conn: Any, count: int) -> Optional[str]:
    """select and ``poll()`` until psycopg2's ``conn.notifies`` holds ``count``."""
    while len(conn.notifies) < count:
        if not select.select([conn], [], [], STALL)[0]:
            raise Stalled(f"{len(conn.notifies)} pending")
        conn.poll()
    return str(conn.notifies[-1].payload)


class _Conn:
    """A connection and the one cursor it reuses."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cur = conn.cursor()

    def close(self) -> None:
        self.conn.close()


class _OneCursor(Library):
    """psycopg2 and psycopg 3: a ``_Conn`` whose cursor runs every statement and
    notification."""

    SQL = "SELECT pg_notify(%s, %s)"

    def execute(self, conn: Any, sql: str) -> None:
        conn.cur.execute(sql)

    def notify_one(self, conn: Any, channel: str, payload: str) -> None:
        conn.cur.execute(self.SQL, (channel, payload))


class Psycopg2(_OneCursor):
    """psycopg2: ``select`` on the connection, ``conn.poll()``, then the whole
    ``conn.notifies`` list is taken by swapping in an empty one (the attribute is
    writable since 2.7), the fastest documented way.  ``notify`` reuses one cursor;
    ``notify_many`` is ``psycopg2.extras.execute_batch`` with ``page_size=1000``: one
    round trip a batch (in autocommit, one implicit transaction, so atomic like
    ``notify_many``)."""

    name = "psycopg2"
    module = "psycopg2"
    notify_many_how = "extras.execute_batch(page_size=1000): one round trip per 1,000"

    def __init__(self, conninfo: ConnInfo) -> None:
        super().__init__(conninfo)
        import psycopg2.extras

        self.extras = psycopg2.extras

    @classmethod
    def version(cls) -> str:
        return super().version().split()[0]

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        conn = self.m.connect(libpq_dsn(params or self.main))
        conn.autocommit = True
        return _Conn(conn)

    def notify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        self.extras.execute_batch(conn.cur, self.SQL, items, page_size=1000)

    def receive(self, conn: Any, count: int, way: str = "") -> Optional[str]:
        c = conn.conn
        received, last = 0, None
        while received < count:
            if not select.select([c], [], [], STALL)[0]:
                raise Stalled(f"stalled after {received} notifications")
            c.poll()
            if c.notifies:
                batch, c.notifies = c.notifies, []
                received += len(batch)
                last = batch[-1].payload
        return last

    def receive_one(self, conn: Any) -> Any:
        c = conn.conn
        while not c.notifies:
            if not select.select([c], [], [], STALL)[0]:
                raise Stalled("no notification")
            c.poll()
        return c.notifies.pop()

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        return fill_psycopg2_notifies(conn.conn, count)


class _PgpubsubEmulation:
    """pgpubsub 0.0.5's code path, for when the package is not installed: the same
    psycopg2 calls in the same order (``connect`` sets autocommit; ``notify`` opens a
    cursor per call; ``get_event``/``get_events`` select, poll, then ``pop(0)``)."""

    __version__ = "0.0.5 (emulated)"

    class PubSub:
        def __init__(self, conn: Any) -> None:
            self.conn = conn

        def listen(self, channel: str) -> None:
            with self.conn.cursor() as cur:
                cur.execute(f"LISTEN {channel};")

        def notify(self, channel: str, payload: str) -> None:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_notify(%s, %s);", (channel, payload))

        def get_event(self, select_timeout: float = 0) -> Any:
            select.select([self.conn], [], [], select_timeout)
            self.conn.poll()
            if self.conn.notifies:
                return self.conn.notifies.pop(0)
            return None

        def get_events(self, select_timeout: float = 0) -> Optional[List[Any]]:
            select.select([self.conn], [], [], select_timeout)
            self.conn.poll()
            events = []
            while self.conn.notifies:
                events.append(self.conn.notifies.pop(0))
            return events or None

        def close(self) -> None:
            self.conn.close()

    @classmethod
    def connect(cls, *args: Any, **kwargs: Any) -> Any:
        import psycopg2

        conn = psycopg2.connect(*args, **kwargs)
        conn.autocommit = True
        return cls.PubSub(conn)


class Pgpubsub(PubSubApi):
    """pgpubsub 0.0.5 (on psycopg2) through its own API: ``get_events`` for the burst
    (its batch call), ``get_event`` for ping-pong; pending notifications wait in
    psycopg2's ``conn.notifies``.  It has no batch notify.  When the package is not
    installed, its code path is emulated (see ``_PgpubsubEmulation``)."""

    name = "pgpubsub"
    module = "pgpubsub"

    @classmethod
    def load(cls) -> Any:
        try:
            return super().load()
        except ImportError:
            import psycopg2  # noqa: F401  (the emulation needs it)

            return _PgpubsubEmulation

    @classmethod
    def version(cls) -> str:
        m = cls.load()
        if m is _PgpubsubEmulation:
            return str(m.__version__)
        from importlib.metadata import version

        return version("pgpubsub")

    @classmethod
    def imported_module(cls) -> str:
        return "psycopg2" if cls.load() is _PgpubsubEmulation else cls.module

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        return self.m.connect(libpq_dsn(params or self.main))

    def execute(self, conn: Any, sql: str) -> None:
        with conn.conn.cursor() as cur:
            cur.execute(sql)

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        return fill_psycopg2_notifies(conn.conn, count)


class Psycopg3(_OneCursor):
    """psycopg 3, each way where it is fastest.  Burst: an ``add_notify_handler``
    callback, driven as documented by running a statement (``SELECT 1``) when the socket
    is readable (at most 10 ms apart, as libpq may hold the tail); measured about 20 %
    less CPU than the ``conn.notifies()`` generator.  Ping-pong: ``conn.notifies()``
    (the callback would cost one more round trip per message).  ``notify`` reuses one
    cursor (prepared after 5 runs); ``notify_many`` is ``cursor.executemany``, which
    pipelines.  Pending notifications wait in the connection's backlog deque."""

    name = "psycopg"
    module = "psycopg"
    notify_many_how = "cursor.executemany(): pipelined"

    @classmethod
    def version(cls) -> str:
        psycopg = cls.load()
        return f"{psycopg.__version__} ({psycopg.pq.__impl__})"

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        return _Conn(self.m.connect(libpq_dsn(params or self.main), autocommit=True))

    def notify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        conn.cur.executemany(self.SQL, items)

    def receive(self, conn: Any, count: int, way: str = "") -> Optional[str]:
        state: Dict[str, Any] = {"received": 0, "last": None}

        def on_notify(n: Any) -> None:
            state["received"] += 1
            state["last"] = n.payload

        c, cur = conn.conn, conn.cur
        c.add_notify_handler(on_notify)
        fd = c.fileno()
        deadline = time.monotonic() + STALL
        while state["received"] < count:
            select.select([fd], [], [], 0.01)
            before = state["received"]
            cur.execute("SELECT 1")
            if state["received"] > before:
                deadline = time.monotonic() + STALL
            elif time.monotonic() > deadline:
                raise Stalled(f"stalled after {state['received']} notifications")
        c.remove_notify_handler(on_notify)
        last: Optional[str] = state["last"]
        return last

    def receive_one(self, conn: Any) -> Any:
        for n in conn.conn.notifies(timeout=STALL, stop_after=1):
            return n
        raise Stalled("no notification")

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        # Received outside notifies() and without a handler, they wait in the
        # connection's backlog (private; read here only to know when all have come).
        c, cur = conn.conn, conn.cur
        backlog = c._notifies_backlog
        fd = c.fileno()

        def read() -> None:
            select.select([fd], [], [], 0.01)
            cur.execute("SELECT 1")

        fill(backlog, count, read)
        return str(backlog[-1].payload)
