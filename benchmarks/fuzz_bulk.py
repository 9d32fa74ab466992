"""Differential fuzzer of the decoder's bulk path: random streams decoded with long runs taken
many at a time (protocol/_bulk.py) and one message at a time must give the same result.

    python benchmarks/fuzz_bulk.py --count 100000 [--seed 1] [--out FILE]

Each input is a few runs of NotificationResponses (each run from one sender, some long), now
and then another message, with senders whose pid and channel bytes collide with the bytes
around them (a pid that reads as a message type and length, a channel named "A"), payloads
that end with their sender's own pid and channel (so that every bulk try fails), of one
length or of many; a third of them with bytes changed at random places.  Each is cut into
chunks at random, and decoded both ways, with and without a queue of pending notifications
(the receive path's form).  Any difference (in what is delivered, or in the error raised)
stops the run with the input.  The last line says how many inputs agreed.

tests/test_bulk.py runs the same comparison under hypothesis, a few hundred inputs per run.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import struct
import subprocess
import sys
import time
from datetime import date
from typing import List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from test_bulk import decode

from pgwire_pubsub.testing.wirebytes import command_complete, notify, ready, split

# (pid, channel): ordinary ones, and ones whose bytes read as a header ('A', then a length)
# or hold the bytes a trailer does.
SENDERS: List[Tuple[int, str]] = [
    (4321, "bench"),
    (4321, "other"),
    (77, "bench"),
    (2**24 + 5, "bench"),
    (struct.unpack("!i", b"A\0\0\0")[0], "A"),
    (struct.unpack("!i", b"\0\0\0\x0f")[0], "A"),
    (struct.unpack("!i", b"xAxA")[0], "x"),
    (struct.unpack("!i", b"ABCD")[0], "c"),
]
ALPHABET = "xA\x0f\x01é€😀" + "".join(chr(c) for c in range(32, 127, 7))


def payload(rng: random.Random, pid: int, channel: str, size: int) -> str:
    text = "".join(rng.choice(ALPHABET) for _ in range(size))
    tail = struct.pack("!i", pid) + channel.encode()
    if 0 not in tail and rng.random() < 0.2:
        text += tail.decode("latin-1")  # ends with its own source, less the NUL
    return text


def stream(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 5)):
        pid, channel = rng.choice(SENDERS)
        count = rng.choice([1, 2, rng.randint(3, 20), rng.randint(20, 120)])
        if rng.random() < 0.5:
            size = rng.randint(0, 12)
            payloads = [payload(rng, pid, channel, size) for _ in range(count)]
        else:
            payloads = [payload(rng, pid, channel, rng.randint(0, 40)) for _ in range(count)]
        parts += [notify(pid, channel, p) for p in payloads]
        if rng.random() < 0.3:
            parts.append(rng.choice([command_complete("NOTIFY"), ready()]))
    data = b"".join(parts)
    if rng.random() < 0.33:
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            value = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            data = data[:at] + value + data[at + len(value) :]
    return data


def chunks_of(rng: random.Random, data: bytes) -> List[bytes]:
    if rng.random() < 0.3:
        size = rng.randint(1, 64)
        return [data[i : i + size] for i in range(0, len(data), size)]
    return split(data, [rng.randrange(len(data) + 1) for _ in range(rng.randint(0, 6))])


def commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs to try")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="also append the summary to this file")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.monotonic()
    for n in range(1, args.count + 1):
        data = stream(rng)
        chunks = chunks_of(rng, data)
        with_pending = rng.random() < 0.5
        plain = decode(chunks, with_pending, sys.maxsize)
        for bulk_after in (2, 8):
            if decode(chunks, with_pending, bulk_after) != plain:
                print(f"input {n} (seed {args.seed}) differs with bulk after {bulk_after}, "
                      f"pending={with_pending}:\n{[c.hex() for c in chunks]}")
                return 1
        if n % 100_000 == 0:
            print(f"{n:,} inputs agree ({time.monotonic() - started:.0f} s)", flush=True)
    summary = (f"{date.today()}, commit {commit()}, {platform.python_implementation()} "
               f"{platform.python_version()}: `python benchmarks/fuzz_bulk.py --count "
               f"{args.count} --seed {args.seed}`: {args.count:,} inputs, each decoded with "
               f"the bulk path (after 2 and after 8 in a row) and without: no difference "
               f"({time.monotonic() - started:.0f} s)")
    print(summary)
    if args.out:
        with open(args.out, "a") as out:
            out.write(summary + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
