"""What the event stream can hold besides notifications: markers of gaps, and the bound.

Markers appear only with options that ask for them (``reconnect``,
``max_pending``), so code written for pgpubsub sees plain ``Notify`` events.
"""

from __future__ import annotations

from typing import Deque, NamedTuple, Optional, Union

from .errors import Error
from .protocol.messages import Notify


class Reconnected(NamedTuple):
    """The connection was lost and re-established here; notifications sent
    while it was down are lost (PostgreSQL delivers at most once)."""

    down_seconds: float  # from noticing the loss to listening again
    pid: int  # the new backend's pid
    attempts: int  # connection attempts it took


class Dropped(NamedTuple):
    """``dropped`` older notifications were dropped here to keep ``max_pending``."""

    dropped: int


class _Overflowed(NamedTuple):
    lost: int


class PendingOverflow(Error):
    """``max_pending`` was reached and ``lost`` notifications were lost at this point."""

    def __init__(self, count: int, bound: int) -> None:
        super().__init__(
            f"{count} notification(s) were lost here: more than max_pending={bound} were "
            "waiting to be taken; take events faster or raise the bound"
        )
        self.lost = count


Event = Union[Notify, Reconnected, Dropped]
QueueItem = Union[Notify, Reconnected, Dropped, _Overflowed]

OVERFLOW_POLICIES = ("raise", "drop-oldest")


class Bound:
    """Keeps a notification queue within ``max_pending``, never losing silently."""

    def __init__(self, max_pending: int, policy: str = "raise") -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending}")
        if policy not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}: {policy!r}")
        self.max_pending = max_pending
        self.policy = policy

    def enforce(self, queue: Deque[QueueItem]) -> None:
        excess = len(queue) - self.max_pending
        if excess <= 0:
            return
        if self.policy == "raise":
            self._drop_newest(queue, excess)
        else:
            self._drop_oldest(queue, excess)

    @staticmethod
    def _drop_newest(queue: Deque[QueueItem], excess: int) -> None:
        lost = 0
        while lost < excess and queue and type(queue[-1]) is Notify:
            queue.pop()
            lost += 1
        tail = queue[-1] if queue else None
        if isinstance(tail, _Overflowed):
            queue.pop()
            lost += tail.lost
        queue.append(_Overflowed(lost))

    @staticmethod
    def _drop_oldest(queue: Deque[QueueItem], excess: int) -> None:
        dropped = 0
        kept_markers = []
        while queue and (excess > 0 or type(queue[0]) is Dropped):
            item = queue.popleft()
            if isinstance(item, Dropped):
                dropped += item.dropped
            elif type(item) is Notify:
                dropped += 1
                excess -= 1
            else:
                kept_markers.append(item)  # a reconnection stays visible
        for marker in reversed(kept_markers):
            queue.appendleft(marker)
        queue.appendleft(Dropped(dropped))

    def take(self, item: QueueItem) -> Optional[Event]:
        """``item`` as an event; the overflow marker raises ``PendingOverflow``."""
        if isinstance(item, _Overflowed):
            raise PendingOverflow(item.lost, self.max_pending)
        return item
