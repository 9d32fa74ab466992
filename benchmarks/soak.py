"""Soak: one listener with reconnect=True takes a long stream of notifications while its
backend is terminated every few batches; reports delivery, losses, markers and memory.

    python benchmarks/soak.py [--count 1000000] [--batch 2000] [--window 4]
                              [--terminate-every 5] [--max-seconds 1800] [--dsn DSN]

A sender pushes the payloads 1..COUNT in batches (one statement each), running at most
WINDOW batches ahead of the listener.  Every TERMINATE_EVERY batches it terminates the
listener's backend (pg_terminate_backend) while the stream flows, sends the next batch at
once, and then waits for the Reconnected marker.  What the old backend had not yet written
to the socket, and a batch committed before the new backend's LISTEN, are lost by design
(PostgreSQL delivers at most once, to the backends listening at commit).  Every gap in the
sequence must follow a Reconnected marker; duplicates and reordering must never happen.

Without --dsn a throwaway cluster is started with the test fixtures' helper.
Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the checkout

import pgwire_pubsub
from pgwire_pubsub import Notify, Reconnected, ReconnectPolicy
from pgwire_pubsub._blocking.connection import connect_raw

CHANNEL = "soak"
CONTROL = "soak_control"
WAIT = 60.0  # seconds the sender waits for the listener before calling it stuck


def rss_kib() -> int:
    """The resident set size now (VmRSS), in KiB; the peak where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


class Listener:
    """Takes events in a thread of its own and checks the stream as it goes."""

    def __init__(self, dsn: str) -> None:
        policy = ReconnectPolicy(initial_delay=0.05, max_delay=1.0, max_duration=WAIT)
        self.pubsub = pgwire_pubsub.connect(dsn, reconnect=policy)
        self.pubsub.listen(CHANNEL)
        self.pubsub.listen(CONTROL)
        self.pid = self.pubsub.conn.get_backend_pid()
        self.received = 0
        self.last = 0  # the highest sequence number taken
        self.markers = 0
        self.gaps = 0
        self.gaps_without_marker = 0
        self.lost_in_gaps = 0
        self.disorder = 0  # duplicates or numbers going backwards: must stay 0
        self.down: List[float] = []
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self._changed = threading.Condition()
        self._target = 0
        self.thread = threading.Thread(target=self._run, name="listener", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        marker_since_last = False
        try:
            for event in self.pubsub.events(select_timeout=1.0):
                if type(event) is Notify:
                    if event.channel == CONTROL:
                        self.done.set()
                        continue
                    seq = int(event.payload)
                    if seq <= self.last:
                        self.disorder += 1
                        continue
                    if seq != self.last + 1:
                        self.gaps += 1
                        self.lost_in_gaps += seq - self.last - 1
                        if not marker_since_last:
                            self.gaps_without_marker += 1
                    self.last = seq
                    self.received += 1
                    marker_since_last = False
                    if seq >= self._target:
                        with self._changed:
                            self._changed.notify_all()
                elif isinstance(event, Reconnected):
                    self.markers += 1
                    self.pid = event.pid
                    self.down.append(event.down_seconds)
                    marker_since_last = True
                    with self._changed:
                        self._changed.notify_all()
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            with self._changed:
                self._changed.notify_all()

    def wait_for_seq(self, seq: int, timeout: float = WAIT) -> bool:
        with self._changed:
            self._target = seq
            return self._changed.wait_for(
                lambda: self.last >= seq or self.error is not None, timeout
            )

    def wait_for_markers(self, markers: int, timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: self.markers >= markers or self.error is not None, timeout
            )

    def stop(self) -> None:
        self.pubsub.close()  # safe from another thread: ends events()
        self.thread.join(WAIT)


def run(
    dsn: str, count: int, batch: int, window: int, terminate_every: int, max_seconds: float
) -> int:
    listener = Listener(dsn)
    sender = connect_raw(dsn)
    rss_start = rss_kib()
    samples: List[int] = []
    listener.start()
    started = time.monotonic()
    deadline = started + max_seconds
    sent = batches = terminated = 0
    stuck = timed_out = gap_batch = False
    while sent < count:
        if time.monotonic() >= deadline:
            timed_out = True
            break
        size = min(batch, count - sent)
        sender.execute(
            f"SELECT pg_notify('{CHANNEL}', i::text) "
            f"FROM generate_series({sent + 1}, {sent + size}) i"
        )
        sent += size
        batches += 1
        if gap_batch:
            # This batch went out while the listener was down or reconnecting.
            gap_batch = False
            ok = listener.wait_for_markers(terminated)
        elif batches % terminate_every == 0 and sent + batch < count:
            sender.execute(f"SELECT pg_terminate_backend({listener.pid})")
            terminated += 1
            gap_batch = True
            ok = True
        elif sent < count:
            ok = listener.wait_for_seq(sent - window * batch)
        else:
            ok = listener.wait_for_seq(sent)
        if not ok or listener.error is not None:
            stuck = True
            break
        if batches % max(1, (count // batch) // 10) == 0:
            samples.append(rss_kib())
    # The end: a control notification, repeated until it is seen (the listener may be
    # reconnecting when the first one goes out).
    while not listener.done.is_set() and listener.error is None and not stuck:
        sender.execute(f"SELECT pg_notify('{CONTROL}', 'done')")
        if listener.done.wait(0.5) or time.monotonic() >= deadline + WAIT:
            break
    elapsed = time.monotonic() - started
    rss_end = rss_kib()
    listener.stop()
    sender.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kib = peak // 1024 if sys.platform == "darwin" else peak

    lost = sent - listener.received
    down = sorted(listener.down)
    print(f"sent                {sent:,} in {batches} batches of up to {batch:,}")
    print(f"received            {listener.received:,} ({listener.received / elapsed:,.0f}/s)")
    print(f"lost by design      {lost:,} (in {listener.gaps} gaps, all at reconnections)")
    print(f"terminations        {terminated}")
    print(f"Reconnected markers {listener.markers}")
    if down:
        print(
            f"down seconds        median {down[len(down) // 2]:.3f}, max {down[-1]:.3f} "
            "(noticing the loss to listening again)"
        )
    print(f"gaps without marker {listener.gaps_without_marker} (must be 0)")
    print(f"duplicates/reorder  {listener.disorder} (must be 0)")
    print(f"RSS start / end     {rss_start / 1024:.1f} MiB / {rss_end / 1024:.1f} MiB")
    if samples:
        print(
            f"RSS during run      min {min(samples) / 1024:.1f} MiB, "
            f"max {max(samples) / 1024:.1f} MiB ({len(samples)} samples)"
        )
    print(f"peak RSS            {peak_kib / 1024:.1f} MiB")
    print(f"elapsed             {elapsed:.1f} s")
    problems = []
    if listener.error is not None:
        problems.append(f"listener failed: {listener.error!r}")
    if stuck:
        problems.append(f"the listener fell behind for more than {WAIT:g} s")
    if timed_out:
        problems.append(f"stopped at --max-seconds={max_seconds:g} before sending everything")
    if listener.gaps_without_marker or listener.disorder:
        problems.append("the stream broke its guarantees")
    if lost != listener.lost_in_gaps:
        problems.append(f"{lost - listener.lost_in_gaps} lost after the last notification")
    if listener.markers != terminated:
        problems.append(f"{listener.markers} markers for {terminated} terminations")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="notifications to send")
    parser.add_argument("--batch", type=int, default=2000, help="notifications per batch")
    parser.add_argument(
        "--window", type=int, default=4, help="batches the sender may run ahead of the listener"
    )
    parser.add_argument(
        "--terminate-every", type=int, default=5, help="terminate the listener every N batches"
    )
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="stop sending after")
    parser.add_argument("--dsn", help="an existing server (default: a throwaway cluster)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch < 1 or args.terminate_every < 1 or args.window < 0:
        parser.error("--count, --batch and --terminate-every must be positive, --window not < 0")
    params = (args.count, args.batch, args.window, args.terminate_every, args.max_seconds)
    if args.dsn:
        sys.exit(run(args.dsn, *params))
    from pgwire_pubsub.testing.pgcluster import Cluster

    with Cluster(tls=False) as cluster:
        cluster.start()
        status = run(cluster.dsn("postgres"), *params)
    sys.exit(status)


if __name__ == "__main__":
    main()
