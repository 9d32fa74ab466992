"""What ``events.Bound`` does to a ``Pending`` queue over its bound: the oldest or newest
notifications replaced by a marker of how many went.

Each drop is worked out first, changing nothing, and then made by one C call
(``_replace_end``, ``_replace_front``): the queue before it, or after it, and never a
loss without its marker, whatever an interrupt (Ctrl-C) cuts short, as taking in a read
must be (see _receiving.py).  How many markers wait is counted from the queue itself
when it matters, so no count of them can go stale.  What ``ready()`` keeps at the head
is being taken: a drop leaves it, and marks the loss right after it.
"""

from __future__ import annotations

from itertools import chain, compress, islice, repeat
from operator import countOf
from typing import Any, Deque, List

from .events import Dropped, _Overflowed
from .messages import Notify
from .pending import Pending, _left, _Ready

_NEVER = object()


def markers(queue: Pending) -> int:
    """Gap markers waiting in ``queue`` (they do not count toward a bound)."""
    items = queue.items
    kinds = list(map(type, items))
    count = len(kinds) - kinds.count(Notify) - kinds.count(list) - kinds.count(_Ready)
    if kinds and kinds[0] is _Ready:
        ready: _Ready = items[0]
        events = islice(ready.events, ready.start(), None)
        count += ready.left() - countOf(map(type, events), Notify)
    return count


def drop_newest(queue: Pending, excess: int) -> None:
    """The newest ``excess`` notifications replaced by one overflow marker of how many were
    lost, merged with an overflow marker right before them; markers among them stay."""
    items = queue.items
    lost = count = extra = 0
    kept: List[Any] = []
    cut = None
    for item in reversed(items):
        kind = type(item)
        if (lost >= excess and kind is not _Overflowed) or kind is _Ready:
            break
        count += 1
        if kind is Notify:
            lost += 1
        elif kind is _Overflowed:
            lost += item.lost
        elif kind is list:
            left = _left(item)
            extra -= left - 1
            if lost + left > excess:  # its oldest payloads stay, in a copy of the run
                keep = left - (excess - lost)
                cut = item[: item[0] + keep]
                extra += keep - 1
                lost = excess
                break
            lost += left
        else:
            kept.append(item)  # a reconnection stays visible
    if count:
        tail = ([cut] if cut is not None else []) + kept[::-1] + [_Overflowed(lost)]
        _change(queue, extra, _replace_end, items, count, tail)


def drop_oldest(queue: Pending, excess: int) -> None:
    """The oldest ``excess`` notifications replaced by one ``Dropped`` of how many went,
    merged with a ``Dropped`` right after them; markers among them stay, after it."""
    items = queue.items
    skip = 1 if items and type(items[0]) is _Ready else 0
    dropped = count = extra = 0
    kept: List[Any] = []
    cut = None
    for item in islice(items, skip, None):
        kind = type(item)
        if excess <= 0 and kind is not Dropped:
            break
        count += 1
        if kind is Dropped:
            dropped += item.dropped
        elif kind is Notify:
            dropped += 1
            excess -= 1
        elif kind is list:
            left = _left(item)
            extra -= left - 1
            if left > excess:  # its newest payloads stay, in a copy of the run
                cut = [item[0] + excess, *item[1:]]
                extra += left - excess - 1
                dropped += excess
                break
            dropped += left
            excess -= left
        else:
            kept.append(item)  # a reconnection stays visible
    if dropped:
        head = [Dropped(dropped), *kept, *([cut] if cut is not None else [])]
        if skip:
            head.insert(0, items[0])
        _change(queue, extra, _replace_front, items, count + skip, head)


def _change(queue: Pending, extra: int, replace: Any, items: Deque[Any], count: int,
            replacement: List[Any]) -> None:
    was_dirty = queue.dirty
    queue.dirty = True
    replace(items, count, replacement)
    if not was_dirty:
        queue.extra += extra
        queue.dirty = False


def _replace_end(items: Deque[Any], count: int, replacement: List[Any]) -> None:
    """The last ``count`` items of ``items`` replaced by ``replacement``, in one C call:
    ``items.pop`` called ``count`` times by the iterator that ``extend`` runs through,
    which then gives ``replacement``."""
    removed = islice(iter(items.pop, _NEVER), count)
    items.extend(chain(compress(removed, repeat(False)), replacement))


def _replace_front(items: Deque[Any], count: int, replacement: List[Any]) -> None:
    """The first ``count`` items of ``items`` replaced by ``replacement``, in one C call."""
    removed = islice(iter(items.popleft, _NEVER), count)
    items.extendleft(chain(compress(removed, repeat(False)), reversed(replacement)))
