"""What only the asyncio client has: tasks sharing one client, cancellation, timeouts around
any call, close() from another task, and uvloop.  (Everything the two clients share runs on
both through the behavioural suite: see conftest.py's ``open_client``.)"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, TypeVar

import pytest
from conftest import UVLOOP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgwire_pubsub
import pgwire_pubsub.aio as aio
from pgwire_pubsub import InterfaceError, Notify, OperationalError, QueryCanceled
from pgwire_pubsub.testing.faultproxy import FaultProxy
from pgwire_pubsub.testing.pgcluster import Server

T = TypeVar("T")
GUARD = 30.0  # seconds: a failure guard, never a performance target
LOOPS = ["asyncio", *UVLOOP]


def run(kind: str, main: Callable[[], Awaitable[T]]) -> T:
    """``main()`` on a new event loop of ``kind``, closed afterwards."""
    if kind == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), GUARD))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def dsn(pg: Server) -> Dict[str, Any]:
    return dict(pg.dsn_kwargs(sslmode="disable"))


async def psql_notify(pg: Server, channel: str, *payloads: str) -> int:
    """Another session (psql) sends ``payloads`` in one transaction; its backend pid."""
    sql = "BEGIN; " + "".join(f"SELECT pg_notify('{channel}', '{p}'); " for p in payloads)
    out = await asyncio.get_running_loop().run_in_executor(
        None, pg.psql, sql + "SELECT pg_backend_pid(); COMMIT;")
    return int(out.split()[-1])


async def take(pubsub: aio.AsyncPubSub, count: int) -> List[Any]:
    got: List[Any] = []
    while len(got) < count:
        event = await pubsub.get_event(timeout=GUARD)
        assert event is not None, f"only {len(got)} of {count} arrived: {got!r}"
        got.append(event)
    return got


# -- tasks sharing one client --------------------------------------------------------


def test_commands_run_while_another_task_waits_for_events(dsn: Dict[str, Any],
                                                          loop_kind: str) -> None:
    async def main() -> None:
        async with await aio.connect(**dsn) as pubsub:
            await pubsub.listen("shared")
            pid = pubsub.conn.get_backend_pid()
            received: List[Any] = []
            first = asyncio.Event()

            async def consume() -> None:
                async for event in pubsub.events():
                    received.append(event)
                    first.set()
                    if len(received) == 60:
                        return

            consumer = asyncio.ensure_future(consume())
            await pubsub.notify("shared", "0")
            await asyncio.wait_for(first.wait(), GUARD)  # the consumer is waiting now
            for i in range(1, 20):  # every kind of command, while it waits
                await pubsub.notify("shared", str(i))
                await pubsub.listen(f"other{i}")
                assert await pubsub.conn.execute("SELECT $1::int + 1", [str(i)]) == [
                    (str(i + 1),)]
                await pubsub.unlisten(f"other{i}")
            await pubsub.notify_many([("shared", str(i)) for i in range(20, 60)])
            await asyncio.wait_for(consumer, GUARD)
            assert received == [Notify(pid, "shared", str(i)) for i in range(60)]

    run(loop_kind, main)


def test_commands_from_many_tasks_are_queued_never_interleaved(dsn: Dict[str, Any],
                                                               loop_kind: str) -> None:
    async def main() -> None:
        async with await aio.connect(**dsn) as pubsub:
            async def ask(i: int) -> List[Any]:
                return await pubsub.conn.execute(
                    "SELECT $1::text, pg_sleep(0.001)", [f"task {i}"])

            answers = await asyncio.gather(*(ask(i) for i in range(100)))
            assert [rows[0][0] for rows in answers] == [f"task {i}" for i in range(100)]

    run(loop_kind, main)


def test_waiters_in_many_tasks_all_wake(dsn: Dict[str, Any], pg: Server,
                                        loop_kind: str) -> None:
    async def main() -> None:
        async with await aio.connect(**dsn) as pubsub:
            await pubsub.listen("many")
            waiters = [asyncio.ensure_future(pubsub.get_event(timeout=GUARD))
                       for _ in range(5)]
            await asyncio.sleep(0)  # all of them waiting
            pid = await psql_notify(pg, "many", *map(str, range(5)))
            events: List[Any] = await asyncio.gather(*waiters)
            assert sorted(e.payload for e in events) == list(map(str, range(5)))
            assert {e.pid for e in events} == {pid}

    run(loop_kind, main)


# -- cancellation and timeouts -----------------------------------------------------


def test_cancelling_a_waiting_task_loses_nothing(dsn: Dict[str, Any], pg: Server,
                                                 loop_kind: str) -> None:
    async def main() -> None:
        async with await aio.connect(**dsn) as pubsub:
            await pubsub.listen("kept")
            for _ in range(3):
                waiter = asyncio.ensure_future(pubsub.get_event(timeout=None))
                await asyncio.sleep(0.01)
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pubsub.get_event(timeout=None), 0.05)
            iterator = pubsub.events()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(iterator.__anext__(), 0.05)
            pid = await psql_notify(pg, "kept", "a", "b")
            assert await take(pubsub, 2) == [Notify(pid, "kept", "a"), Notify(pid, "kept", "b")]
            assert await pubsub.conn.execute("SELECT 1") == [("1",)]

    run(loop_kind, main)


def test_a_cancelled_slow_command_is_cancelled_on_the_server(dsn: Dict[str, Any],
                                                             pg: Server,
                                                             loop_kind: str) -> None:
    async def main() -> None:
        async with await aio.connect(**dsn) as pubsub:
            pid = pubsub.conn.get_backend_pid()
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pubsub.conn.execute("SELECT pg_sleep(60)"), 0.2)
            # The next command waits for the cancelled one: the CancelRequest ends it at
            # once, far sooner than its 60 s.
            assert await pubsub.conn.execute("SELECT 'next'") == [("next",)]
            assert time.monotonic() - started < GUARD
            state = await asyncio.get_running_loop().run_in_executor(
                None, pg.psql, f"SELECT state FROM pg_stat_activity WHERE pid = {pid}")
            assert state.strip() == "idle"

    run(loop_kind, main)


def test_cancel_interrupts_a_command_with_query_canceled(dsn: Dict[str, Any],
                                                         loop_kind: str) -> None:
    async def main() -> None:
        async with await aio.connect(**dsn) as pubsub:
            slow = asyncio.ensure_future(pubsub.conn.execute("SELECT pg_sleep(60)"))
            await asyncio.sleep(0.2)
            await pubsub.conn.cancel()
            with pytest.raises(QueryCanceled):
                await asyncio.wait_for(slow, GUARD)
            assert await pubsub.conn.execute("SELECT 1") == [("1",)]

    run(loop_kind, main)


def test_a_command_that_loses_the_connection_wakes_the_waiting_tasks(
    dsn: Dict[str, Any], loop_kind: str
) -> None:
    """A command given up at its timeout closes the connection: a task waiting for events
    meanwhile is told at once that the connection is lost, instead of waiting on."""
    async def main() -> None:
        async with await aio.connect(**dsn) as pubsub:
            await pubsub.listen("lost")
            waiter = asyncio.ensure_future(pubsub.get_event(timeout=None))
            with pytest.raises(OperationalError, match="timeout"):
                await pubsub.conn.execute("SELECT pg_sleep(5)", timeout=0.2)
            assert pubsub.conn.closed == 2
            with pytest.raises(OperationalError):
                await asyncio.wait_for(waiter, 10)  # far above the 0.2 s it takes

    run(loop_kind, main)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is Python 3.11+")
def test_asyncio_timeout_around_any_call(dsn: Dict[str, Any], loop_kind: str) -> None:
    async def main() -> None:
        async with await aio.connect(**dsn) as pubsub:
            await pubsub.listen("t")
            calls: List[Callable[[], Awaitable[Any]]] = [
                lambda: pubsub.get_event(timeout=None),
                lambda: pubsub.get_events(timeout=None),
                lambda: pubsub.conn.execute("SELECT pg_sleep(60)"),
            ]
            for call in calls:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await call()
            await pubsub.notify("t", "after")
            assert (await pubsub.get_event(timeout=GUARD)).payload == "after"  # type: ignore[union-attr]

    run(loop_kind, main)


def test_close_from_another_task_ends_every_waiting_iterator(dsn: Dict[str, Any],
                                                             loop_kind: str) -> None:
    async def main() -> None:
        pubsub = await aio.connect(**dsn)
        await pubsub.listen("closing")

        async def iterate() -> str:
            async for _ in pubsub.events():
                pass
            return "ended"

        iterators = [asyncio.ensure_future(iterate()) for _ in range(3)]
        getter = asyncio.ensure_future(pubsub.get_event(timeout=None))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await pubsub.close()
        assert await asyncio.wait_for(asyncio.gather(*iterators), GUARD) == ["ended"] * 3
        with pytest.raises(InterfaceError):
            await getter
        assert time.monotonic() - started < 5
        with pytest.raises(InterfaceError):
            await pubsub.notify("closing")
        await pubsub.close()  # again: nothing happens

    run(loop_kind, main)


def test_cancelled_commands_at_random_points_keep_the_stream_whole(pg: Server) -> None:
    """Commands and waits cancelled at random moments, through a proxy that delivers one
    byte at a time: afterwards the connection works (or says it is lost), and the
    notifications arrive exactly once, in order."""
    with FaultProxy(pg.host, pg.port) as proxy:
        dsn = dict(pg.dsn_kwargs(sslmode="disable", host=proxy.host, port=proxy.port))

        @settings(max_examples=20, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.lists(st.tuples(st.sampled_from(["notify", "listen", "execute", "wait"]),
                                  st.integers(0, 40)), min_size=1, max_size=6))
        def check(plan: List[Any]) -> None:
            run("asyncio", lambda: _cancel_at_random(dsn, proxy, plan))

        check()


async def _cancel_at_random(dsn: Dict[str, Any], proxy: FaultProxy, plan: List[Any]) -> None:
    proxy.passthrough()
    async with await aio.connect(**dsn) as pubsub:
        await pubsub.listen("whole")
        pid = pubsub.conn.get_backend_pid()
        proxy.trickle(0.0002)
        for attempt, (action, delay_ms) in enumerate(plan, 1):  # a payload of its own each
            if action == "notify":
                call: Awaitable[Any] = pubsub.notify("whole", str(attempt))
            elif action == "listen":
                call = pubsub.listen("whole")
            elif action == "execute":
                call = pubsub.conn.execute("SELECT pg_sleep(0.01)")
            else:
                call = pubsub.get_event(timeout=None)
            task = asyncio.ensure_future(call)
            await asyncio.sleep(delay_ms / 1000)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        proxy.passthrough()
        try:
            await pubsub.notify("whole", "last")
        except OperationalError:
            return  # it says it is lost: acceptable
        # Cancelled notifies may or may not have reached the server: what arrives is a
        # duplicate-free, ordered subsequence of what was tried, ending with "last".
        got: List[str] = []
        while not got or got[-1] != "last":
            event = await pubsub.get_event(timeout=GUARD)
            assert isinstance(event, Notify) and event.pid == pid, event
            got.append(event.payload)
        numbers = [int(p) for p in got[:-1]]
        assert numbers == sorted(set(numbers)), got
        assert await pubsub.conn.execute("SELECT 1") == [("1",)]


# -- no threads, and the blocking client's import stays lean ---------------------------


def test_no_thread_is_started_for_a_numeric_host(dsn: Dict[str, Any], pg: Server) -> None:
    async def main() -> None:
        before = threading.active_count()
        async with await aio.connect(**dsn) as pubsub:
            await pubsub.listen("threads")
            await pubsub.notify("threads", "x")
            assert (await pubsub.get_event(timeout=GUARD)) is not None
        assert threading.active_count() == before

    assert pg.host.replace(".", "").isdigit()
    run("asyncio", main)


def test_the_same_options_as_the_blocking_connect(dsn: Dict[str, Any]) -> None:
    async def main() -> None:
        for bad in ({"max_pending": 0}, {"overflow": "nope"}, {"health_check_interval": 0}):
            with pytest.raises(ValueError):
                await aio.connect(**dsn, **bad)
        with pytest.raises(pgwire_pubsub.ProgrammingError):
            await aio.connect(**dsn, no_such_option="x")
        pubsub = await aio.connect(**dsn, reconnect=True, max_pending=5,
                                   overflow="drop-oldest", health_check_interval=30)
        try:
            for channel in ("", "x" * 64, "nul\0"):
                with pytest.raises(ValueError):
                    await pubsub.listen(channel)
            with pytest.raises(TypeError):
                await pubsub.notify("c", 5)  # type: ignore[arg-type]
        finally:
            await pubsub.close()

    run("asyncio", main)

