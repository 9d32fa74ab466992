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
``dirty`` is set it may be stale, and the next reader counts it again.

Everything outside this module sees ``Notify`` objects and markers only.  The
decoder appends to ``items`` directly (its hot loop), and then adds to ``extra``
what its runs hold beyond one item each.
"""

from __future__ import annotations

from collections import deque
from itertools import islice, repeat
from typing import Any, Callable, Deque, Iterable, Iterator, List, Tuple, Union

from .events import QueueItem
from .messages import Notify

Run = List[Any]  # [cursor, first Notify, payload, payload...]
Stored = Union[QueueItem, Run]
RUN_START = 2  # a run's first payload, after its cursor and its first Notify

_make = tuple.__new__


def _notify(run: Run, payload: str) -> Notify:
    first = run[1]
    return _make(Notify, (first[0], first[1], payload))


def _left(run: Run) -> int:
    """Payloads not yet taken from ``run``."""
    return len(run) - int(run[0])


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

    def __len__(self) -> int:
        if self.dirty:
            self._recount()
        return len(self.items) + self.extra

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[QueueItem]:
        for item in self.items:
            if type(item) is list:
                for payload in islice(item, item[0], None):
                    yield _notify(item, payload)
            else:
                yield item  # type: ignore[misc]

    def __getitem__(self, index: int) -> QueueItem:
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("pending queue index out of range")
        at, within = self._locate(index, size)
        found = self.items[at]
        if type(found) is list:
            return _notify(found, found[within])
        return found  # type: ignore[return-value]

    def _locate(self, index: int, size: int) -> Tuple[int, int]:
        """Where the ``index``-th item is: its position in ``items`` and in its run.  Walks
        from the nearer end, so that ``[0]`` and ``[-1]`` cost little at any length."""
        items = self.items
        if index < size // 2:
            for at, item in enumerate(items):
                count = _left(item) if type(item) is list else 1
                if index < count:
                    return at, (item[0] + index if type(item) is list else 0)
                index -= count
        else:
            back = size - 1 - index
            for at in range(len(items) - 1, -1, -1):
                item = items[at]
                count = _left(item) if type(item) is list else 1
                if back < count:
                    return at, (len(item) - 1 - back if type(item) is list else 0)
                back -= count
        raise AssertionError("the lengths do not add up")  # pragma: no cover

    def __repr__(self) -> str:
        return f"Pending({list(self)!r})"

    def append(self, item: QueueItem) -> None:
        self.items.append(item)

    def extend(self, items: Iterable[QueueItem]) -> None:
        self.items.extend(list(items))  # one C call: all or nothing

    def appendleft(self, item: QueueItem) -> None:
        self.items.appendleft(item)

    def clear(self) -> None:
        self.dirty = True
        self.items.clear()
        self.extra = 0
        self.dirty = False

    def popleft(self) -> QueueItem:
        items = self.items
        head = items[0]
        if type(head) is not list:
            return items.popleft()  # type: ignore[return-value]
        cursor = head[0]
        payload = head[cursor]
        if cursor + 1 == len(head):
            items.popleft()  # the run's last payload: it goes with the run
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
            return items.pop()  # type: ignore[return-value]
        if _left(last) == 1:
            items.pop()
            return _notify(last, last[-1])
        self.dirty = True
        payload = last.pop()
        self.extra -= 1
        self.dirty = False
        return _notify(last, payload)

    def take_all(self) -> List[QueueItem]:
        """Everything, in order, leaving the queue empty."""
        out: List[QueueItem] = []
        add = out.append
        make = _make
        notify = Notify
        for item in self.items:
            if type(item) is list:
                pid, channel = item[1][0], item[1][1]
                payloads = item[item[0] :]
                out += map(make, repeat(notify), zip(repeat(pid), repeat(channel), payloads))
            else:
                add(item)  # type: ignore[arg-type]
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
        if type(run) is not list or _left(run) == 1:
            del items[at]  # a run keeps its own first Notify: nothing after depends on this
            return
        self.dirty = True
        del run[within]
        self.extra -= 1
        self.dirty = False
