"""Fan-out: many subscriptions on one connection, with no copy per subscriber.

Subscriptions to the same set of channels share one ``Feed``: a log of what
arrived for them, in order, that each subscription (a ``Reader``) walks with a
cursor of its own.  Delivering a notification to N subscribers is one append,
and N cursor steps when they read; a burst taken in batches costs a slice per
batch.  Each reader keeps its own bound (``max_pending``, ``overflow``), applied
after each batch that arrives as the client's own bound is, so a reader that
never reads pins at most ``max_pending`` entries and slows nobody.

``Hub`` routes what the connection receives: each notification to the feeds of
its channel, to the callbacks registered for it, and to the client's own queue
when the client listens on that channel itself; a marker (``Reconnected``) to
everything.  It counts subscriptions per channel: ``wanted()`` is what the
server must listen on.  Sans-IO: waking the readers is the driver's job.
"""

from __future__ import annotations

from bisect import bisect_left
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


class Feed:
    """What arrived for one set of channels, oldest first; ``base`` is the sequence number
    of ``log[0]``, so ``base + len(log)`` is the next one's; ``marks`` the sequence numbers
    of the markers in it (they are rare, and do not count toward a bound)."""

    __slots__ = ("base", "channels", "log", "marks", "readers")

    def __init__(self, channels: FrozenSet[str]) -> None:
        self.channels = channels
        self.log: List[Any] = []
        self.base = 0
        self.marks: List[int] = []
        self.readers: List[Reader] = []

    @property
    def head(self) -> int:
        return self.base + len(self.log)

    def add(self, item: Any) -> None:
        if type(item) is not Notify:
            self.marks.append(self.base + len(self.log))
        self.log.append(item)

    def notes(self, start: int, stop: int) -> int:
        """Notifications (not markers) from sequence number ``start`` to ``stop``."""
        marks = self.marks
        return stop - start - (bisect_left(marks, stop) - bisect_left(marks, start))

    def after_notes(self, start: int, count: int) -> int:
        """Where the ``count``-th notification from ``start`` on ends."""
        marks = self.marks
        stop = start + count
        index = bisect_left(marks, start)
        while index < len(marks) and marks[index] < stop:
            stop += 1
            index += 1
        return stop

    def markers(self, start: int, stop: int) -> List[Any]:
        marks = self.marks
        found = marks[bisect_left(marks, start) : bisect_left(marks, stop)]
        return [self.log[mark - self.base] for mark in found]

    def settle(self) -> None:
        """After arrivals: every reader within its bound, and what none needs freed."""
        head = self.head
        keep_from = head
        for reader in self.readers:
            reader.catch_up(head)
            if reader.cursor < keep_from:
                keep_from = reader.cursor
        if keep_from - self.base > len(self.log) // 2:  # in halves, so freeing is cheap
            del self.log[: keep_from - self.base]
            self.base = keep_from
            del self.marks[: bisect_left(self.marks, keep_from)]


class Reader:
    """One subscription: its place in its feed, its bound, and what it holds aside.

    ``ready`` holds, in order before what the feed holds from ``cursor`` on, what the
    bound set aside: markers that must stay visible, a ``Dropped`` or an overflow marker
    where a loss happened, and (``raise``) the oldest notifications kept.  The bound is
    the client's own (``protocol.events.Bound``), applied after each arrival of a batch.
    """

    __slots__ = ("closed", "cursor", "feed", "max_pending", "overflow", "ready",
                 "ready_notes")

    def __init__(self, feed: Feed, max_pending: int, overflow: str) -> None:
        check_bound_options(max_pending, overflow)
        self.feed = feed
        self.cursor = feed.head  # only what arrives from now on
        self.max_pending = max_pending
        self.overflow = overflow
        self.ready: Deque[Any] = deque()
        self.ready_notes = 0  # notifications in ready
        self.closed = False

    @property
    def waiting(self) -> bool:
        """Whether something can be taken now."""
        return bool(self.ready) or self.cursor < self.feed.head

    def catch_up(self, head: int) -> None:
        """Within the bound again: the newest ``max_pending`` notifications kept, with a
        ``Dropped`` first (drop-oldest), or the oldest kept and an overflow marker where
        the rest were lost (raise)."""
        if head - self.cursor + self.ready_notes <= self.max_pending:
            return  # the common case, markers or not
        feed = self.feed
        excess = feed.notes(self.cursor, head) + self.ready_notes - self.max_pending
        if excess <= 0:
            return
        ready = self.ready
        if self.overflow == "drop-oldest":  # nothing but markers in ready
            stop = feed.after_notes(self.cursor, excess)
            if ready and type(ready[0]) is Dropped:  # the loss goes on at the same point
                excess += ready.popleft().dropped
            ready.extend(feed.markers(self.cursor, stop))  # a reconnection stays visible
            ready.appendleft(Dropped(excess))
            self.cursor = stop
            return
        room = self.max_pending - self.ready_notes
        end = feed.after_notes(self.cursor, room)
        if room == 0 and ready and type(ready[-1]) is _Overflowed:
            first_lost = feed.after_notes(self.cursor, 1) - 1
            if not feed.markers(self.cursor, first_lost):  # no marker in between
                excess += ready.pop().lost  # the loss goes on at the same point
        ready.extend(feed.log[self.cursor - feed.base : end - feed.base])
        ready.extend(feed.markers(end, head))
        ready.append(_Overflowed(excess))
        self.ready_notes += room
        self.cursor = head

    def next_event(self) -> Optional[Event]:
        """The next event, or None; an overflow raises ``PendingOverflow`` at the point of
        loss."""
        ready = self.ready
        if ready:
            item = ready.popleft()
            kind = type(item)
            if kind is Notify:
                self.ready_notes -= 1
            elif kind is _Overflowed:
                raise PendingOverflow(item.lost, self.max_pending)
            return item  # type: ignore[no-any-return]
        feed = self.feed
        if self.cursor < feed.head:
            item = feed.log[self.cursor - feed.base]
            self.cursor += 1
            return item  # type: ignore[no-any-return]
        return None

    def take_events(self) -> Optional[List[Event]]:
        """Every event waiting, or None; stops before an overflow that is not first, so
        that it raises on the next call, at the point of loss."""
        events: List[Event] = []
        ready = self.ready
        while ready:
            item = ready.popleft()
            kind = type(item)
            if kind is _Overflowed:
                if events:
                    ready.appendleft(item)
                    return events
                raise PendingOverflow(item.lost, self.max_pending)
            if kind is Notify:
                self.ready_notes -= 1
            events.append(item)
        feed = self.feed
        head = feed.head
        if self.cursor < head:  # the common case: one slice of the feed
            events += feed.log[self.cursor - feed.base : head - feed.base]
            self.cursor = head
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
        # Told of each feed that got something (after its bound is applied): a driver that
        # wakes only the readers of that feed sets it.
        self.on_feed: Optional[Callable[[Feed], None]] = None

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
            if reader.cursor < feed.head:  # it may have held the oldest entries: free them
                feed.settle()
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
        touched: Set[Feed] = set()
        called = False
        for item in inbox.take_all():
            if type(item) is Notify:
                channel = item.channel
                for feed in by_channel.get(channel, ()):
                    feed.add(item)
                    touched.add(feed)
                for callback in callbacks.get(channel, ()):
                    self._call(callback, item)
                    called = True
                if keep(channel):
                    own.append(item)
            else:
                for feed in self.feeds.values():
                    feed.add(item)
                    touched.add(feed)
                for callback in self.distinct_callbacks():
                    self._call(callback, item)
                    called = True
                own.append(item)
        for feed in touched:
            feed.settle()
            if self.on_feed is not None:
                self.on_feed(feed)
        return called or bool(touched)

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
