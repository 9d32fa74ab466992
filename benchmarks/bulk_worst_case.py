"""What the decoder's bulk path (protocol/_bulk.py) costs against the one-message path, on
bursts of several shapes, including the ones it cannot take.

    python benchmarks/bulk_worst_case.py [--count 200000] [--repeats 5] [--out FILE]

No server: each burst's bytes are built here, fed to a fresh ``Decoder`` in reads of 32 KiB
(as the connection reads) with a queue of pending notifications, and taken out as
``Notify`` tuples (as ``get_events`` does).  CPU time per notification, the median over the
repeats, with the bulk path on (as on CPython) and off (as on PyPy); the ratio is on / off,
so above 1 the bulk path costs more than it saves.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import struct
import sys
import time
from datetime import date
from typing import Callable, Dict, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from pgwire_pubsub._blocking.socketio import RECV_SIZE
from pgwire_pubsub.protocol import decoder as decoder_module
from pgwire_pubsub.protocol.decoder import Decoder
from pgwire_pubsub.protocol.pending import Pending
from pgwire_pubsub.testing.wirebytes import notify

PID, CHANNEL = 4321, "bench"
# A sender whose pid's bytes are text ("ABCD"), so that a payload can end with them.
ODD_PID, ODD_CHANNEL = struct.unpack("!i", b"ABCD")[0], "c"


def benchmark_burst(count: int) -> bytes:
    """The benchmark's: one sender, 64-byte payloads (what lpad(i::text, 64, 'x') gives)."""
    return b"".join(notify(PID, CHANNEL, str(i).rjust(64, "x")) for i in range(count))


def varying_lengths(count: int) -> bytes:
    """One sender, payloads of 6 to 100 bytes."""
    return b"".join(notify(PID, CHANNEL, str(i).rjust(6 + i * 37 % 95, "x"))
                    for i in range(count))


def own_source_at_the_end(count: int) -> bytes:
    """One sender whose 64-byte payloads all end with its own pid and channel bytes: the
    bytes the bulk path splits on turn up inside every payload, so every try fails."""
    return b"".join(notify(ODD_PID, ODD_CHANNEL, str(i).rjust(59, "y") + "ABCDc")
                    for i in range(count))


def blocks_of_nine(count: int) -> bytes:
    """Two senders taking turns, nine notifications each: a try after every eighth."""
    return b"".join(notify(PID if i // 9 % 2 else 77, CHANNEL, str(i).rjust(64, "x"))
                    for i in range(count))


def tiny_runs_broken_by_large(count: int) -> bytes:
    """Runs of 500 one-byte payloads, each ended by a 7,999-byte one and another sender's."""
    block = (b"".join(notify(PID, CHANNEL, "p") for _ in range(500))
             + notify(PID, CHANNEL, "x" * 7999) + notify(77, CHANNEL, "z"))
    return block * max(1, count // 502)


SHAPES: Dict[str, Callable[[int], bytes]] = {
    "one sender, 64-byte payloads (the benchmark's)": benchmark_burst,
    "one sender, payloads of 6 to 100 bytes": varying_lengths,
    "payloads ending with their sender's own pid and channel": own_source_at_the_end,
    "two senders taking turns in blocks of nine": blocks_of_nine,
    "runs of 500 one-byte payloads broken by a 7,999-byte one": tiny_runs_broken_by_large,
}


def decode_all(data: bytes, bulk_after: int) -> float:
    """CPU seconds to decode ``data`` and take every notification out."""
    saved = decoder_module._BULK_AFTER
    decoder_module._BULK_AFTER = bulk_after
    try:
        chunks = [data[i : i + RECV_SIZE] for i in range(0, len(data), RECV_SIZE)]
        decoder, pending = Decoder(), Pending()
        started = time.process_time()
        for chunk in chunks:
            decoder.feed(chunk, pending)
        taken = pending.take_all()
        spent = time.process_time() - started
        assert taken and not decoder.buffered
        return spent
    finally:
        decoder_module._BULK_AFTER = saved


def measure(data: bytes, repeats: int) -> Dict[str, float]:
    count = Decoder().feed(data).__len__()
    on, off = [], []
    for _ in range(repeats):  # interleaved, so that drift hits both alike
        on.append(decode_all(data, 8))
        off.append(decode_all(data, sys.maxsize))
    per = 1e6 / count
    bulk, plain = statistics.median(on) * per, statistics.median(off) * per
    return {"count": count, "bulk_us": bulk, "plain_us": plain, "ratio": bulk / plain}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="notifications per burst")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    lines = [
        f"`python benchmarks/bulk_worst_case.py --count {args.count} --repeats "
        f"{args.repeats}`, {date.today()}, {platform.python_implementation()} "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}",
        "",
        "| burst | notifications | CPU µs each, bulk path on | off | on / off |",
        "|---|---|---|---|---|",
    ]
    for name, build in SHAPES.items():
        m = measure(build(args.count), args.repeats)
        lines.append(f"| {name} | {m['count']:,} | {m['bulk_us']:.3f} | {m['plain_us']:.3f} "
                     f"| {m['ratio']:.2f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as out:
            out.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
