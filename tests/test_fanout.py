"""Fan-out against a real server, on both clients: subscriptions, LISTEN counted per channel,
markers for every subscription, bounds of their own, callbacks, and 10,000 subscribers on
one connection."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from typing import Any, Callable, Dict, List, Set

import pytest
from timing import LATE, stopwatch

import pgwire_pubsub.aio
from pgwire_pubsub import Dropped, Notify, PendingOverflow, Reconnected, ReconnectPolicy
from pgwire_pubsub.protocol.machine import State
from pgwire_pubsub.testing.pgcluster import Server, wait_for

GUARD = 30.0  # seconds: a failure guard, never a performance target


@pytest.fixture
def connect(pg: Server, open_client: Callable[..., Any]) -> Callable[..., Any]:
    def make(**options: Any) -> Any:
        return open_client(**pg.dsn_kwargs(sslmode="disable"), **options)

    return make


def listening(pubsub: Any) -> Set[str]:
    return {row[0] for row in pubsub.conn.execute("SELECT pg_catalog.pg_listening_channels()")}


def psql_notify(pg: Server, *pairs: Any) -> int:
    """psql sends ``(channel, payload)`` pairs in one transaction; its backend pid."""
    sql = "".join(f"SELECT pg_notify('{c}', '{p}'); " for c, p in pairs)
    return int(pg.psql(f"BEGIN; {sql} SELECT pg_backend_pid(); COMMIT;").split()[-1])


def take(subscription: Any, count: int) -> List[Any]:
    got: List[Any] = []
    while len(got) < count:
        event = subscription.get(GUARD)
        assert event is not None, f"only {len(got)} of {count} arrived: {got!r}"
        got.append(event)
    return got


def test_listen_follows_the_first_subscription_and_the_last(connect: Callable[..., Any]) -> None:
    pubsub = connect()
    assert listening(pubsub) == set()
    first = pubsub.subscribe("a")
    second = pubsub.subscribe("a", "b")
    assert listening(pubsub) == {"a", "b"}
    first.close()
    assert listening(pubsub) == {"a", "b"}
    second.close()
    assert listening(pubsub) == set()
    pubsub.listen("a")  # a channel of the client's own stays when a subscription goes
    with pubsub.subscribe("a", "c"):
        assert listening(pubsub) == {"a", "c"}
    assert listening(pubsub) == {"a"}
    pubsub.unlisten()
    assert listening(pubsub) == set()


def test_unlisten_keeps_the_channels_subscriptions_want(pg: Server,
                                                       connect: Callable[..., Any]) -> None:
    """The client's own unlisten() (of one channel, or of all) leaves alone what a
    subscription still listens to."""
    pubsub = connect()
    with pubsub.subscribe("a") as subscription:
        pubsub.listen("a")
        pubsub.listen("b")
        pubsub.unlisten("a")
        assert listening(pubsub) == {"a", "b"}
        pubsub.listen("a")
        pubsub.unlisten()
        assert listening(pubsub) == {"a"}
        assert pubsub.channels == set()
        pid = psql_notify(pg, ("a", "1"), ("b", "2"))
        assert take(subscription, 1) == [Notify(pid, "a", "1")]
        assert pubsub.get_event() is None  # the client itself listens to nothing now
    assert listening(pubsub) == set()


def test_verify_while_subscriptions_are_open(pg: Server, connect: Callable[..., Any]) -> None:
    """verify()'s own notification comes in through the fan-out: it is kept for verify() and
    shown to nobody, and the subscriptions and the client's queue get the rest as usual."""
    pubsub = connect()
    with pubsub.subscribe("v") as subscription:
        with stopwatch() as clock:
            pubsub.listen("v", verify=True)
            pubsub.verify(timeout=GUARD)
        assert clock.elapsed < LATE  # it came back at once (not found at the timeout)
        assert listening(pubsub) == {"v"}  # the private channel is gone again
        pid = psql_notify(pg, ("v", "1"))
        assert take(subscription, 1) == [Notify(pid, "v", "1")]
        assert pubsub.get_event(GUARD) == Notify(pid, "v", "1")
        assert subscription.get(0.05) is None and pubsub.get_event() is None


def test_each_notification_goes_to_every_subscription_of_its_channel_in_order(
    pg: Server, connect: Callable[..., Any]
) -> None:
    pubsub = connect()
    with pubsub.subscribe("a") as only_a, pubsub.subscribe("a", "b") as both, \
            pubsub.subscribe("b") as only_b:
        pid = psql_notify(pg, ("a", "1"), ("b", "2"), ("c", "3"), ("a", "4"))
        assert take(only_a, 2) == [Notify(pid, "a", "1"), Notify(pid, "a", "4")]
        assert take(both, 3) == [Notify(pid, "a", "1"), Notify(pid, "b", "2"),
                                 Notify(pid, "a", "4")]
        assert take(only_b, 1) == [Notify(pid, "b", "2")]
        assert only_a.get(0.05) is None and only_b.get(0.05) is None
        assert pubsub.get_event() is None  # not for the client's own queue


def test_what_came_for_a_closed_subscription_is_not_handed_to_a_later_one(
    pg: Server, connect: Callable[..., Any]
) -> None:
    pubsub = connect()
    first = pubsub.subscribe("late")
    psql_notify(pg, ("late", "old"))
    wait_for(lambda: first.get_events(0) is not None, GUARD)
    psql_notify(pg, ("late", "unread"))
    first.close()
    with pubsub.subscribe("late") as later:
        pid = psql_notify(pg, ("late", "new"))
        assert take(later, 1) == [Notify(pid, "late", "new")]
        assert later.get(0.05) is None


def test_a_reconnection_is_marked_in_every_subscription(pg: Server,
                                                        connect: Callable[..., Any]) -> None:
    pubsub = connect(reconnect=ReconnectPolicy(initial_delay=0.01))
    with pubsub.subscribe("r1") as one, pubsub.subscribe("r2") as two:
        old = pubsub.conn.get_backend_pid()
        pg.psql(f"SELECT pg_terminate_backend({old})")
        for subscription in (one, two):
            event = subscription.get(GUARD)
            assert isinstance(event, Reconnected), event
        assert listening(pubsub) == {"r1", "r2"}  # listened to again
        pid = psql_notify(pg, ("r1", "after"), ("r2", "after"))
        assert take(one, 1) == [Notify(pid, "r1", "after")]
        assert take(two, 1) == [Notify(pid, "r2", "after")]


@pytest.mark.parametrize("first", ["subscription", "client"])
def test_a_loss_seen_while_nobody_waits_is_marked_at_the_next_wait_at_once(
    pg: Server, connect: Callable[..., Any], first: str
) -> None:
    """The connection is lost while no call waits on it (the asyncio client sees it at once,
    and reconnects in the next wait; the blocking client's reader thread reconnects at once).
    The next wait hands over the Reconnected marker at once, not at the end of its timeout."""
    pubsub = connect(reconnect=ReconnectPolicy(initial_delay=0.01))
    pubsub.listen("own")
    with pubsub.subscribe("r") as subscription:
        old = pubsub.conn.get_backend_pid()
        pg.psql(f"SELECT pg_terminate_backend({old})")
        wait_for(lambda: pubsub.conn.closed == 2 or pubsub.conn.get_backend_pid() != old,
                 GUARD, message="the loss to be seen")
        # 10 s: far above LATE, and a wait that runs to its end fails sooner than at GUARD.
        waits = [lambda: subscription.get(10), lambda: pubsub.get_event(10)]
        with stopwatch() as clock:
            for wait in waits if first == "subscription" else reversed(waits):
                event = wait()
                assert isinstance(event, Reconnected), event
        assert clock.elapsed < LATE


def test_a_subscriber_that_never_reads_slows_nobody_and_says_what_it_lost(
    pg: Server, connect: Callable[..., Any]
) -> None:
    pubsub = connect()
    with pubsub.subscribe("slow", max_pending=10) as idle, \
            pubsub.subscribe("slow", max_pending=10, overflow="raise") as strict, \
            pubsub.subscribe("slow", max_pending=5000) as busy:
        pg.psql("SELECT pg_notify('slow', i::text) FROM generate_series(1, 3000) i")
        got: List[Any] = []
        while len(got) < 3000:
            got += busy.get_events(GUARD) or []
        assert [e.payload for e in got] == [str(i) for i in range(1, 3001)]
        first = idle.get(GUARD)
        assert first == Dropped(2990)
        assert [e.payload for e in take(idle, 10)] == [str(i) for i in range(2991, 3001)]
        assert [e.payload for e in take(strict, 10)] == [str(i) for i in range(1, 11)]
        with pytest.raises(PendingOverflow) as lost:
            strict.get(GUARD)
        assert lost.value.lost == 2990


def test_callbacks_run_in_arrival_order_and_survive_one_that_raises(
    pg: Server, connect: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    pubsub = connect()
    seen: List[str] = []
    done = threading.Event()

    def broken(event: Any) -> None:
        raise RuntimeError("this callback is broken")

    def record(event: Any) -> None:
        seen.append(f"{event.channel}:{event.payload}")
        if event.payload == "last":
            done.set()

    with caplog.at_level(logging.ERROR, logger="pgwire_pubsub"):
        pubsub.add_listener("x", broken)
        pubsub.add_listener("x", record)
        pubsub.add_listener("y", record)
        assert listening(pubsub) == {"x", "y"}
        psql_notify(pg, ("x", "1"), ("y", "2"), ("x", "3"), ("y", "last"))
        assert done.wait(GUARD)
    assert seen == ["x:1", "y:2", "x:3", "y:last"]
    assert "this callback is broken" in caplog.text
    pubsub.remove_listener("x", broken)
    pubsub.remove_listener("x", record)
    assert listening(pubsub) == {"y"}
    pubsub.remove_listener("y", record)
    assert listening(pubsub) == set()


@pytest.mark.parametrize("client_kind", ["asyncio"])  # coroutine callbacks are asyncio's
def test_a_coroutine_function_is_awaited_as_a_callback(pg: Server,
                                                       connect: Callable[..., Any]) -> None:
    pubsub = connect()
    seen: List[str] = []
    done = threading.Event()

    async def record(event: Any) -> None:
        seen.append(event.payload)
        if event.payload == "2":
            done.set()

    pubsub.add_listener("co", record)
    psql_notify(pg, ("co", "1"), ("co", "2"))
    assert done.wait(GUARD)
    assert seen == ["1", "2"]


def test_concurrent_opens_and_closes_leave_listen_equal_to_what_is_open(
    connect: Callable[..., Any]
) -> None:
    pubsub = connect()
    rng = random.Random(7)
    open_now: Dict[int, Any] = {}
    lock = threading.Lock()
    failures: List[BaseException] = []

    def work(worker: int) -> None:
        try:
            for step in range(25):
                key = worker * 100 + step
                channels = rng.sample(["c1", "c2", "c3", "c4", "c5"], rng.randint(1, 3))
                subscription = pubsub.subscribe(*channels)
                with lock:
                    open_now[key] = subscription
                    victim = rng.choice(list(open_now)) if rng.random() < 0.6 else None
                    closing = open_now.pop(victim) if victim is not None else None
                if closing is not None:
                    closing.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert not failures
    wanted = {c for subscription in open_now.values() for c in subscription.channels}
    assert listening(pubsub) == wanted
    for subscription in open_now.values():
        subscription.close()
    assert listening(pubsub) == set()


def test_commands_from_other_threads_while_subscribers_wait(
    pg: Server, connect: Callable[..., Any]
) -> None:
    pubsub = connect()
    with pubsub.subscribe("t") as subscription:
        received: List[Any] = []

        def consume() -> None:
            for event in subscription:
                received.append(event.payload)
                if len(received) == 200:
                    return

        consumer = threading.Thread(target=consume)
        consumer.start()
        senders = [threading.Thread(target=lambda n=n: [pubsub.notify("t", f"{n}.{i}")
                                                       for i in range(50)])
                   for n in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(GUARD)
        consumer.join(GUARD)
        assert len(received) == 200
        for n in range(4):  # each sender's own notifications in its order
            mine = [p for p in received if p.startswith(f"{n}.")]
            assert mine == [f"{n}.{i}" for i in range(50)]


def test_ten_thousand_subscribers_get_a_burst_of_100000_exactly(
    pg: Server, connect: Callable[..., Any]
) -> None:
    pubsub = connect()
    subscribers = [pubsub.subscribe("fan", max_pending=100_000) for _ in range(10_000)]
    listener = subscribers[0]
    pg.psql("SELECT pg_notify('fan', i::text) FROM generate_series(1, 100000) i")
    reference: List[Any] = []
    while len(reference) < 100_000:
        reference += listener.get_events(GUARD) or []
    assert [e.payload for e in reference] == [str(i) for i in range(1, 100_001)]
    for subscriber in subscribers[1:]:
        taken = 0
        while taken < 100_000:
            batch = subscriber.get_events(GUARD)
            assert batch is not None
            if taken == 0 and len(batch) == 100_000:
                assert batch == reference  # all at once: no copy of the reference
            else:
                assert batch == reference[taken : taken + len(batch)]
            taken += len(batch)
        assert subscriber.get_events() is None
    for subscriber in subscribers:
        subscriber.close()
    assert listening(pubsub) == set()


def test_a_close_cancelled_while_it_unlistens_leaves_later_subscriptions_listening(
    pg: Server,
) -> None:
    """A web server cancels a stream's task when its client goes, often while the stream's
    subscription is closing: the UNLISTEN may have run on the server or not, and the next
    subscription to that channel must LISTEN again, not trust a stale record and hear
    nothing."""
    async def main() -> None:
        pubsub = await pgwire_pubsub.aio.connect(**pg.dsn_kwargs(sslmode="disable"))
        async with pubsub:
            first = await pubsub.subscribe("cancelled")
            closing = asyncio.ensure_future(first.close())
            while pubsub.conn.machine.state is not State.BUSY:  # the UNLISTEN is sent
                await asyncio.sleep(0)
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
            async with pubsub.subscribe("cancelled") as later:
                rows = await pubsub.conn.execute("SELECT pg_catalog.pg_listening_channels()")
                assert rows == [("cancelled",)]
                loop = asyncio.get_running_loop()
                pid = await loop.run_in_executor(None, psql_notify, pg, ("cancelled", "heard"))
                assert await later.get(GUARD) == Notify(pid, "cancelled", "heard")

    asyncio.run(asyncio.wait_for(main(), GUARD))


def test_closing_the_asyncio_client_ends_every_subscription_that_waits(pg: Server) -> None:
    async def main() -> None:
        pubsub = await pgwire_pubsub.aio.connect(**pg.dsn_kwargs(sslmode="disable"))
        subscription = await pubsub.subscribe("ending")

        async def iterate() -> List[Any]:
            return [event async for event in subscription]

        waiting = [asyncio.ensure_future(iterate()),
                   asyncio.ensure_future(subscription.get()),
                   asyncio.ensure_future(subscription.get_events(None))]
        for _ in range(5):  # each task runs until it waits for input
            await asyncio.sleep(0)
        assert not any(task.done() for task in waiting)
        await pubsub.close()
        assert await asyncio.gather(*waiting) == [[], None, None]

    asyncio.run(asyncio.wait_for(main(), GUARD))


def test_an_arrival_wakes_only_the_asyncio_subscriptions_it_concerns(pg: Server) -> None:
    """With 10,000 subscriptions on one connection, waking each of them for every arrival
    (as plain waiters on the connection are) costs milliseconds a notification."""
    async def main() -> None:
        pubsub = await pgwire_pubsub.aio.connect(**pg.dsn_kwargs(sslmode="disable"))
        waits: Dict[str, int] = {"quiet": 0, "busy": 0}
        wait = pubsub._reader_input

        async def counted(reader: Any, timeout: Any) -> None:
            waits[next(iter(reader.feed.channels))] += 1
            await wait(reader, timeout)

        pubsub._reader_input = counted  # type: ignore[method-assign]
        async with pubsub, pubsub.subscribe("quiet") as quiet, \
                pubsub.subscribe("busy") as busy:
            quiet_task = asyncio.ensure_future(quiet.get())
            for n in range(3):
                got = asyncio.ensure_future(busy.get())
                await pubsub.notify("busy", str(n))
                assert (await got).payload == str(n)  # type: ignore[union-attr]
            assert waits == {"quiet": 1, "busy": 3}
            await pubsub.notify("quiet", "at last")
            assert (await quiet_task).payload == "at last"  # type: ignore[union-attr]

    asyncio.run(asyncio.wait_for(main(), GUARD))
