"""What the event stream can hold besides notifications: markers of gaps, and the bound.

Markers appear only with options that ask for them (``reconnect``,
``max_pending``), so code written for pgpubsub sees plain ``Notify`` events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Optional, Union

from ..errors import Error
from .messages import Notify

if TYPE_CHECKING:
    from .pending import Pending


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
    """Keeps a notification queue within ``max_pending``, never losing silently.

    Markers in the queue do not count toward the bound; ``markers`` counts
    them (whoever queues a marker calls ``marker_added``; ``take`` sees them go).
    """

    def __init__(self, max_pending: int, policy: str = "raise") -> None:
        check_bound_options(max_pending, policy)
        self.max_pending = max_pending
        self.policy = policy
        self.markers = 0

    def marker_added(self) -> None:
        self.markers += 1

    def enforce(self, queue: Pending) -> None:
        excess = len(queue) - self.markers - self.max_pending
        if excess <= 0:
            return
        if self.policy == "raise":
            self._drop_newest(queue, excess)
        else:
            self._drop_oldest(queue, excess)

    def _drop_newest(self, queue: Pending, excess: int) -> None:
        lost = 0
        kept_markers = []
        while queue and (lost < excess or isinstance(queue[-1], _Overflowed)):
            item = queue.pop()
            if type(item) is Notify:
                lost += 1
            elif isinstance(item, _Overflowed):  # merge: the loss goes on at the same point
                lost += item.lost
                self.markers -= 1
            else:
                kept_markers.append(item)  # a reconnection stays visible
        queue.extend(reversed(kept_markers))
        queue.append(_Overflowed(lost))
        self.markers += 1

    def _drop_oldest(self, queue: Pending, excess: int) -> None:
        dropped = 0
        kept_markers = []
        while queue and (excess > 0 or type(queue[0]) is Dropped):
            item = queue.popleft()
            if isinstance(item, Dropped):
                dropped += item.dropped
                self.markers -= 1
            elif type(item) is Notify:
                dropped += 1
                excess -= 1
            else:
                kept_markers.append(item)  # a reconnection stays visible
        for marker in reversed(kept_markers):
            queue.appendleft(marker)
        queue.appendleft(Dropped(dropped))
        self.markers += 1

    def take(self, item: QueueItem) -> Optional[Event]:
        """``item`` as an event; the overflow marker raises ``PendingOverflow``."""
        if type(item) is Notify:
            return item
        self.markers -= 1
        if isinstance(item, _Overflowed):
            raise PendingOverflow(item.lost, self.max_pending)
        return item


def check_bound_options(max_pending: Optional[int], policy: str) -> None:
    if policy not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}: {policy!r}")
    if max_pending is not None and (not isinstance(max_pending, int) or max_pending < 1):
        raise ValueError(f"max_pending must be a whole number of at least 1, not {max_pending!r}")
