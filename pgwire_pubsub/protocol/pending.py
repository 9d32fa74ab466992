"""The queue of notifications received and not yet taken, kept compact.

A notification from the same sender on the same channel as the one before it
is kept as its payload alone, in a run (a list of payloads) right after that
first one's ``Notify``; it becomes a ``Notify`` again when it is taken or
looked at.  A pending 64-byte notification of a burst then holds about 137
bytes instead of about 193, and the receive loop builds no tuple for it.
Notifications of interleaved senders are kept whole, as before.

Everything outside this module sees ``Notify`` objects and markers only.  The
decoder appends to ``items`` directly (its hot loop), and then adds to ``extra``
what its runs hold beyond one item each.
"""

from __future__ import annotations

from collections import deque
from itertools import repeat
from typing import Callable, Deque, Iterable, Iterator, List, Tuple, Union

from ..events import QueueItem
from .messages import Notify

Stored = Union[QueueItem, List[str]]

_make = tuple.__new__


def _notify(source: Tuple[int, str], payload: str) -> Notify:
    return _make(Notify, (source[0], source[1], payload))


class Pending:
    """Oldest first: ``Notify`` objects and gap markers, with deque-like methods."""

    __slots__ = ("_offset", "_source", "extra", "items")

    def __init__(self) -> None:
        self.items: Deque[Stored] = deque()
        self.extra = 0  # payloads in runs beyond the first of each (what len() adds)
        self._offset = 0  # payloads already taken from the run at the head
        self._source: Tuple[int, str] = (0, "")  # sender of the run at the head

    def __len__(self) -> int:
        return len(self.items) + self.extra - self._offset

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self) -> Iterator[QueueItem]:
        source = self._source
        offset = self._offset
        for item in self.items:
            if type(item) is list:
                for payload in item[offset:] if offset else item:
                    yield _notify(source, payload)
            else:
                if type(item) is Notify:
                    source = (item[0], item[1])
                yield item  # type: ignore[misc]
            offset = 0

    def __getitem__(self, index: int) -> QueueItem:
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("pending queue index out of range")
        at, within = self._locate(index, size)
        found = self.items[at]
        if type(found) is list:
            return _notify(self._source_of(at), found[within])
        return found  # type: ignore[return-value]

    def _locate(self, index: int, size: int) -> Tuple[int, int]:
        """Where the ``index``-th item is: its position in ``items`` and in its run.  Walks
        from the nearer end, so that ``[0]`` and ``[-1]`` cost little at any length."""
        items = self.items
        if index < size // 2:
            within = index + self._offset  # the head run's taken payloads come first
            for at, item in enumerate(items):
                count = len(item) if type(item) is list else 1
                if within < count:
                    return at, within
                within -= count
        else:
            back = size - 1 - index
            for at in range(len(items) - 1, -1, -1):
                item = items[at]
                whole = len(item) if type(item) is list else 1
                count = whole - self._offset if at == 0 else whole
                if back < count:
                    return at, whole - 1 - back
                back -= count
        raise AssertionError("the lengths do not add up")  # pragma: no cover

    def __repr__(self) -> str:
        return f"Pending({list(self)!r})"

    def append(self, item: QueueItem) -> None:
        self.items.append(item)

    def extend(self, items: Iterable[QueueItem]) -> None:
        self.items.extend(items)

    def appendleft(self, item: QueueItem) -> None:
        if type(item) is Notify:
            raise TypeError("only markers go before the notifications already queued")
        self._settle_head()
        self.items.appendleft(item)

    def clear(self) -> None:
        self.items.clear()
        self.extra = 0
        self._offset = 0

    def popleft(self) -> QueueItem:
        items = self.items
        head = items[0]
        if type(head) is not list:
            items.popleft()
            if type(head) is Notify:
                self._source = (head[0], head[1])
            return head  # type: ignore[return-value]
        payload = head[self._offset]
        self._offset += 1
        if self._offset == len(head):
            items.popleft()
            self.extra -= len(head) - 1
            self._offset = 0
        return _notify(self._source, payload)

    def pop(self) -> QueueItem:
        items = self.items
        last = items[-1]
        if type(last) is not list:
            return items.pop()  # type: ignore[return-value]
        source = self._source_of(len(items) - 1)
        payload = last.pop()
        taken = self._offset if len(items) == 1 else 0  # payloads gone from its front
        if len(last) == taken:
            items.pop()
            self.extra -= taken
            if not items:
                self._offset = 0
        else:
            self.extra -= 1
        return _notify(source, payload)

    def take_all(self) -> List[QueueItem]:
        """Everything, in order, leaving the queue empty."""
        out: List[QueueItem] = []
        add = out.append
        pid, channel = self._source
        offset = self._offset
        make = _make
        notify = Notify
        for item in self.items:
            if type(item) is list:
                run = item[offset:] if offset else item
                out += map(make, repeat(notify), zip(repeat(pid), repeat(channel), run))
            else:
                if type(item) is notify:
                    pid, channel = item[0], item[1]
                add(item)  # type: ignore[arg-type]
            offset = 0
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
        self._settle_head()
        items = self.items
        for at, item in enumerate(items):
            size = len(item) if type(item) is list else 1
            if index >= size:
                index -= size
                continue
            following = items[at + 1] if at + 1 < len(items) else None
            if type(item) is list:
                del item[index]
                if item:
                    self.extra -= 1
                else:
                    del items[at]
            elif isinstance(item, Notify) and type(following) is list:
                # The run after it needs a sender: its first payload takes this one's place.
                items[at] = _notify((item.pid, item.channel), following.pop(0))
                if following:
                    self.extra -= 1
                else:
                    del items[at + 1]
            else:
                del items[at]
            return

    def _settle_head(self) -> None:
        """Make the head run start at its first payload (before anything goes in front)."""
        if self._offset:
            head = self.items[0]
            assert type(head) is list
            del head[: self._offset]
            self.extra -= self._offset
            self._offset = 0

    def _source_of(self, position: int) -> Tuple[int, str]:
        """The sender of the run at ``position``: the nearest Notify before it."""
        for at in range(position - 1, -1, -1):
            item = self.items[at]
            if type(item) is Notify:
                return (item[0], item[1])
        return self._source
