"""The receive path without a server: CPU per notification of the decoder and the pending
queue, on byte streams shaped like the suite's receive workloads.

    python benchmarks/decode_shapes.py [--count 100000] [--rounds 5] [--profile 20]
                                       [--shapes app,trigger,one_sender] [--takes get_events,events]

Each stream is cut into 32 KiB reads, as the driver reads them; every read is fed to a
``Decoder`` into a ``Pending`` queue and then taken, either all at once
(``take_all``, what ``get_events`` does) or one at a time (what each step of ``events()``
does).  No socket, no system call: what remains is the interpreter's
work per notification, the part the decoder and the queue can change.  Shapes:

- ``app``: transactions of 1 to 4 notifications, each from one of 4 senders, on one of
  8 channels, JSON payloads of 60 to 240 bytes (``app_traffic``);
- ``trigger``: one sender on one channel, JSON rows of 60 to 240 bytes
  (``trigger_burst``);
- ``one_sender``: one sender on one channel, 64-byte payloads (``receive_burst``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pgwire_pubsub.protocol.decoder import Decoder
from pgwire_pubsub.protocol.pending import Pending

READ = 1 << 15  # the driver's read size


def notification(pid: int, channel: str, payload: str) -> bytes:
    body = struct.pack("!i", pid) + channel.encode() + b"\0" + payload.encode() + b"\0"
    return b"A" + struct.pack("!i", len(body) + 4) + body


def json_row(rng: random.Random, serial: int, sender: int) -> str:
    """A JSON object of 60 to 240 bytes, like a table row."""
    head = f'{{"id": {serial}, "sender": {sender}, "status": "paid", "note": "'
    size = rng.randint(60, 240)
    return head + "x" * max(0, size - len(head) - 2) + '"}'


def app_stream(count: int, rng: random.Random) -> bytes:
    pids = [rng.randint(1000, 4_000_000) for _ in range(4)]
    channels = [f"app_{i}" for i in range(8)]
    parts: List[bytes] = []
    while len(parts) < count:
        sender = rng.randrange(4)
        for _ in range(min(rng.randint(1, 4), count - len(parts))):
            channel = rng.choice(channels)
            parts.append(notification(pids[sender], channel, json_row(rng, len(parts), sender)))
    return b"".join(parts)


def trigger_stream(count: int, rng: random.Random) -> bytes:
    return b"".join(notification(4242, "bench_rows", json_row(rng, i, 0)) for i in range(count))


def one_sender_stream(count: int, rng: random.Random) -> bytes:
    return b"".join(notification(4242, "bench", str(i).rjust(64, "x")) for i in range(count))


SHAPES: Dict[str, Callable[[int, random.Random], bytes]] = {
    "app": app_stream,
    "trigger": trigger_stream,
    "one_sender": one_sender_stream,
}


def take_all(pending: Pending) -> int:
    return len(pending.take_all())


def take_one_by_one(pending: Pending) -> int:
    """As ``events()`` takes: through the iterator ``ready()`` keeps at the queue's head,
    or ``popleft`` when few wait."""
    taken = 0
    while pending.items:
        ready = pending.ready()
        if ready is None:
            pending.popleft()
            taken += 1
            continue
        for _ in ready:
            taken += 1
    return taken


TAKES: Dict[str, Callable[[Pending], int]] = {"get_events": take_all, "events": take_one_by_one}


def run_once(chunks: List[bytes], take: Callable[[Pending], int]) -> Tuple[float, int]:
    decoder, pending = Decoder(), Pending()
    taken = 0
    start = time.process_time()
    for chunk in chunks:
        decoder.feed(chunk, pending)
        taken += take(pending)
    return time.process_time() - start, taken


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--takes", default=",".join(TAKES))
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile one round of each (cProfile) and print the N hottest")
    args = parser.parse_args(argv)
    for shape in args.shapes.split(","):
        stream = SHAPES[shape](args.count, random.Random(7))
        chunks = [stream[i : i + READ] for i in range(0, len(stream), READ)]
        for name in args.takes.split(","):
            take = TAKES[name]
            run_once(chunks, take)  # warm up (PyPy's JIT too)
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile(time.process_time)
                profiler.runcall(run_once, chunks, take)
                print(f"==== {shape} / {name}")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
                continue
            times = []
            for _ in range(args.rounds):
                cpu, taken = run_once(chunks, take)
                assert taken == args.count, (taken, args.count)
                times.append(cpu / args.count * 1e6)
            print(f"{shape:<11} {name:<11} {statistics.median(times):.3f} us/notification "
                  f"({min(times):.3f}-{max(times):.3f})")


if __name__ == "__main__":
    main()
