"""The benchmark suite's shared machinery: the clocks, the sender's thread, the memory
readings, and ``Library``, whose workloads are written once on top of a few primitives
that each blocking client library supplies.

The libraries themselves are in ``bench_libpq_peers.py`` (psycopg2, pgpubsub, psycopg 3)
and ``bench_wire_peers.py`` (pgwire_pubsub, asyncpg, pg8000); ``bench_workloads.py`` runs
one workload of one of them.
"""

from __future__ import annotations

import functools
import gc
import importlib
import operator
import os
import platform
import statistics
import sys
import threading
import time
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Sized,
    Tuple,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # the checkout's pgwire_pubsub, installed or not

import bench_backlog  # noqa: E402

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
# The workloads that receive, measured in each way a library receives (Library.ways).
RECEIVE_WORKLOADS = ("app_traffic", "trigger_burst", "receive_burst")

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


def take_batches(count: int, take: Callable[[], Optional[Sequence[Any]]],
                 payload_of: Callable[[Any], str]) -> Optional[str]:
    """``take()`` (everything waiting, maybe nothing) until ``count`` notifications have
    come; the last one's payload.  Fails after ``STALL`` seconds without one."""
    received, last = 0, None
    deadline = time.monotonic() + STALL
    while received < count:
        batch = take()
        if batch:
            received += len(batch)
            last = payload_of(batch[-1])
            deadline = time.monotonic() + STALL
        elif time.monotonic() > deadline:
            raise Stalled(f"stalled after {received} notifications")
    return last


def take_each(count: int, events: Iterator[Any]) -> Optional[str]:
    """Iterate ``events`` (an ``events()`` loop that yields None after ``STALL`` seconds
    without one) until ``count`` notifications have come; the last one's payload."""
    received = 0
    try:
        for event in events:
            if event is None:
                raise Stalled(f"stalled after {received} notifications")
            received += 1
            if received == count:
                return str(event.payload)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    raise Stalled(f"the loop ended after {received} notifications")


def fill(pending: Sized, count: int, read: Callable[[], object]) -> None:
    """``read()`` until ``pending`` holds ``count``; fails after ``STALL`` seconds."""
    deadline = time.monotonic() + STALL
    while len(pending) < count:
        read()
        if time.monotonic() > deadline:
            raise Stalled(f"{len(pending)} pending")


# -- the libraries ----------------------------------------------------------------------
#
# Each blocking library supplies a few primitives (open, notify_one, listen, receive...);
# the workloads themselves are written once, in ``Library``.


class Library:
    """One client library.  ``notify_many_how`` is None when it has no batch notify.
    ``ways`` are the ways it receives in, each measured on every receive workload (the
    first is also the one its other workloads use): "" when it has one way."""

    name = ""
    module = ""  # what load() imports, and the import-time workload too
    notify_many_how: Optional[str] = None
    ways: Tuple[str, ...] = ("",)
    way_labels: ClassVar[Dict[str, str]] = {}  # how the report names each way

    def __init__(self, conninfo: ConnInfo) -> None:
        self.main: ConnInfo = conninfo["main"]
        self.scram: ConnInfo = conninfo.get("scram") or conninfo["main"]
        self.m: Any = self.load()

    @classmethod
    def load(cls) -> Any:
        """The library's module, which ``self.m`` holds."""
        return importlib.import_module(cls.module)

    @classmethod
    def version(cls) -> str:
        """The ``__version__`` of ``module``'s top-level package."""
        return str(importlib.import_module(cls.module.split(".")[0]).__version__)

    @classmethod
    def imported_module(cls) -> str:
        """The module that the import-time workload imports."""
        return cls.module

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

    def receive(self, conn: Any, count: int, way: str = "") -> Optional[str]:
        """Take ``count`` notifications as they come, in ``way`` (one of ``ways``); the
        last one's payload."""
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

    def _burst(self, listener: Any, sender: Any, count: int, way: str) -> Result:
        """The sender queues ``count`` notifications in a transaction; the clock starts,
        a thread commits, and stops when the listener has taken the last one."""
        self.execute(sender, "BEGIN")
        self.execute(sender, burst_sql(count))
        commit = Background(lambda: self.execute(sender, "COMMIT"))
        meter = Meter()
        commit.start()
        last = self.receive(listener, count, way)
        meter.stop()
        commit.join()
        check_last(last, count)
        return meter.result(count, commit.cpu)

    def receive_burst(self, count: int, warmup: int, way: str = "") -> Result:
        listener, sender = self.open(), self.open()
        self.listen(listener, CHANNEL)
        self._burst(listener, sender, warmup, way)
        result = self._burst(listener, sender, count, way)
        self.close(listener)
        self.close(sender)
        return result

    def backlog(self, workload: str, count: int, warmup: int, way: str = "") -> Result:
        """One of ``bench_backlog.SHAPES``: the listener listens; the backlog is made
        while it reads nothing; the clock runs while it takes the ``count``."""
        channels, make, check = bench_backlog.SHAPES[workload]
        listener = self.open()
        for channel in channels:
            self.listen(listener, channel)
        make(self.main, warmup)
        check(self.receive(listener, warmup, way), warmup)
        make(self.main, count)
        meter = Meter()
        last = self.receive(listener, count, way)
        result = meter.result(count)
        check(last, count)
        self.close(listener)
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


class PubSubApi(Library):
    """A library with pgpubsub's API (pgwire_pubsub, pgpubsub): ``listen``, ``notify``,
    ``get_events`` (everything waiting) or ``for e in events()`` for the receive
    workloads, ``get_event`` for ping-pong."""

    way_labels: ClassVar[Dict[str, str]] = {"get_events": "get_events()",
                                            "events": "for e in events()"}

    def listen(self, conn: Any, channel: str) -> None:
        conn.listen(channel)

    def notify_one(self, conn: Any, channel: str, payload: str) -> None:
        conn.notify(channel, payload)

    def receive(self, conn: Any, count: int, way: str = "") -> Optional[str]:
        if way == "events":
            return take_each(count, conn.events(select_timeout=STALL, yield_timeouts=True))
        return take_batches(count, functools.partial(conn.get_events, select_timeout=STALL),
                            operator.attrgetter("payload"))

    def receive_one(self, conn: Any) -> Any:
        deadline = time.monotonic() + STALL
        while True:
            event = conn.get_event(select_timeout=STALL)
            if event is not None:
                return event
            if time.monotonic() > deadline:
                raise Stalled("no notification")
