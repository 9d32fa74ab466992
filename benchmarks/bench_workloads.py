"""The workloads of the benchmark suite, written once per client library.

Each run measures one library on one workload in a process of its own, so that
measurements never mix; ``run.py`` starts these processes:

    python benchmarks/bench_workloads.py --lib psycopg2 --workload notify \\
        --conninfo '{"main": {...}, "scram": {...}}' --opts '{"count": 5000}'

prints one line ``RESULT {json}``.  ``--version`` prints the library's version
(and fails when it does not import), which is how ``run.py`` finds the peers.

Every library is used the natural, fastest documented way; where that needs a
choice, the class says which and why.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # the checkout's pgwire_pubsub, installed or not

CHANNEL = "bench"
SEQ_CHANNEL = "bench_seq"  # notify / notify_many: nobody listens
PAYLOAD_SIZE = 64
BIG_PAYLOAD = 1024  # the memory workload's second payload size, for the per-byte slope
STALL = 60.0  # seconds without progress that make a run fail instead of hang
# The sender's statement: pg_notify(...) FROM generate_series(...), wrapped in count() so
# that the sending connection gets one row back rather than one per notification.
BURST_SQL = (
    "SELECT count(pg_notify('{channel}', lpad(i::text, {size}, 'x'))) "
    "FROM generate_series(1, {count}) i"
)
IS_PYPY = platform.python_implementation() == "PyPy"

Result = Dict[str, Any]
ConnInfo = Dict[str, Any]


def payload(i: int, size: int = PAYLOAD_SIZE) -> str:
    """What ``lpad(i::text, size, 'x')`` gives."""
    return str(i).rjust(size, "x")


def burst_sql(count: int, size: int = PAYLOAD_SIZE) -> str:
    return BURST_SQL.format(channel=CHANNEL, size=size, count=count)


class Stalled(RuntimeError):
    pass


class Meter:
    """Wall-clock and CPU time (this process, every thread) from creation to ``stop()``."""

    def __init__(self) -> None:
        self.wall0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.wall = self.cpu = 0.0

    def stop(self) -> Meter:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        return self

    def result(self, ops: int, cpu_excluded: float = 0.0, **extra: Any) -> Result:
        if not self.wall:
            self.stop()
        cpu = max(0.0, self.cpu - cpu_excluded)
        return {
            "ops": ops,
            "wall_s": self.wall,
            "cpu_s": cpu,
            "rate": ops / self.wall,
            "cpu_us": cpu / ops * 1e6,
            **extra,
        }


class Background:
    """A blocking call in a thread (the sender's COMMIT); ``cpu`` is that thread's own CPU
    time, which the measurement leaves out."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self.cpu = 0.0
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.thread_time()
        try:
            self.fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.cpu = time.thread_time() - start

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join(STALL)
        if self.thread.is_alive():
            raise Stalled("the sender did not finish")
        if self.error is not None:
            raise self.error


def latency_stats(samples_ns: List[int]) -> Dict[str, float]:
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median_us": statistics.median(ordered) / 1e3, "p99_us": p99 / 1e3}


def memory_now(method: str) -> int:
    """Bytes held now: traced by tracemalloc, or the resident set size."""
    gc.collect()
    if method == "traced":
        import tracemalloc

        return tracemalloc.get_traced_memory()[0]
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_start(method: str) -> int:
    if method == "traced":
        import tracemalloc

        tracemalloc.start()
    return memory_now(method)


def memory_result(method: str, base: int, count: int, size: int) -> Result:
    held = memory_now(method) - base
    if method == "traced":
        import tracemalloc

        tracemalloc.stop()
    return {"ops": count, "method": method, "payload": size, "bytes_per_pending": held / count}


def check_last(last: Optional[str], count: int, size: int = PAYLOAD_SIZE) -> None:
    if last != payload(count, size):
        raise AssertionError(f"the last notification's payload is {last!r}")


def libpq_dsn(params: ConnInfo) -> str:
    """A key=value string for libpq, TLS and GSS encryption off (as for every peer)."""
    def quote(v: object) -> str:
        return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"

    full = {"sslmode": "disable", "gssencmode": "disable", **params}
    return " ".join(f"{k}={quote(v)}" for k, v in full.items() if v is not None)


# -- the libraries ----------------------------------------------------------------------


def warmup_count(count: int) -> int:
    return max(10, count // 10)


def timed_round_trips(count: int, round_trip: Callable[[], object]) -> Result:
    """``round_trip()`` ``count`` times (after a tenth as many to warm up): the rate, the
    CPU per round trip, and the median and 99th percentile of the latency."""
    clock = time.perf_counter_ns
    for _ in range(warmup_count(count)):
        round_trip()
    samples: List[int] = []
    meter = Meter()
    for _ in range(count):
        t0 = clock()
        round_trip()
        samples.append(clock() - t0)
    return meter.result(count, **latency_stats(samples))


# -- the libraries ----------------------------------------------------------------------
#
# Each blocking library supplies a few primitives (open, notify_one, listen, receive...);
# the workloads themselves are written once, in ``Library``.


class Library:
    """One client library.  ``notify_many_how`` is None when it has no batch notify."""

    name = ""
    module = ""  # what the import-time workload imports
    notify_many_how: Optional[str] = None

    def __init__(self, conninfo: ConnInfo) -> None:
        self.main: ConnInfo = conninfo["main"]
        self.scram: ConnInfo = conninfo.get("scram") or conninfo["main"]

    @classmethod
    def version(cls) -> str:
        raise NotImplementedError

    # -- primitives --------------------------------------------------------------------

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        """A connection (autocommit) as ``params`` (default: the main role) says."""
        raise NotImplementedError

    def close(self, conn: Any) -> None:
        conn.close()

    def execute(self, conn: Any, sql: str) -> None:
        raise NotImplementedError

    def listen(self, conn: Any, channel: str) -> None:
        self.execute(conn, f"LISTEN {channel}")

    def notify_one(self, conn: Any, channel: str, payload: str) -> None:
        raise NotImplementedError

    def notify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        raise NotImplementedError

    def receive(self, conn: Any, count: int) -> Optional[str]:
        """Take ``count`` notifications as they come; the last one's payload."""
        raise NotImplementedError

    def receive_one(self, conn: Any) -> Any:
        """Wait for one notification and take it."""
        raise NotImplementedError

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        """Read until ``count`` notifications are pending, taking none; the last payload."""
        raise NotImplementedError

    # -- workloads ---------------------------------------------------------------------

    def connect(self, count: int) -> Result:
        self.close(self.open(self.scram))
        meter = Meter()
        for _ in range(count):
            self.close(self.open(self.scram))
        return meter.result(count)

    def notify(self, count: int) -> Result:
        conn = self.open()
        notify_one = self.notify_one
        payloads = [payload(i) for i in range(count)]
        for p in payloads[: warmup_count(count)]:
            notify_one(conn, SEQ_CHANNEL, p)
        meter = Meter()
        for p in payloads:
            notify_one(conn, SEQ_CHANNEL, p)
        result = meter.result(count)
        self.close(conn)
        return result

    def notify_many(self, batches: int, size: int) -> Result:
        conn = self.open()
        items = [(SEQ_CHANNEL, payload(i)) for i in range(size)]
        self.notify_batch(conn, items)
        meter = Meter()
        for _ in range(batches):
            self.notify_batch(conn, items)
        result = meter.result(batches * size)
        self.close(conn)
        return result

    def _burst(self, listener: Any, sender: Any, count: int) -> Result:
        """The sender queues ``count`` notifications in a transaction; the clock starts,
        a thread commits, and stops when the listener has taken the last one."""
        self.execute(sender, "BEGIN")
        self.execute(sender, burst_sql(count))
        commit = Background(lambda: self.execute(sender, "COMMIT"))
        meter = Meter()
        commit.start()
        last = self.receive(listener, count)
        meter.stop()
        commit.join()
        check_last(last, count)
        return meter.result(count, commit.cpu)

    def receive_burst(self, count: int, warmup: int) -> Result:
        listener, sender = self.open(), self.open()
        self.listen(listener, CHANNEL)
        self._burst(listener, sender, warmup)
        result = self._burst(listener, sender, count)
        self.close(listener)
        self.close(sender)
        return result

    def pingpong(self, count: int) -> Result:
        """A notifies B, B answers A, in one process (both sides' CPU counts)."""
        a, b = self.open(), self.open()
        self.listen(a, "pong")
        self.listen(b, "ping")
        p = payload(0)
        notify_one, receive_one = self.notify_one, self.receive_one

        def round_trip() -> None:
            notify_one(a, "ping", p)
            receive_one(b)
            notify_one(b, "pong", p)
            receive_one(a)

        result = timed_round_trips(count, round_trip)
        self.close(a)
        self.close(b)
        return result

    def memory(self, count: int, method: str, size: int) -> Result:
        listener, sender = self.open(), self.open()
        self.listen(listener, CHANNEL)
        self.execute(sender, "BEGIN")
        self.execute(sender, burst_sql(count, size))
        base = memory_start(method)
        self.execute(sender, "COMMIT")
        last = self.fill_pending(listener, count)
        result = memory_result(method, base, count, size)
        check_last(last, count, size)
        self.close(listener)
        self.close(sender)
        return result


def receive_by_get_events(pubsub: Any, count: int) -> Optional[str]:
    """The pgpubsub API's batch call, for pgwire_pubsub and pgpubsub."""
    received, last = 0, None
    deadline = time.monotonic() + STALL
    while received < count:
        events = pubsub.get_events(select_timeout=STALL)
        if events:
            received += len(events)
            last = events[-1].payload
            deadline = time.monotonic() + STALL
        elif time.monotonic() > deadline:
            raise Stalled(f"stalled after {received} notifications")
    return last


def receive_by_get_event(pubsub: Any) -> Any:
    deadline = time.monotonic() + STALL
    while True:
        event = pubsub.get_event(select_timeout=STALL)
        if event is not None:
            return event
        if time.monotonic() > deadline:
            raise Stalled("no notification")


def fill_psycopg2_notifies(conn: Any, count: int) -> Optional[str]:
    """select and ``poll()`` until psycopg2's ``conn.notifies`` holds ``count``."""
    while len(conn.notifies) < count:
        if not select.select([conn], [], [], STALL)[0]:
            raise Stalled(f"{len(conn.notifies)} pending")
        conn.poll()
    return str(conn.notifies[-1].payload)


class Pgwire(Library):
    """pgwire_pubsub: ``notify``, ``notify_many``, ``get_events`` (a list of everything
    waiting) for the burst, ``get_event`` for ping-pong.  Pending notifications wait in
    ``conn.notifications``; ``conn.ping()`` (an empty query) reads without taking."""

    name = "pgwire_pubsub"
    module = "pgwire_pubsub"
    notify_many_how = "pubsub.notify_many()"

    def __init__(self, conninfo: ConnInfo) -> None:
        super().__init__(conninfo)
        import pgwire_pubsub

        self.m = pgwire_pubsub

    @classmethod
    def version(cls) -> str:
        import pgwire_pubsub

        return str(pgwire_pubsub.__version__)

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        return self.m.connect(**{"sslmode": "disable", **(params or self.main)})

    def execute(self, conn: Any, sql: str) -> None:
        conn.conn.execute(sql)

    def listen(self, conn: Any, channel: str) -> None:
        conn.listen(channel)

    def notify_one(self, conn: Any, channel: str, payload: str) -> None:
        conn.notify(channel, payload)

    def notify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        conn.notify_many(items)

    def receive(self, conn: Any, count: int) -> Optional[str]:
        return receive_by_get_events(conn, count)

    def receive_one(self, conn: Any) -> Any:
        return receive_by_get_event(conn)

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        pending = conn.conn.notifications
        deadline = time.monotonic() + STALL
        while len(pending) < count:
            conn.conn.ping()
            if time.monotonic() > deadline:
                raise Stalled(f"{len(pending)} pending")
        return str(pending[-1].payload)


class _Conn:
    """A connection and the one cursor it reuses."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cur = conn.cursor()

    def close(self) -> None:
        self.conn.close()


class Psycopg2(Library):
    """psycopg2: ``select`` on the connection, ``conn.poll()``, then the whole
    ``conn.notifies`` list is taken by swapping in an empty one (the attribute is
    writable since 2.7), the fastest documented way.  ``notify`` reuses one cursor;
    ``notify_many`` is ``psycopg2.extras.execute_batch`` with ``page_size=1000``: one
    round trip a batch (in autocommit, one implicit transaction, so atomic like
    ``notify_many``)."""

    name = "psycopg2"
    module = "psycopg2"
    notify_many_how = "extras.execute_batch(page_size=1000): one round trip per 1,000"
    SQL = "SELECT pg_notify(%s, %s)"

    def __init__(self, conninfo: ConnInfo) -> None:
        super().__init__(conninfo)
        import psycopg2
        import psycopg2.extras

        self.m = psycopg2
        self.extras = psycopg2.extras

    @classmethod
    def version(cls) -> str:
        import psycopg2

        return str(psycopg2.__version__).split()[0]

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        conn = self.m.connect(libpq_dsn(params or self.main))
        conn.autocommit = True
        return _Conn(conn)

    def execute(self, conn: Any, sql: str) -> None:
        conn.cur.execute(sql)

    def notify_one(self, conn: Any, channel: str, payload: str) -> None:
        conn.cur.execute(self.SQL, (channel, payload))

    def notify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        self.extras.execute_batch(conn.cur, self.SQL, items, page_size=1000)

    def receive(self, conn: Any, count: int) -> Optional[str]:
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


def _pgpubsub_module() -> Any:
    try:
        import pgpubsub  # type: ignore[import-not-found, import-untyped, unused-ignore]

        return pgpubsub
    except ImportError:
        import psycopg2  # noqa: F401  (the emulation needs it)

        return _PgpubsubEmulation


class Pgpubsub(Library):
    """pgpubsub 0.0.5 (on psycopg2) through its own API: ``get_events`` for the burst
    (its batch call), ``get_event`` for ping-pong; pending notifications wait in
    psycopg2's ``conn.notifies``.  It has no batch notify.  When the package is not
    installed, its code path is emulated (see ``_PgpubsubEmulation``)."""

    name = "pgpubsub"
    module = "pgpubsub"

    def __init__(self, conninfo: ConnInfo) -> None:
        super().__init__(conninfo)
        self.m = _pgpubsub_module()

    @classmethod
    def version(cls) -> str:
        m = _pgpubsub_module()
        if m is _PgpubsubEmulation:
            return str(m.__version__)
        from importlib.metadata import version

        return version("pgpubsub")

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        return self.m.connect(libpq_dsn(params or self.main))

    def execute(self, conn: Any, sql: str) -> None:
        with conn.conn.cursor() as cur:
            cur.execute(sql)

    def listen(self, conn: Any, channel: str) -> None:
        conn.listen(channel)

    def notify_one(self, conn: Any, channel: str, payload: str) -> None:
        conn.notify(channel, payload)

    def receive(self, conn: Any, count: int) -> Optional[str]:
        return receive_by_get_events(conn, count)

    def receive_one(self, conn: Any) -> Any:
        return receive_by_get_event(conn)

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        return fill_psycopg2_notifies(conn.conn, count)


class Psycopg3(Library):
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
    SQL = "SELECT pg_notify(%s, %s)"

    def __init__(self, conninfo: ConnInfo) -> None:
        super().__init__(conninfo)
        import psycopg

        self.m = psycopg

    @classmethod
    def version(cls) -> str:
        import psycopg

        return f"{psycopg.__version__} ({psycopg.pq.__impl__})"

    def open(self, params: Optional[ConnInfo] = None) -> Any:
        return _Conn(self.m.connect(libpq_dsn(params or self.main), autocommit=True))

    def execute(self, conn: Any, sql: str) -> None:
        conn.cur.execute(sql)

    def notify_one(self, conn: Any, channel: str, payload: str) -> None:
        conn.cur.execute(self.SQL, (channel, payload))

    def notify_batch(self, conn: Any, items: List[Tuple[str, str]]) -> None:
        conn.cur.executemany(self.SQL, items)

    def receive(self, conn: Any, count: int) -> Optional[str]:
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
        return state["last"]  # type: ignore[no-any-return]

    def receive_one(self, conn: Any) -> Any:
        for n in conn.conn.notifies(timeout=STALL, stop_after=1):
            return n
        raise Stalled("no notification")

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        # Received outside notifies() and without a handler, they wait in the
        # connection's backlog (private; read here only to know when all have come).
        backlog = conn.conn._notifies_backlog
        deadline = time.monotonic() + STALL
        while len(backlog) < count:
            ready = select.select([conn.conn.fileno()], [], [], 0.01)[0]
            if not ready and time.monotonic() > deadline:
                raise Stalled(f"{len(backlog)} pending")
            conn.cur.execute("SELECT 1")
        return str(backlog[-1].payload)


class Pg8000(Library):
    """pg8000's native API.  It reads notifications only while it runs a statement, into
    ``con.notifications`` (a deque limited to 100, replaced here by an unbounded one
    so that none is lost).  The listener waits for its socket to be readable (at most
    10 ms, as the reader may buffer the tail), runs ``SELECT 1`` and takes the whole
    deque.  It has no batch statement API."""

    name = "pg8000"
    module = "pg8000.native"
    SQL = "SELECT pg_notify(:c, :p)"

    def __init__(self, conninfo: ConnInfo) -> None:
        super().__init__(conninfo)
        import pg8000.native

        self.m = pg8000.native

    @classmethod
    def version(cls) -> str:
        import pg8000

        return str(pg8000.__version__)

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

    def receive(self, conn: Any, count: int) -> Optional[str]:
        received, last = 0, None
        deadline = time.monotonic() + STALL
        while received < count:
            batch = self._collect(conn)
            if batch:
                received += len(batch)
                last = batch[-1][2]
                deadline = time.monotonic() + STALL
            elif time.monotonic() > deadline:
                raise Stalled(f"stalled after {received} notifications")
        return last

    def receive_one(self, conn: Any) -> Any:
        deadline = time.monotonic() + STALL
        while True:
            batch = self._collect(conn)
            if batch:
                return batch.popleft()
            if time.monotonic() > deadline:
                raise Stalled("no notification")

    def fill_pending(self, conn: Any, count: int) -> Optional[str]:
        deadline = time.monotonic() + STALL
        while len(conn.notifications) < count:
            select.select([conn._usock], [], [], 0.01)
            conn.run("SELECT 1")
            if time.monotonic() > deadline:
                raise Stalled(f"{len(conn.notifications)} pending")
        return str(conn.notifications[-1][2])


class Asyncpg(Library):
    """asyncpg on the default asyncio loop: ``add_listener`` callbacks.  ``notify_many``
    is ``executemany`` (pipelined, atomic).  asyncpg keeps no pending queue: the
    memory workload's callback keeps ``(pid, channel, payload)`` in a list."""

    name = "asyncpg"
    module = "asyncpg"
    notify_many_how = "executemany(): pipelined"
    SQL = "SELECT pg_notify($1, $2)"

    def __init__(self, conninfo: ConnInfo) -> None:
        super().__init__(conninfo)
        import asyncpg

        self.m = asyncpg

    @classmethod
    def version(cls) -> str:
        import asyncpg

        return str(asyncpg.__version__)

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

    def receive_burst(self, count: int, warmup: int) -> Result:
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



LIBRARIES: Dict[str, Type[Library]] = {
    cls.name: cls for cls in (Pgwire, Pgpubsub, Psycopg2, Psycopg3, Asyncpg, Pg8000)
}


# -- import time ----------------------------------------------------------------------------

IMPORT_PROBE = (
    "import time; w, c = time.perf_counter(), time.process_time(); import {module}; "
    "print(time.perf_counter() - w, time.process_time() - c)"
)


def import_time(module: str, repeats: int) -> Result:
    """Wall and CPU time of ``import module`` in fresh interpreters, measured inside the
    child around the import alone.  Every library gets the same bytecode cache: a private
    one (``PYTHONPYCACHEPREFIX``) that a first, untimed import fills, whether or not the
    environment says PYTHONDONTWRITEBYTECODE and whatever the installer left."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        for i in range(repeats + 1):
            out = subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE.format(module=module)],
                env=env, capture_output=True, text=True, check=True, timeout=120,
            ).stdout.split()
            if i:
                walls.append(float(out[0]) * 1e3)
                cpus.append(float(out[1]) * 1e3)
    return {
        "ops": repeats,
        "import_ms": statistics.median(walls),
        "cpu_ms": statistics.median(cpus),
        "module": module,
    }


# -- entry point -----------------------------------------------------------------------------


def run(lib: str, workload: str, conninfo: ConnInfo, opts: Dict[str, Any]) -> Result:
    cls = LIBRARIES[lib]
    if workload == "import":
        module = cls.module
        if cls is Pgpubsub and _pgpubsub_module() is _PgpubsubEmulation:
            module = "psycopg2"
        return import_time(module, int(opts.get("repeats", 5)))
    bench: Library = cls(conninfo)
    if workload == "connect":
        return bench.connect(int(opts["count"]))
    if workload == "notify":
        return bench.notify(int(opts["count"]))
    if workload == "notify_many":
        result = bench.notify_many(int(opts["batches"]), int(opts["size"]))
        result["how"] = cls.notify_many_how
        return result
    if workload == "receive_burst":
        return bench.receive_burst(int(opts["count"]), int(opts.get("warmup", 0)) or 1000)
    if workload == "pingpong":
        return bench.pingpong(int(opts["count"]))
    if workload == "memory":
        method = opts.get("method", "traced")
        return bench.memory(int(opts["count"]), method, int(opts.get("payload", PAYLOAD_SIZE)))
    raise ValueError(f"unknown workload {workload!r}")


def supports(lib: str, workload: str) -> bool:
    """False where the library has no such operation (reported as N/A)."""
    return not (workload == "notify_many" and LIBRARIES[lib].notify_many_how is None)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="One benchmark workload for one library.")
    parser.add_argument("--lib", required=True, choices=sorted(LIBRARIES))
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--workload")
    parser.add_argument("--conninfo", default="{}")
    parser.add_argument("--opts", default="{}")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="run under cProfile (CPU time) and print the N functions with "
                        "the most time of their own to stderr")
    args = parser.parse_args(argv)
    if args.version:
        try:
            print(LIBRARIES[args.lib].version())
        except ImportError as exc:
            print(f"not installed: {exc}", file=sys.stderr)
            return 3
        return 0
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU time: waiting is not hot
        profiler.enable()
    try:
        result = run(args.lib, args.workload, json.loads(args.conninfo), json.loads(args.opts))
    except Exception:
        traceback.print_exc()
        return 1
    if profiler is not None:
        import pstats

        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.profile)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
