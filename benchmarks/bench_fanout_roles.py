"""The processes of the fan-out benchmark (``bench_fanout.py`` starts them), each measured
apart from the others:

    python benchmarks/bench_fanout_roles.py listener --conninfo '{...}' --subscribers 10000
    python benchmarks/bench_fanout_roles.py sender --conninfo '{...}' --channels 1000
    python benchmarks/bench_fanout_roles.py client --conninfo '{...}' --client asyncio \\
        --subscribers 10000 --channels 1 --pattern paced --count 20

- ``listener``: the receiving side while a sender's throughput is measured (part 1): one
  asyncio client that LISTENs (``--subscribers 0``: a plain listener) or holds that many
  subscriptions, each read by a task of its own.  It prints ``READY``, then, given
  ``EXPECT n`` on its input, drains until each reader has n notifications and prints
  ``RESULT {json}``.
- ``idle``: connections that LISTEN, each on a channel of its own, and do nothing else.
- ``sender``: one transaction with one notification on each channel per line of input.
- ``client``: the client's cost (part 2): subscriptions spread over channels, and the CPU
  time of this process (every thread) to deliver a burst, or one notification per channel
  at a time, to all of them.  Prints ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # the checkout's pgwire_pubsub, installed or not

import pgwire_pubsub  # noqa: E402
import pgwire_pubsub.aio  # noqa: E402

CHANNEL = "bench"
STALL = 120.0  # seconds without the expected deliveries that make a run fail, not hang


def channel_names(count: int) -> List[str]:
    return [CHANNEL] if count == 1 else [f"fan_{i}" for i in range(count)]


def emit(result: Dict[str, Any]) -> None:
    print("RESULT " + json.dumps(result), flush=True)


# -- part 1: the listener's side -------------------------------------------------------------


async def listener(conninfo: Dict[str, Any], subscribers: int) -> None:
    pubsub = await pgwire_pubsub.aio.connect(**conninfo)
    counts = [0] * max(1, subscribers)
    progress = asyncio.Event()

    async def plain() -> None:
        while True:
            counts[0] += len(await pubsub.get_events(None) or ())
            progress.set()

    async def subscriber(index: int, subscription: Any) -> None:
        async with subscription:
            while True:
                counts[index] += len(await subscription.get_events(None) or ())
                progress.set()

    if subscribers == 0:
        await pubsub.listen(CHANNEL)  # before READY, as the subscriptions below
        tasks = [asyncio.ensure_future(plain())]
    else:
        subscriptions = [await pubsub.subscribe(CHANNEL, max_pending=1_000_000)
                         for _ in range(subscribers)]
        tasks = [asyncio.ensure_future(subscriber(i, s)) for i, s in enumerate(subscriptions)]
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    expected = int(line.split()[1])
    while min(counts) < expected:
        progress.clear()
        await asyncio.wait_for(progress.wait(), STALL)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    emit({"received": min(counts), "readers": len(counts)})
    await pubsub.close()


async def idle(conninfo: Dict[str, Any], count: int) -> None:
    """``count`` connections that each LISTEN on a channel of its own, and nothing else,
    until the input ends (asyncio: a blocking client's select() takes no fd over 1023)."""
    held = []
    for number in range(count):
        pubsub = await pgwire_pubsub.aio.connect(**conninfo)
        await pubsub.listen(f"idle_{number}")
        held.append(pubsub)
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for pubsub in held:
        await pubsub.close()


# -- part 2: the client's cost ----------------------------------------------------------------


def sender(conninfo: Dict[str, Any], channels: int) -> None:
    names = channel_names(channels)
    with pgwire_pubsub.connect(**conninfo) as pubsub:
        for number, _ in enumerate(sys.stdin):
            pubsub.notify_many((name, str(number)) for name in names)


class Clock:
    """This process's CPU time and the wall-clock time of a measured stretch."""

    def __init__(self) -> None:
        self.cpu = time.process_time()
        self.wall = time.perf_counter()

    def result(self, deliveries: int, **extra: Any) -> Dict[str, Any]:
        cpu, wall = time.process_time() - self.cpu, time.perf_counter() - self.wall
        return {"deliveries": deliveries, "cpu_s": cpu, "wall_s": wall,
                "cpu_ns_per_delivery": cpu / deliveries * 1e9, **extra}


def burst_sql(count: int, channels: int) -> str:
    channel = f"'{CHANNEL}'" if channels == 1 else f"'fan_' || (i % {channels})"
    return (f"SELECT count(pg_notify({channel}, lpad(i::text, 64, 'x'))) "
            f"FROM generate_series(1, {count}) i")


class Senders:
    """What makes the notifications: another connection here (a burst, committed while the
    clock runs: one round trip), or a sender process (paced: one line per round)."""

    def __init__(self, conninfo: Dict[str, Any], pattern: str, count: int,
                 channels: int) -> None:
        self.pattern = pattern
        if pattern == "burst":
            self.conn = pgwire_pubsub.connect(**conninfo)
            self.conn.conn.execute("BEGIN")
            self.conn.conn.execute(burst_sql(count, channels))
        else:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "sender", "--conninfo", json.dumps(conninfo),
                 "--channels", str(channels)], stdin=subprocess.PIPE, text=True)

    def send(self) -> None:
        if self.pattern == "burst":
            self.conn.conn.execute("COMMIT")
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()

    def close(self) -> None:
        if self.pattern == "burst":
            self.conn.close()
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(STALL)


def plan(subscribers: int, channels: int, pattern: str, count: int) -> Dict[str, int]:
    """Rounds, and what each subscription receives in each."""
    if pattern == "burst":
        return {"rounds": 1, "each": count // channels}
    return {"rounds": count, "each": 1}


def blocking_client(conninfo: Dict[str, Any], subscribers: int, channels: int, pattern: str,
                    count: int) -> None:
    names = channel_names(channels)
    steps = plan(subscribers, channels, pattern, count)
    with pgwire_pubsub.connect(**conninfo) as pubsub:
        subs = [pubsub.subscribe(names[i % channels], max_pending=max(1000, steps["each"]))
                for i in range(subscribers)]
        senders = Senders(conninfo, pattern, count, channels)
        clock = Clock()
        for _ in range(steps["rounds"]):
            senders.send()
            for sub in subs:  # one thread takes from every subscription
                taken = 0
                while taken < steps["each"]:
                    batch = sub.get_events(STALL)
                    assert batch is not None, "stalled"
                    taken += len(batch)
        result = clock.result(steps["rounds"] * steps["each"] * subscribers)
        senders.close()
        for sub in subs:
            sub.close()
    emit(result)


async def asyncio_client(conninfo: Dict[str, Any], subscribers: int, channels: int,
                         pattern: str, count: int) -> None:
    names = channel_names(channels)
    steps = plan(subscribers, channels, pattern, count)
    pubsub = await pgwire_pubsub.aio.connect(**conninfo)
    subs = [await pubsub.subscribe(names[i % channels], max_pending=max(1000, steps["each"]))
            for i in range(subscribers)]
    done = asyncio.Event()
    state = {"delivered": 0, "target": 0}

    async def read(sub: Any) -> None:  # a task per subscription, as a web server has
        while True:
            batch = await sub.get_events(None)
            if batch is None:
                return
            state["delivered"] += len(batch)
            if state["delivered"] >= state["target"]:
                done.set()

    tasks = [asyncio.ensure_future(read(sub)) for sub in subs]
    await asyncio.sleep(0)  # every task is waiting before the clock starts
    senders = Senders(conninfo, pattern, count, channels)
    clock = Clock()
    for _ in range(steps["rounds"]):
        state["target"] += steps["each"] * subscribers
        done.clear()
        senders.send()
        await asyncio.wait_for(done.wait(), STALL)
    result = clock.result(state["delivered"])
    senders.close()
    await pubsub.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    emit(result)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="A process of the fan-out benchmark.")
    parser.add_argument("role", choices=["listener", "idle", "sender", "client"])
    parser.add_argument("--conninfo", required=True, help="connection keywords, as JSON")
    parser.add_argument("--subscribers", type=int, default=1,
                        help="listener: 0 for a plain listener; idle: connections")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--client", choices=["blocking", "asyncio"], default="asyncio")
    parser.add_argument("--pattern", choices=["burst", "paced"], default="burst")
    parser.add_argument("--count", type=int, default=1000,
                        help="burst: notifications; paced: rounds")
    args = parser.parse_args(argv)
    conninfo = {"sslmode": "disable", **json.loads(args.conninfo)}
    if args.role == "listener":
        asyncio.run(listener(conninfo, args.subscribers))
    elif args.role == "idle":
        asyncio.run(idle(conninfo, args.subscribers))
    elif args.role == "sender":
        sender(conninfo, args.channels)
    elif args.client == "blocking":
        blocking_client(conninfo, args.subscribers, args.channels, args.pattern, args.count)
    else:
        asyncio.run(asyncio_client(conninfo, args.subscribers, args.channels, args.pattern,
                                   args.count))


if __name__ == "__main__":
    main()
