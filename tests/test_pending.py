"""The compact queue of pending notifications, against a plain list as the model.

Notifications go in as a real decoder puts them (runs of one sender's
payloads after its first ``Notify``), markers as PubSub and the bound put
them; every way of looking at or taking from the queue must agree with the
list, whatever the order of operations.
"""

from __future__ import annotations

import sys
from typing import List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from wirebytes import notify

from pgwire_pubsub import Dropped, Notify, Reconnected
from pgwire_pubsub.events import QueueItem, _Overflowed
from pgwire_pubsub.protocol.decoder import Decoder
from pgwire_pubsub.protocol.pending import Pending

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

    @rule(marker=st.sampled_from(MARKERS))
    def appendleft_marker(self, marker: QueueItem) -> None:
        self.pending.appendleft(marker)
        self.model.insert(0, marker)

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

    @invariant()
    def same_contents(self) -> None:
        assert list(self.pending) == self.model
        assert len(self.pending) == len(self.model)
        assert bool(self.pending) == bool(self.model)
        for index in range(-len(self.model), len(self.model)):
            assert self.pending[index] == self.model[index]


TestPendingMachine = PendingMachine.TestCase
TestPendingMachine.settings = settings(max_examples=400, stateful_step_count=40, deadline=None)


def test_a_run_is_stored_as_payloads_after_its_first_notify() -> None:
    pending = Pending()
    feed(pending, [((7, "a"), "1"), ((7, "a"), "2"), ((7, "a"), "3"), ((8, "a"), "4")], 0)
    assert list(pending.items) == [Notify(7, "a", "1"), ["2", "3"], Notify(8, "a", "4")]
    assert len(pending) == 4


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
    (_, run) = pending.items
    assert isinstance(run, list)
    overhead = (sys.getsizeof(run) + sum(map(sys.getsizeof, run))) / len(run) - 64
    assert overhead < 64, f"{overhead:.0f} bytes per pending notification beyond its payload"


def test_only_markers_may_go_in_front() -> None:
    with pytest.raises(TypeError, match="only markers"):
        Pending().appendleft(Notify(1, "a", "b"))


@given(st.integers(-3, 3))
def test_index_out_of_range(index: int) -> None:
    pending = Pending()
    if index in (0, -1):
        pending.append(Dropped(1))
        assert pending[index] == Dropped(1)
    else:
        with pytest.raises(IndexError):
            pending[index]
