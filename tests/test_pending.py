"""The compact queue of pending notifications, against a plain list as the model.

Notifications go in as a real decoder puts them (runs of one sender's
payloads after its first ``Notify``), markers as PubSub and the bound put
them; every way of looking at or taking from the queue must agree with the
list, whatever the order of operations.
"""

from __future__ import annotations

import functools
import sys
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pgwire_pubsub import Dropped, Notify, Reconnected
from pgwire_pubsub.protocol import pending as pending_module
from pgwire_pubsub.protocol.decoder import Decoder
from pgwire_pubsub.protocol.events import Bound, QueueItem, _Overflowed
from pgwire_pubsub.protocol.pending import RUN_START, Pending
from pgwire_pubsub.testing.wirebytes import notify

SENDERS = [(7, "a"), (8, "a"), (7, "b")]
MARKERS: List[QueueItem] = [Reconnected(0.5, 9, 1), Dropped(3), _Overflowed(2)]

# Groups of notifications from one sender: runs of any length, and interleaving.
groups = st.lists(
    st.tuples(
        st.sampled_from(SENDERS), st.lists(st.text("xé😀", max_size=2), min_size=1, max_size=5)
    ),
    min_size=1,
    max_size=4,
)


def feed(pending: Pending, messages: List[Tuple[Tuple[int, str], str]], cut: int) -> None:
    data = b"".join(notify(pid, channel, payload) for (pid, channel), payload in messages)
    decoder = Decoder()
    cut = min(cut, len(data))
    for chunk in (data[:cut], data[cut:]):
        assert decoder.feed(chunk, pending) == []


class PendingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pending = Pending()
        self.model: List[QueueItem] = []
        self.serial = 0
        # Events made in bulk from two waiting on, so that short queues have them too.
        self.ready_at = pending_module.READY_AT
        pending_module.READY_AT = 2
        self.left_behind: List[Iterator[QueueItem]] = []

    def teardown(self) -> None:
        pending_module.READY_AT = self.ready_at

    @rule(sent=groups, cut=st.integers(0, 200))
    def receive(self, sent: List[Tuple[Tuple[int, str], List[str]]], cut: int) -> None:
        # Serial numbers make every payload distinct, so a wrong one cannot pass unseen.
        numbered = []
        for sender, texts in sent:
            for text in texts:
                self.serial += 1
                numbered.append((sender, f"{self.serial}{text}"))
        feed(self.pending, numbered, cut)
        self.model += [Notify(pid, channel, p) for (pid, channel), p in numbered]

    @rule(marker=st.sampled_from(MARKERS))
    def append_marker(self, marker: QueueItem) -> None:
        self.pending.append(marker)
        self.model.append(marker)

    @rule(item=st.sampled_from([*MARKERS, Notify(9, "z", "front")]))
    def appendleft(self, item: QueueItem) -> None:
        self.pending.appendleft(item)
        self.model.insert(0, item)

    @rule(sender=st.sampled_from(SENDERS), count=st.integers(1, 3))
    def extend(self, sender: Tuple[int, str], count: int) -> None:
        items = [Notify(sender[0], sender[1], f"x{n}") for n in range(count)]
        self.pending.extend(items)
        self.model += items

    @precondition(lambda self: self.model)
    @rule(times=st.integers(1, 4))
    def popleft(self, times: int) -> None:
        for _ in range(min(times, len(self.model))):
            assert self.pending.popleft() == self.model.pop(0)

    @precondition(lambda self: self.model)
    @rule(times=st.integers(1, 4))
    def pop(self, times: int) -> None:
        for _ in range(min(times, len(self.model))):
            assert self.pending.pop() == self.model.pop()

    @rule()
    def take_all(self) -> None:
        assert self.pending.take_all() == self.model
        self.model = []

    @precondition(lambda self: self.model)
    @rule(count=st.integers(0, 12))
    def take_through_ready(self, count: int) -> None:
        """As events() does: up to ``count`` from the iterator ``ready()`` gives, then a
        break; the rest stays first for whatever takes next."""
        ready = self.pending.ready()
        if ready is None:
            assert len(self.model) < 2
            return
        taken = []
        for event in ready:
            taken.append(event)
            if len(taken) >= count:
                break
        assert taken == self.model[: len(taken)]
        assert len(taken) < len(self.model), "the last item is left as it was"
        del self.model[: len(taken)]
        self.left_behind.append(ready)

    @precondition(lambda self: self.left_behind)
    @rule(pick=st.integers(0, 100), count=st.integers(1, 5))
    def resume_a_loop_left_behind(self, pick: int, count: int) -> None:
        """An iterator ``ready()`` gave earlier, taken from again later: it goes on from
        where the queue is now, or gives nothing once what it held has gone."""
        ready = self.left_behind[pick % len(self.left_behind)]
        for _ in range(count):
            event = next(ready, None)
            if event is None:
                return
            assert self.model and event == self.model.pop(0)

    @rule()
    def clear(self) -> None:
        self.pending.clear()
        self.model = []

    @rule(pick=st.integers(0, 10_000))
    def take_first(self, pick: int) -> None:
        notifications = [item for item in self.model if type(item) is Notify]
        if not notifications:
            assert not self.pending.take_first(lambda item: True)
            return
        wanted = notifications[pick % len(notifications)]
        assert self.pending.take_first(lambda item: item == wanted)
        self.model.remove(wanted)

    @rule(max_pending=st.integers(1, 12), policy=st.sampled_from(["raise", "drop-oldest"]))
    def enforce_a_bound(self, max_pending: int, policy: str) -> None:
        """Bound.enforce against the plain algorithm on the list: what iterator ``ready()``
        keeps at the head is being taken, and stays."""
        head = self.pending.items[0] if self.pending.items else None
        in_hand = head.left() if isinstance(head, pending_module._Ready) else 0
        Bound(max_pending, policy).enforce(self.pending)
        excess = sum(type(item) is Notify for item in self.model) - max_pending
        if excess <= 0:
            return
        taken, rest = self.model[:in_hand], self.model[in_hand:]
        if policy == "raise":
            lost, kept = 0, []
            while rest and (lost < excess or type(rest[-1]) is _Overflowed):
                item = rest.pop()
                if type(item) is Notify:
                    lost += 1
                elif type(item) is _Overflowed:
                    lost += item.lost
                else:
                    kept.append(item)
            if lost or kept:
                rest += [*reversed(kept), _Overflowed(lost)]
        else:
            dropped, kept = 0, []
            while rest and (excess > 0 or type(rest[0]) is Dropped):
                item = rest.pop(0)
                if type(item) is Dropped:
                    dropped += item.dropped
                elif type(item) is Notify:
                    dropped += 1
                    excess -= 1
                else:
                    kept.append(item)
            if dropped:
                rest[:0] = [Dropped(dropped), *kept]
            else:
                rest[:0] = kept
        self.model = taken + rest

    @invariant()
    def same_contents(self) -> None:
        assert list(self.pending) == self.model
        assert len(self.pending) == len(self.model)
        assert bool(self.pending) == bool(self.model)
        for index in range(-len(self.model), len(self.model)):
            assert self.pending[index] == self.model[index]


TestPendingMachine = PendingMachine.TestCase
TestPendingMachine.settings = settings(max_examples=400, stateful_step_count=40, deadline=None)


def test_a_run_is_stored_as_payloads_from_a_senders_third_notification_in_a_row() -> None:
    pending = Pending()
    sent = [((7, "a"), "1"), ((7, "a"), "2"), ((7, "a"), "3"), ((7, "a"), "4"), ((8, "a"), "5")]
    feed(pending, sent, 0)
    second = Notify(7, "a", "2")
    assert list(pending.items) == [
        Notify(7, "a", "1"), second, [RUN_START, second, "3", "4"], Notify(8, "a", "5")
    ]
    run = pending.items[2]
    assert isinstance(run, list) and run[1] is pending.items[1]
    assert len(pending) == 5


def test_a_senders_second_notification_alone_is_stored_whole() -> None:
    pending = Pending()
    feed(pending, [((7, "a"), "1"), ((7, "a"), "2"), ((8, "a"), "3"), ((8, "a"), "4")], 0)
    assert list(pending.items) == [
        Notify(7, "a", "1"), Notify(7, "a", "2"), Notify(8, "a", "3"), Notify(8, "a", "4")
    ]


def test_interleaved_senders_are_stored_whole() -> None:
    pending = Pending()
    feed(pending, [((7, "a"), "1"), ((8, "a"), "2"), ((7, "a"), "3")], 0)
    assert list(pending.items) == [Notify(7, "a", "1"), Notify(8, "a", "2"), Notify(7, "a", "3")]


def test_taken_notifications_share_the_senders_channel_string() -> None:
    pending = Pending()
    feed(pending, [((7, "chan"), str(n)) for n in range(5)], 0)
    taken = pending.take_all()
    assert len({id(item.channel) for item in taken if type(item) is Notify}) == 1


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="object sizes are CPython's")
def test_a_pending_run_holds_little_more_than_its_payloads() -> None:
    pending = Pending()
    payloads = [str(n).rjust(64, "x") for n in range(1000)]
    feed(pending, [((7, "a"), p) for p in payloads], 0)
    (_, _, run) = pending.items
    assert isinstance(run, list)
    payloads_held = run[RUN_START:]
    overhead = (sys.getsizeof(run) + sum(map(sys.getsizeof, payloads_held))) / len(run) - 64
    assert overhead < 64, f"{overhead:.0f} bytes per pending notification beyond its payload"


@given(st.integers(-3, 3))
def test_index_out_of_range(index: int) -> None:
    pending = Pending()
    if index in (0, -1):
        pending.append(Dropped(1))
        assert pending[index] == Dropped(1)
    else:
        with pytest.raises(IndexError):
            pending[index]


# -- an interrupt at any statement --------------------------------------------------
#
# Ctrl-C (or a SIGTERM handler that raises) lands between two statements of whatever
# runs.  Taking from the queue happens outside the transport's hold on those signals, so
# at any statement of these methods an interrupt may lose the one notification being
# taken, and nothing else: no other one lost, repeated or given another sender, and
# ``len`` still right.

PENDING_FILE = pending_module.__file__


def interrupted(step: int, action: Callable[[], object]) -> bool:
    """Run ``action``, raising KeyboardInterrupt before its ``step``-th line in
    pending.py; whether it was raised (False: the action has fewer lines)."""
    seen = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Optional[Callable[..., Any]]:
        nonlocal seen
        if frame.f_code.co_filename != PENDING_FILE:
            return None
        if event == "line":
            seen += 1
            if seen == step:
                raise KeyboardInterrupt
        return tracer

    sys.settrace(tracer)
    try:
        action()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


def mixed_queue() -> Pending:
    pending = Pending()
    senders = [(7, "a")] * 4 + [(8, "a")] + [(7, "b")] * 3 + [(8, "a")] * 2
    feed(pending, [(sender, str(n)) for n, sender in enumerate(senders)], 0)
    pending.append(Dropped(1))
    feed(pending, [((7, "a"), "x"), ((7, "a"), "y")], 0)
    return pending


def through_ready(pending: Pending) -> List[QueueItem]:
    taken: List[QueueItem] = []
    while pending.items:
        ready = pending.ready()
        if ready is None:
            taken.append(pending.popleft())
        else:
            taken += ready
    return taken


ACTIONS: Dict[str, Callable[[Pending], object]] = {
    "popleft": lambda p: [p.popleft() for _ in range(len(p))],
    "ready": through_ready,
    "pop": lambda p: [p.pop() for _ in range(len(p))],
    "take_all": lambda p: p.take_all(),
    "take_first": lambda p: p.take_first(lambda n: n.payload == "2"),
    "index": lambda p: [p[i] for i in range(-len(p), len(p))],
}


@pytest.mark.skipif(sys.gettrace() is not None, reason="another tracer (coverage) is active")
@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_an_interrupt_at_any_statement_costs_at_most_the_item_in_flight(name: str) -> None:
    step = 0
    while True:
        step += 1
        pending = mixed_queue()
        before = list(pending)
        if not interrupted(step, functools.partial(ACTIONS[name], pending)):
            assert step > 1, "the action ran no line of pending.py"
            return
        after = list(pending)
        assert len(pending) == len(after), f"step {step}: len {len(pending)}, {len(after)} held"
        # What is left is a tail (popleft), a head (pop), all or nothing (take_all), or the
        # queue with at most one item gone (take_first, indexing): never anything else.
        taken = len(before) - len(after)
        if name in ("popleft", "ready"):
            assert after == before[taken:], f"step {step}"
        elif name == "pop":
            assert after == before[: len(after)], f"step {step}"
        elif name == "take_all":
            assert after in (before, []), f"step {step}"
        elif name == "take_first":
            gone = [type(item) is Notify and item.payload for item in before].index("2")
            assert after in (before, before[:gone] + before[gone + 1 :]), f"step {step}"
        else:
            assert after == before, f"step {step}"
        drained = []
        while pending.items:
            drained.append(pending.popleft())
        assert drained == after and len(pending) == 0, f"step {step}"
