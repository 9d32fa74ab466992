"""The queue of notifications received and not yet taken, kept compact.

From the third notification in a row from one sender on one channel, the next
ones are kept as their payloads alone, in a run right after the second one's
``Notify``; each becomes a ``Notify`` again when it is taken or looked at.  A
pending 64-byte notification of a burst then holds about 122 bytes instead of
about 193, and the receive loop builds no tuple for it.  Notifications of
interleaved senders, and a sender's second in a row, are kept whole (a run of
one payload would cost more than it saves).

A run is a list ``[cursor, first, payload, payload...]``: ``first`` is the
``Notify`` the run follows (its sender and channel), ``cursor`` the index of the
next payload to take.  Taking a payload is one list store, and taking a run's
last one removes the run, so that an interrupt (Ctrl-C) between two statements
can lose at most the notification being taken, never the queue's order or its
senders.  ``extra`` (what ``len`` adds for runs) is fixed up afterwards; while
``dirty`` is set it may be stale, and the next reader counts it again (whoever finds it
set leaves it set).

Everything outside this module sees ``Notify`` objects and markers only.  What the
decoder makes of a read (its runs included) comes in through ``add``.

``ready()`` makes everything waiting but the last item into events at once (in C,
as ``take_all`` does) and keeps them at the queue's head as one ``_Ready`` item, so
that ``events()`` takes each with a step of a C iterator instead of a ``popleft``.
What it does not take stays there, first, for whatever takes next.  A ``_Ready`` is
only ever at the head and always has an item after it, so ``items`` is empty exactly
when nothing waits.
"""

from __future__ import annotations

from collections import deque
from itertools import islice, repeat
from operator import length_hint
from typing import Any, Callable, Deque, Iterable, Iterator, List, Optional, Tuple

from .events import QueueItem
from .messages import Notify

Run = List[Any]  # [cursor, first Notify, payload, payload...]
RUN_START = 2  # a run's first payload, after its cursor and its first Notify
# ready() makes events in bulk from this many waiting on: below, popleft costs less.
READY_AT = 8


class _Ready:
    """Events made in bulk, taken in order through ``taking`` (an iterator over
    ``events``): its place is the queue's own, as a run's cursor is."""

    __slots__ = ("events", "taking")

    def __init__(self, events: List[QueueItem]) -> None:
        self.events = events
        self.taking: Iterator[QueueItem] = iter(events)

    def left(self) -> int:
        return length_hint(self.taking)

    def start(self) -> int:
        """Where in ``events`` the first one not taken is."""
        return len(self.events) - length_hint(self.taking)


# What items holds: a QueueItem, a Run or a _Ready (Any: told apart by type() in hot code).
Stored = Any
_SPENT: Any = object()  # what next() gives for a _Ready with nothing left

_make = tuple.__new__


def _notify(run: Run, payload: str) -> Notify:
    first = run[1]
    return _make(Notify, (first[0], first[1], payload))


def _left(run: Run) -> int:
    """Payloads not yet taken from ``run``."""
    return len(run) - int(run[0])


def _count(item: Stored) -> int:
    """Events that ``item`` holds."""
    kind = type(item)
    if kind is list:
        return _left(item)
    if kind is _Ready:
        return int(item.left())
    return 1


class Pending:
    """Oldest first: ``Notify`` objects and gap markers, with deque-like methods."""

    __slots__ = ("dirty", "extra", "items")

    def __init__(self) -> None:
        self.items: Deque[Stored] = deque()
        self.extra = 0  # payloads left in runs beyond one each: what len() adds
        self.dirty = False  # extra may be stale (an update was interrupted)

    def _recount(self) -> None:
        self.extra = sum(_left(item) - 1 for item in self.items if type(item) is list)
        self.dirty = False

    def add(self, notes: Iterable[Any], extra: int) -> None:
        """Notifications as the decoder keeps them (``Decoder.decode``'s ``notes``, whose runs
        hold ``extra`` payloads beyond one each), at the end."""
        was_dirty = self.dirty
        self.dirty = True
        self.items.extend(notes)
        if not was_dirty:
            self.extra += extra
            self.dirty = False

    def added_again(self, notes: Iterator[Any]) -> None:
        """``add`` of what an interrupt cut short: ``notes`` is the iterator it was taking
        from (what it took stays taken), and ``extra`` is counted again."""
        self.dirty = True
        self.items.extend(notes)
        self._recount()

    def __len__(self) -> int:
        if self.dirty:
            self._recount()
        items = self.items
        if items and type(items[0]) is _Ready:  # counted here: its iterator counts down
            return len(items) + self.extra + items[0].left() - 1
        return len(items) + self.extra

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[QueueItem]:
        for item in self.items:
            kind = type(item)
            if kind is list:
                for payload in islice(item, item[0], None):
                    yield _notify(item, payload)
            elif kind is _Ready:
                yield from item.events[item.start() :]
            else:
                yield item

    def __getitem__(self, index: int) -> QueueItem:
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("pending queue index out of range")
        at, within = self._locate(index, size)
        found = self.items[at]
        kind = type(found)
        if kind is list:
            return _notify(found, found[within])
        if kind is _Ready:
            return found.events[within]  # type: ignore[no-any-return]
        return found  # type: ignore[no-any-return]

    def _locate(self, index: int, size: int) -> Tuple[int, int]:
        """Where the ``index``-th item is: its position in ``items`` and in its run (or its
        ``_Ready``'s events).  Walks from the nearer end, so that ``[0]`` and ``[-1]`` cost
        little at any length."""
        items = self.items
        if index < size // 2:
            for at, item in enumerate(items):
                count = _count(item)
                if index < count:
                    return at, _first(item) + index
                index -= count
        else:
            back = size - 1 - index
            for at in range(len(items) - 1, -1, -1):
                item = items[at]
                count = _count(item)
                if back < count:
                    return at, _first(item) + count - 1 - back
                back -= count
        raise AssertionError("the lengths do not add up")  # pragma: no cover

    def __repr__(self) -> str:
        return f"Pending({list(self)!r})"

    def append(self, item: QueueItem) -> None:
        self.items.append(item)

    def extend(self, items: Iterable[QueueItem]) -> None:
        self.items.extend(list(items))  # one C call: all or nothing

    def appendleft(self, item: QueueItem) -> None:
        items = self.items
        head = items[0] if items else None
        if type(head) is _Ready:
            if head.left():  # first of its events, given next
                head.events.insert(head.start(), item)
                return
            items.popleft()  # spent: an item follows it
        items.appendleft(item)

    def clear(self) -> None:
        self.dirty = True
        self.halt()  # a loop left over its iterator must not give its events again
        self.items.clear()
        self.extra = 0
        self.dirty = False

    def popleft(self) -> QueueItem:
        items = self.items
        head = items[0]
        kind = type(head)
        if kind is _Ready:
            event = next(head.taking, _SPENT)
            if event is not _SPENT:
                return event  # type: ignore[no-any-return]
            items.popleft()  # spent: an item follows it
            head = items[0]
            kind = type(head)
        if kind is not list:
            return items.popleft()  # type: ignore[no-any-return]
        cursor = head[0]
        payload = head[cursor]
        if cursor + 1 == len(head):
            items.popleft()  # the run's last payload: it goes with the run
        elif self.dirty:  # extra is stale already: it is counted again anyway
            head[0] = cursor + 1
        else:
            self.dirty = True
            head[0] = cursor + 1  # taken
            self.extra -= 1
            self.dirty = False
        first = head[1]  # _notify(head, payload), inlined: this runs per event
        return _make(Notify, (first[0], first[1], payload))

    def pop(self) -> QueueItem:
        items = self.items
        last = items[-1]
        if type(last) is not list:
            item: QueueItem = items.pop()
            self._follow_ready()
            return item
        if _left(last) == 1:
            items.pop()
            self._follow_ready()
            return _notify(last, last[-1])
        was_dirty = self.dirty
        self.dirty = True
        payload = last.pop()
        if not was_dirty:
            self.extra -= 1
            self.dirty = False
        return _notify(last, payload)

    def _follow_ready(self) -> None:
        """After the last item went: a ``_Ready`` left last gives up its last event, to be
        the item that follows it (or goes, when spent)."""
        items = self.items
        if len(items) == 1 and type(items[0]) is _Ready:
            ready: _Ready = items[0]
            if ready.left():
                # One C call, so no interrupt can come between taking it and keeping it.
                items.extend(map(ready.events.pop, (-1,)))
            else:
                items.pop()

    def halt(self) -> None:
        """Nothing more from the iterator ``ready()`` gave: a loop over it ends at its next
        step, in whatever thread (the connection is being closed)."""
        items = self.items
        head = items[0] if items else None
        if type(head) is _Ready:
            head.events.clear()

    def ready(self) -> Optional[Iterator[QueueItem]]:
        """An iterator at the queue's head that gives what waits (but the last item), in
        order, each with a step; None when fewer than ``READY_AT`` wait (``popleft``
        then).  What it has not given stays first in the queue for any taker."""
        items = self.items
        head = items[0]
        if type(head) is _Ready:
            if head.left():
                return head.taking
            items.popleft()  # spent: an item follows it
        if len(self) < READY_AT:
            return None
        events = self.take_all(clear=False)
        last = events.pop()
        ready = _Ready(events)
        self.dirty = True
        self.items = deque((ready, last))  # one store: the old queue, or all of it made
        self.extra = 0
        self.dirty = False
        return ready.taking

    def take_all(self, clear: bool = True) -> List[QueueItem]:
        """Everything, in order, leaving the queue empty (with ``clear``)."""
        out: List[QueueItem] = []
        add = out.append
        make = _make
        notify = Notify
        for item in self.items:
            kind = type(item)
            if kind is list:
                pid, channel = item[1][0], item[1][1]
                payloads = item[item[0] :]
                out += map(make, repeat(notify), zip(repeat(pid), repeat(channel), payloads))
            elif kind is _Ready:
                out += item.events[item.start() :]
            else:
                add(item)
        if clear:
            self.clear()
        return out

    def take_first(self, match: Callable[[Notify], bool]) -> bool:
        """Remove the first notification ``match`` accepts; whether there was one."""
        for index, item in enumerate(self):
            if type(item) is Notify and match(item):
                self._remove(index)
                return True
        return False

    def _remove(self, index: int) -> None:
        at, within = self._locate(index, len(self))
        items = self.items
        run = items[at]
        if type(run) is _Ready:
            del run.events[within]  # not yet given: still ahead
            return
        if type(run) is not list or _left(run) == 1:
            del items[at]  # a run keeps its own first Notify: nothing after depends on this
            if at == len(items):
                self._follow_ready()
            return
        was_dirty = self.dirty
        self.dirty = True
        del run[within]
        if not was_dirty:
            self.extra -= 1
            self.dirty = False


def _first(item: Stored) -> int:
    """Where in ``item`` (a run, a ``_Ready``'s events, or one item) its first event is."""
    kind = type(item)
    if kind is list:
        return int(item[0])
    if kind is _Ready:
        return int(item.start())
    return 0
