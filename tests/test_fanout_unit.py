"""The fan-out log (``_shared/fanout.py``) against the plain way: every subscription its own
queue with its own ``Bound``.  Any sequence of arrivals, markers, takes, opens and closes
must give every subscription exactly what its plain queue gives it; and a subscription that
never reads holds at most about its bound."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgwire_pubsub import Dropped, Notify, PendingOverflow, Reconnected
from pgwire_pubsub._shared.fanout import Hub, Reader
from pgwire_pubsub.protocol.events import Bound
from pgwire_pubsub.protocol.pending import Pending

CHANNELS = ("a", "b", "c")


class PlainSubscription:
    """The model: a queue and a Bound, filled with every item of its channels."""

    def __init__(self, channels: frozenset, max_pending: int, overflow: str) -> None:  # type: ignore[type-arg]
        self.channels = channels
        self.queue = Pending()
        self.bound = Bound(max_pending, overflow)

    def add(self, items: List[Any]) -> None:
        """A batch arrives; the bound applies after it, as the connection's does."""
        for item in items:
            self.queue.append(item)
        self.bound.enforce(self.queue)

    def next_event(self) -> Optional[Any]:
        if not self.queue:
            return None
        return self.bound.take(self.queue.popleft())

    def take_events(self) -> Optional[List[Any]]:
        events: List[Any] = []
        while self.queue:
            if events and type(self.queue[0]).__name__ == "_Overflowed":
                break
            event = self.bound.take(self.queue.popleft())
            if event is not None:
                events.append(event)
        return events or None


def outcome(call: Any) -> Tuple[str, Any]:
    try:
        return ("value", call())
    except PendingOverflow as exc:
        return ("overflow", exc.lost)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("notify"), st.sampled_from(CHANNELS), st.integers(1, 30)),
        st.tuples(st.just("reconnected")),
        st.tuples(st.just("open"), st.sets(st.sampled_from(CHANNELS), min_size=1),
                  st.integers(1, 12), st.sampled_from(["drop-oldest", "raise"])),
        st.tuples(st.just("close"), st.integers(0, 9)),
        st.tuples(st.just("next"), st.integers(0, 9)),
        st.tuples(st.just("take"), st.integers(0, 9)),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(operations)
def test_the_log_gives_every_subscription_what_its_own_queue_would(ops: List[Any]) -> None:
    hub = Hub()
    inbox, own = Pending(), Pending()
    pairs: List[Tuple[Reader, PlainSubscription]] = []
    serial = 0
    for op in ops:
        if op[0] == "notify":
            _, channel, count = op
            for _ in range(count):
                serial += 1
                inbox.append(Notify(1, channel, str(serial)))
        elif op[0] == "reconnected":
            inbox.append(Reconnected(0.5, 2, 1))
        else:
            items = list(inbox)
            hub.dispatch(inbox, own, lambda channel: False)
            for _, plain in pairs:
                mine = [i for i in items if type(i) is not Notify or i.channel in plain.channels]
                if mine:
                    plain.add(mine)
            if op[0] == "open":
                _, channels, bound, policy = op
                reader = hub.open(channels, bound, policy)
                pairs.append((reader, PlainSubscription(frozenset(channels), bound, policy)))
            elif pairs:
                reader, plain = pairs[op[1] % len(pairs)]
                if op[0] == "close":
                    hub.close(reader)
                    pairs.remove((reader, plain))
                elif op[0] == "next":
                    assert outcome(reader.next_event) == outcome(plain.next_event)
                else:
                    assert outcome(reader.take_events) == outcome(plain.take_events)
    assert hub.wanted() == {c for reader, _ in pairs for c in reader.feed.channels}


def test_a_subscription_that_never_reads_holds_only_its_bound() -> None:
    hub = Hub()
    idle = hub.open(["a"], 100, "drop-oldest")
    busy = hub.open(["a"], 2000, "drop-oldest")
    stuck = hub.open(["a"], 100, "raise")
    inbox, own = Pending(), Pending()
    for n in range(100_000):
        inbox.append(Notify(1, "a", str(n)))
        if n % 1000 == 999:
            hub.dispatch(inbox, own, lambda channel: False)
            assert len(busy.take_events() or []) == 1000
            assert len(idle.feed.log) <= 2 * 1000 + 100
            assert len(stuck.ready) <= 101
    first = idle.take_events()
    assert first is not None
    assert first[0] == Dropped(100_000 - 100)
    assert [e.payload for e in first[1:]] == [str(n) for n in range(99_900, 100_000)]  # type: ignore[union-attr]
    held = stuck.take_events()
    assert held is not None
    assert [e.payload for e in held] == [str(n) for n in range(100)]  # type: ignore[union-attr]
    with pytest.raises(PendingOverflow) as lost:
        stuck.take_events()
    assert lost.value.lost == 100_000 - 100


def test_one_append_serves_every_subscriber_of_a_channel_set() -> None:
    hub = Hub()
    readers = [hub.open(["a", "b"], 1000, "drop-oldest") for _ in range(1000)]
    assert len(hub.feeds) == 1
    inbox, own = Pending(), Pending()
    for n in range(10):
        inbox.append(Notify(1, "ab"[n % 2], str(n)))
    hub.dispatch(inbox, own, lambda channel: False)
    assert len(next(iter(hub.feeds.values())).log) == 10
    expected = [Notify(1, "ab"[n % 2], str(n)) for n in range(10)]
    assert all(reader.take_events() == expected for reader in readers)


def test_routing_to_the_clients_own_queue_and_to_callbacks() -> None:
    hub = Hub()
    seen: List[Any] = []
    hub.add_callback("a", seen.append)
    sub = hub.open(["b"], 10, "drop-oldest")
    inbox, own = Pending(), Pending()
    marker = Reconnected(1.0, 7, 2)
    for item in (Notify(1, "a", "x"), Notify(1, "b", "y"), Notify(1, "own", "z"), marker):
        inbox.append(item)
    hub.dispatch(inbox, own, lambda channel: channel == "own")
    assert list(own) == [Notify(1, "own", "z"), marker]
    assert sub.take_events() == [Notify(1, "b", "y"), marker]
    assert [event for _, event in hub.take_calls()] == [Notify(1, "a", "x"), marker]
    assert not inbox


def test_a_callback_backlog_is_bounded_and_says_what_it_lost() -> None:
    hub = Hub()
    hub.calls_bound = 5
    seen: List[Any] = []
    hub.add_callback("a", seen.append)
    inbox, own = Pending(), Pending()
    for n in range(8):
        inbox.append(Notify(1, "a", str(n)))
    hub.dispatch(inbox, own, lambda channel: False)
    events = [event for _, event in hub.take_calls()]
    assert events[0] == Dropped(3)
    assert [e.payload for e in events[1:]] == ["3", "4", "5", "6", "7"]


def test_counts_follow_opens_and_closes() -> None:
    hub = Hub()
    first = hub.open(["a"], 5, "drop-oldest")
    second = hub.open(["a", "b"], 5, "raise")
    hub.add_callback("c", print)
    assert hub.wanted() == {"a", "b", "c"}
    hub.close(first)
    assert hub.wanted() == {"a", "b", "c"}
    hub.close(second)
    hub.close(second)  # twice: nothing more
    assert hub.wanted() == {"c"}
    assert hub.remove_callback("c", print)
    assert not hub.remove_callback("c", print)
    assert not hub.active and not hub.feeds and not hub.by_channel


def test_bad_options_are_refused() -> None:
    hub = Hub()
    with pytest.raises(ValueError):
        hub.open([], 5, "drop-oldest")
    with pytest.raises(ValueError):
        hub.open(["a"], 0, "drop-oldest")
    with pytest.raises(ValueError):
        hub.open(["a"], 5, "sometimes")



