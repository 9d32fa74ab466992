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

    Markers in the queue do not count toward the bound.  The queue is changed so that
    an interrupt cannot leave a loss without its marker (see _dropping.py).
    """

    def __init__(self, max_pending: int, policy: str = "raise") -> None:
        check_bound_options(max_pending, policy)
        self.max_pending = max_pending
        self.policy = policy

    def enforce(self, queue: Pending) -> None:
        size = len(queue)
        if size <= self.max_pending:
            return  # markers do not count: nothing over the bound
        from . import _dropping  # here: it imports this module

        excess = size - _dropping.markers(queue) - self.max_pending
        if excess <= 0:
            return
        if self.policy == "raise":
            _dropping.drop_newest(queue, excess)
        else:
            _dropping.drop_oldest(queue, excess)

    def take(self, item: QueueItem) -> Optional[Event]:
        """``item`` as an event; the overflow marker raises ``PendingOverflow``."""
        if type(item) is _Overflowed:
            raise PendingOverflow(item.lost, self.max_pending)
        return item  # type: ignore[return-value]


def check_bound_options(max_pending: Optional[int], policy: str) -> None:
    if policy not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}: {policy!r}")
    if max_pending is not None and (not isinstance(max_pending, int) or max_pending < 1):
        raise ValueError(f"max_pending must be a whole number of at least 1, not {max_pending!r}")
