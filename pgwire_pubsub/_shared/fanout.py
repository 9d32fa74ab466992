"""Fan-out: many subscriptions on one connection, with no copy per subscriber.

Subscriptions to the same set of channels share one ``Feed``: a log of what
arrived for them, in order, that each subscription (a ``Reader``) walks with a
cursor of its own.  Delivering a notification to N subscribers is one append,
and N cursor steps when they read; a burst taken in batches costs a slice per
batch.  Each reader keeps its own bound (``max_pending``, ``overflow``), checked
when it reads and whenever the log grows long, so a reader that never reads
pins at most ``max_pending`` entries and slows nobody.

``Hub`` routes what the connection receives: each notification to the feeds of
its channel, to the callbacks registered for it, and to the client's own queue
when the client listens on that channel itself; a marker (``Reconnected``) to
everything.  It counts subscriptions per channel: ``wanted()`` is what the
server must listen on.  Sans-IO: waking the readers is the driver's job.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Deque, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from ..protocol.events import (
    Dropped,
    Event,
    PendingOverflow,
    _Overflowed,
    check_bound_options,
)
from ..protocol.messages import Notify
from ..protocol.pending import Pending

Callback = Callable[[Any], Any]
_TRIM_SLACK = 64  # entries a log may hold beyond twice its largest bound before a trim


class Feed:
    """What arrived for one set of channels, oldest first; ``base`` is the sequence number
    of ``log[0]``, so ``base + len(log)`` is the next one's."""

    __slots__ = ("base", "channels", "limit", "log", "readers")

    def __init__(self, channels: FrozenSet[str]) -> None:
        self.channels = channels
        self.log: List[Any] = []
        self.base = 0
        self.readers: List[Reader] = []
        self.limit = 0  # the largest max_pending of its readers

    @property
    def head(self) -> int:
        return self.base + len(self.log)

    def add(self, item: Any) -> None:
        self.log.append(item)
        if len(self.log) > 2 * self.limit + _TRIM_SLACK:
            self.trim()

    def trim(self) -> None:
        """Let every reader catch up with its bound, then free what no reader needs."""
        head = self.head
        keep_from = head
        for reader in self.readers:
            reader.catch_up(head)
            keep_from = min(keep_from, reader.cursor)
        if keep_from > self.base:
            del self.log[: keep_from - self.base]
            self.base = keep_from


class Reader:
    """One subscription's place in its feed, its bound, and what it holds ready.

    ``ready`` holds events taken out of the feed by a bound's catch-up (markers that
    must stay visible, the oldest notifications under ``raise``), in order before
    what the feed still holds from ``cursor`` on; ``batch`` what the last take brought,
    for a subscription read one event at a time.
    """

    __slots__ = ("batch", "closed", "cursor", "feed", "lost_from", "max_pending", "overflow",
                 "ready")

    def __init__(self, feed: Feed, max_pending: int, overflow: str) -> None:
        check_bound_options(max_pending, overflow)
        self.feed = feed
        self.cursor = feed.head  # only what arrives from now on
        self.max_pending = max_pending
        self.overflow = overflow
        self.ready: Deque[Any] = deque()
        self.lost_from: Optional[int] = None  # raise: everything from here on is lost
        self.batch: Deque[Any] = deque()
        self.closed = False

    @property
    def waiting(self) -> bool:
        """Whether something can be taken now."""
        return (bool(self.batch) or bool(self.ready) or self.cursor < self.feed.head
                or self.lost_from is not None)

    def catch_up(self, head: int) -> None:
        """Apply the bound to what waits beyond ``cursor``: the newest ``max_pending`` stay
        (drop-oldest, with a ``Dropped`` marker where the loss happened), or the oldest
        ``max_pending`` are set aside and everything after them is lost (raise)."""
        if self.lost_from is not None:
            self.cursor = head  # lost at the same point, as long as nobody reads
            return
        excess = head - self.cursor - self.max_pending
        if excess <= 0:
            return
        log, base = self.feed.log, self.feed.base
        if self.overflow == "drop-oldest":
            stop = self.cursor + excess
            skipped = log[self.cursor - base : stop - base]
            markers = [item for item in skipped if type(item) is not Notify]
            dropped = len(skipped) - len(markers)
            if self.ready and type(self.ready[0]) is Dropped:  # the loss goes on there
                dropped += self.ready.popleft().dropped
            self.ready.extend(markers)  # a reconnection stays visible, in its order
            self.ready.appendleft(Dropped(dropped))
            self.cursor = stop
        else:
            keep = self.max_pending
            self.ready.extend(log[self.cursor - base : self.cursor + keep - base])
            self.lost_from = self.cursor + keep
            self.cursor = head

    def take_all(self) -> List[Any]:
        """Everything waiting, in order; an overflow (raise) ends the list with an
        ``_Overflowed`` marker, and resumes after it."""
        feed = self.feed
        head = feed.head
        self.catch_up(head)
        out = list(self.ready)
        self.ready.clear()
        if self.lost_from is not None:
            out.append(_Overflowed(head - self.lost_from))
            self.lost_from = None
        else:
            out += feed.log[self.cursor - feed.base : head - feed.base]
        self.cursor = head
        return out


    def next_event(self) -> Optional[Event]:
        """The next event, or None; an overflow raises ``PendingOverflow`` at the point of
        loss."""
        batch = self.batch
        if not batch:
            batch.extend(self.take_all())
            if not batch:
                return None
        item = batch.popleft()
        if type(item) is _Overflowed:
            raise PendingOverflow(item.lost, self.max_pending)
        return item  # type: ignore[no-any-return]

    def take_events(self) -> Optional[List[Event]]:
        """Every event waiting, or None; stops before an overflow that is not first, so
        that it raises on the next call, at the point of loss."""
        batch = self.batch
        if not batch:
            taken = self.take_all()  # an overflow marker can only be last
            if not taken or type(taken[-1]) is not _Overflowed:
                return taken or None
            batch.extend(taken)
        events: List[Event] = []
        while batch:
            if type(batch[0]) is _Overflowed:
                if events:
                    break
                raise PendingOverflow(batch.popleft().lost, self.max_pending)
            events.append(batch.popleft())
        return events or None


class Hub:
    """The subscriptions and callbacks of one client, and the routing of what it receives."""

    def __init__(self) -> None:
        self.feeds: Dict[FrozenSet[str], Feed] = {}
        self.by_channel: Dict[str, List[Feed]] = {}
        self.counts: Dict[str, int] = {}  # subscriptions and callbacks per channel
        self.callbacks: Dict[str, List[Callback]] = {}
        # (callback, event) waiting to be called, in arrival order; bounded by drop-oldest.
        self.calls: Deque[Tuple[Callback, Any]] = deque()
        self.calls_bound = 1000
        self.calls_dropped = 0

    # -- subscriptions ---------------------------------------------------------

    def open(self, channels: Iterable[str], max_pending: int, overflow: str) -> Reader:
        wanted = frozenset(channels)
        if not wanted:
            raise ValueError("subscribe to at least one channel")
        check_bound_options(max_pending, overflow)
        feed = self.feeds.get(wanted)
        if feed is None:
            feed = self.feeds[wanted] = Feed(wanted)
            for channel in wanted:
                self.by_channel.setdefault(channel, []).append(feed)
        reader = Reader(feed, max_pending, overflow)
        feed.readers.append(reader)
        feed.limit = max(feed.limit, max_pending)
        self._count(wanted, 1)
        return reader

    def close(self, reader: Reader) -> None:
        if reader.closed:
            return
        reader.closed = True
        feed = reader.feed
        feed.readers.remove(reader)
        self._count(feed.channels, -1)
        if feed.readers:
            feed.limit = max(r.max_pending for r in feed.readers)
            feed.trim()
            return
        del self.feeds[feed.channels]
        for channel in feed.channels:
            others = [f for f in self.by_channel[channel] if f is not feed]
            if others:
                self.by_channel[channel] = others
            else:
                del self.by_channel[channel]

    def add_callback(self, channel: str, callback: Callback) -> None:
        self.callbacks.setdefault(channel, []).append(callback)
        self._count((channel,), 1)

    def remove_callback(self, channel: str, callback: Callback) -> bool:
        """Whether ``callback`` was registered for ``channel`` (and is not any more)."""
        registered = self.callbacks.get(channel, [])
        if callback not in registered:
            return False
        registered.remove(callback)
        if not registered:
            del self.callbacks[channel]
        self._count((channel,), -1)
        return True

    def _count(self, channels: Iterable[str], change: int) -> None:
        for channel in channels:
            count = self.counts.get(channel, 0) + change
            if count:
                self.counts[channel] = count
            else:
                del self.counts[channel]

    def wanted(self) -> Set[str]:
        """The channels some subscription or callback wants."""
        return set(self.counts)

    @property
    def active(self) -> bool:
        return bool(self.counts)

    # -- routing ---------------------------------------------------------------

    def dispatch(self, inbox: Pending, own: Pending, keep: Callable[[str], bool]) -> bool:
        """Route everything in ``inbox`` (emptying it): a notification to the feeds and
        callbacks of its channel, and to ``own`` (the client's queue) when ``keep(channel)``;
        a marker to all of them.  Whether any feed or callback got something."""
        if not inbox.items:
            return False
        by_channel, callbacks = self.by_channel, self.callbacks
        delivered = False
        for item in inbox.take_all():
            if type(item) is Notify:
                channel = item.channel
                for feed in by_channel.get(channel, ()):
                    feed.add(item)
                    delivered = True
                for callback in callbacks.get(channel, ()):
                    self._call(callback, item)
                    delivered = True
                if keep(channel):
                    own.append(item)
            else:
                for feed in self.feeds.values():
                    feed.add(item)
                for callback in self.distinct_callbacks():
                    self._call(callback, item)
                own.append(item)
                delivered = True
        return delivered

    def distinct_callbacks(self) -> List[Callback]:
        """Every callback registered, once, in the order they were first registered."""
        found: List[Callback] = []
        for registered in self.callbacks.values():
            found += [cb for cb in registered if cb not in found]
        return found

    def _call(self, callback: Callback, event: Any) -> None:
        calls = self.calls
        calls.append((callback, event))
        if len(calls) > self.calls_bound:
            calls.popleft()
            self.calls_dropped += 1

    def take_calls(self) -> List[Tuple[Callback, Any]]:
        """The callbacks to call now, in order; after a loss, each callback that is owed
        something is first called with ``Dropped`` (the number lost in all)."""
        calls = list(self.calls)
        self.calls.clear()
        if self.calls_dropped:
            lost, self.calls_dropped = self.calls_dropped, 0
            seen: List[Callback] = []
            for callback, _ in calls:
                if callback not in seen:
                    seen.append(callback)
            calls = [(cb, Dropped(lost)) for cb in seen] + calls
        return calls
