"""Timing assertions from both sides: a timeout fires no earlier than it should, and not much
later.

    with stopwatch() as clock, pytest.raises(OperationalError):
        pgwire_pubsub.connect(..., connect_timeout=1)
    assert_on_time(clock.elapsed, 1.0, "connect_timeout")

The lower bound is tight (less a clock tick): the clock starts before the call, and every
deadline the library keeps is taken from ``time.monotonic()`` inside it, so an elapsed time
below the timeout means the timeout fired early.  The upper bound leaves ``LATE`` seconds for
a loaded machine (2 shared cores, several test suites at once), and is still below any
mistaken multiple of the timeouts the tests use: a 1 s timeout taken 4 times over (or 3)
ends after 4 s (3 s), past 1 + ``LATE``.

``watchdog(pubsub, seconds)`` closes a PubSub from another thread when a call has not ended
by then, so that a timeout that never fires fails the test (the call raises
``InterfaceError``) instead of hanging it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator, Optional

from pgwire_pubsub import PubSub

TICK = 0.005  # clock granularity: select() and poll() round to micro- and milliseconds
LATE = 2.0  # seconds a timeout may fire after its due time on a loaded machine
GUARD = 15.0  # seconds after which a call that should have ended is stopped


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.stopped: Optional[float] = None

    @property
    def elapsed(self) -> float:
        end = time.monotonic() if self.stopped is None else self.stopped
        return end - self.started


@contextlib.contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Seconds from entering to leaving the block (raised exceptions included)."""
    clock = Stopwatch()
    try:
        yield clock
    finally:
        clock.stopped = time.monotonic()


def assert_on_time(elapsed: float, due: float, what: str = "the timeout",
                   late: float = LATE) -> None:
    """``elapsed`` is no earlier than ``due`` and at most ``late`` seconds after it."""
    assert elapsed >= due - TICK, f"{what} fired after {elapsed:.3f} s, before its {due:g} s"
    assert elapsed <= due + late, (
        f"{what} fired after {elapsed:.3f} s, more than {late:g} s after its {due:g} s"
    )


@contextlib.contextmanager
def watchdog(pubsub: PubSub, seconds: float = GUARD) -> Iterator[None]:
    """Close ``pubsub`` from another thread if the block has not ended after ``seconds``."""
    timer = threading.Timer(seconds, pubsub.close)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
