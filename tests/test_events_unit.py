"""The bound on pending notifications, the reconnection policy, and the protocol core with a
bound: all without a server."""

from __future__ import annotations

import random
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgwire_pubsub import Dropped, Notify, PendingOverflow, Reconnected, ReconnectPolicy
from pgwire_pubsub.protocol.events import Bound, QueueItem, _Overflowed
from pgwire_pubsub.protocol.machine import Machine, State
from pgwire_pubsub.protocol.pending import Pending
from pgwire_pubsub.testing.wirebytes import auth_ok, backend_key, notify, ready

# -- helpers ---------------------------------------------------------------------


def notifies(start: int, stop: int) -> List[Notify]:
    """Notify(1, 'c', '<n>') for n in [start, stop): the payload is a sequence number."""
    return [Notify(1, "c", str(n)) for n in range(start, stop)]


def queue_of(*items: Iterable[QueueItem]) -> Pending:
    out = Pending()
    for part in items:
        out.extend(part)
    return out


def only_notifies(queue: Iterable[object]) -> List[Notify]:
    return [item for item in queue if type(item) is Notify]


RECONNECTED = Reconnected(0.25, 4321, 2)


def ready_protocol(bound: Optional[Bound]) -> Machine:
    proto = Machine()
    proto.start({"user": "u", "database": "d"})
    proto.receive_data(auth_ok() + backend_key(77, 88) + ready())
    while proto.next_message() is not None:
        pass
    assert proto.state is State.READY
    proto.bound = bound
    return proto


def split(data: bytes, cuts: Iterable[int]) -> List[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, deduplicated)."""
    if not data:
        return []
    points = sorted({c % len(data) for c in cuts} - {0})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


def take_all(bound: Bound, queue: Pending) -> List[object]:
    """Drain ``queue`` as PubSub does: events, and PendingOverflow exceptions in place."""
    out: List[object] = []
    while queue:
        try:
            out.append(bound.take(queue.popleft()))
        except PendingOverflow as exc:
            out.append(exc)
    return out


# -- Bound: 'raise' ----------------------------------------------------------------


def test_raise_keeps_the_oldest_and_marks_the_loss() -> None:
    queue = queue_of(notifies(0, 5))
    Bound(3, "raise").enforce(queue)
    assert list(queue) == [*notifies(0, 3), _Overflowed(2)]


def test_raise_within_the_bound_changes_nothing() -> None:
    queue = queue_of(notifies(0, 3))
    Bound(3, "raise").enforce(queue)
    assert list(queue) == notifies(0, 3)


def test_raise_markers_merge_while_nothing_is_taken() -> None:
    bound = Bound(3, "raise")
    queue = queue_of(notifies(0, 5))
    bound.enforce(queue)
    queue.extend(notifies(5, 9))
    bound.enforce(queue)
    assert list(queue) == [*notifies(0, 3), _Overflowed(6)]
    assert len(only_notifies(queue)) <= bound.max_pending


def test_raise_a_later_loss_gets_its_own_marker_at_its_own_point() -> None:
    bound = Bound(3, "raise")
    queue = queue_of(notifies(0, 5))
    bound.enforce(queue)  # [0, 1, 2, lost 2]
    queue.popleft()
    queue.popleft()  # taken: 0, 1
    queue.extend(notifies(5, 8))  # [2, lost 2, 5, 6, 7]
    bound.enforce(queue)
    # Markers do not count toward the bound: 2, 5 and 6 are kept, 7 is lost.
    assert list(queue) == [
        Notify(1, "c", "2"),
        _Overflowed(2),
        Notify(1, "c", "5"),
        Notify(1, "c", "6"),
        _Overflowed(1),
    ]


def test_take_raises_pending_overflow_with_the_count() -> None:
    bound = Bound(3, "raise")
    queue = queue_of(notifies(0, 10))
    bound.enforce(queue)
    events = take_all(bound, queue)
    assert events[:3] == notifies(0, 3)
    error = events[3]
    assert isinstance(error, PendingOverflow)
    assert error.lost == 7
    assert "7 notification(s) were lost" in str(error)
    assert "max_pending=3" in str(error)
    assert len(events) == 4


def test_take_passes_events_through() -> None:
    bound = Bound(3, "raise")
    for item in (Notify(1, "c", "x"), Dropped(4), RECONNECTED):
        assert bound.take(item) is item


def test_raise_a_reconnected_marker_on_a_full_queue_is_not_an_overflow() -> None:
    bound = Bound(3, "raise")
    queue = queue_of(notifies(0, 3), [RECONNECTED])
    bound.enforce(queue)  # what PubSubCore._reconnect / Machine.adopt_queue do
    assert list(queue) == [*notifies(0, 3), RECONNECTED]


# -- Bound: 'drop-oldest' ---------------------------------------------------------


def test_drop_oldest_keeps_the_newest_and_says_how_many_went_first() -> None:
    queue = queue_of(notifies(0, 5))
    Bound(3, "drop-oldest").enforce(queue)
    assert list(queue) == [Dropped(2), *notifies(2, 5)]


def test_drop_oldest_markers_merge_and_the_counts_stay_exact() -> None:
    bound = Bound(3, "drop-oldest")
    queue = queue_of(notifies(0, 5))
    bound.enforce(queue)
    queue.extend(notifies(5, 7))
    bound.enforce(queue)
    assert type(queue[0]) is Dropped
    assert [type(item) for item in list(queue)[1:]] == [Notify] * (len(queue) - 1)
    kept = only_notifies(queue)
    dropped = queue[0]
    assert isinstance(dropped, Dropped)
    assert dropped.dropped + len(kept) == 7
    assert kept == notifies(7 - len(kept), 7)  # the newest, in order
    assert len(only_notifies(queue)) <= bound.max_pending


def test_drop_oldest_keeps_max_pending_notifications_after_a_second_overflow() -> None:
    bound = Bound(3, "drop-oldest")
    queue = queue_of(notifies(0, 5))
    bound.enforce(queue)
    queue.extend(notifies(5, 7))
    bound.enforce(queue)
    assert list(queue) == [Dropped(4), *notifies(4, 7)]


def test_drop_oldest_a_reconnected_marker_survives() -> None:
    bound = Bound(3, "drop-oldest")
    queue = queue_of(notifies(0, 2), [RECONNECTED], notifies(2, 6))
    bound.enforce(queue)
    assert RECONNECTED in queue
    assert type(queue[0]) is Dropped
    kept = only_notifies(queue)
    dropped = queue[0]
    assert isinstance(dropped, Dropped)
    assert dropped.dropped + len(kept) == 6
    assert kept == notifies(6 - len(kept), 6)
    # Nothing else appears: one Dropped, the marker, the notifications.
    assert len(queue) == 2 + len(kept)


def test_drop_oldest_a_reconnected_marker_does_not_evict_a_notification() -> None:
    bound = Bound(3, "drop-oldest")
    queue = queue_of(notifies(0, 3), [RECONNECTED])
    bound.enforce(queue)
    assert list(queue) == [*notifies(0, 3), RECONNECTED]


def test_drop_oldest_take_hands_over_dropped() -> None:
    bound = Bound(2, "drop-oldest")
    queue = queue_of(notifies(0, 4))
    bound.enforce(queue)
    assert take_all(bound, queue) == [Dropped(2), *notifies(2, 4)]


# -- Bound: validation --------------------------------------------------------------


@pytest.mark.parametrize("max_pending", [0, -1, -100])
def test_bound_refuses_a_max_pending_below_one(max_pending: int) -> None:
    with pytest.raises(ValueError, match="max_pending"):
        Bound(max_pending, "raise")


@pytest.mark.parametrize("policy", ["drop-newest", "drop_oldest", "RAISE", ""])
def test_bound_refuses_an_unknown_policy(policy: str) -> None:
    with pytest.raises(ValueError, match="overflow must be one of"):
        Bound(10, policy)


def test_bound_of_one() -> None:
    queue = queue_of(notifies(0, 4))
    Bound(1, "raise").enforce(queue)
    assert list(queue) == [Notify(1, "c", "0"), _Overflowed(3)]


# -- ReconnectPolicy -------------------------------------------------------------------


def test_delay_is_exponential_and_capped_without_jitter() -> None:
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=1.0, multiplier=2.0, jitter=0.0)
    delays = [policy.delay(n) for n in range(1, 8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_delay_with_multiplier_one_is_constant() -> None:
    policy = ReconnectPolicy(initial_delay=0.5, multiplier=1.0, jitter=0.0)
    assert {policy.delay(n) for n in range(1, 50)} == {0.5}


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 1.0])
def test_jitter_stays_within_its_range(jitter: float) -> None:
    policy = ReconnectPolicy(initial_delay=0.1, max_delay=3.0, multiplier=3.0, jitter=jitter)
    rng = random.Random(1234)
    for attempt in range(1, 12):
        base = min(3.0, 0.1 * 3.0 ** (attempt - 1))
        for _ in range(50):
            delay = policy.delay(attempt, rng)
            assert base * (1 - jitter) - 1e-12 <= delay <= base + 1e-12


def test_jitter_spreads_the_delays() -> None:
    policy = ReconnectPolicy(initial_delay=1.0, max_delay=1.0, jitter=0.5)
    rng = random.Random(99)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert len(set(delays)) > 150
    assert min(delays) < 0.6 and max(delays) > 0.9


def test_delay_is_deterministic_with_a_seeded_rng() -> None:
    policy = ReconnectPolicy()
    first = [policy.delay(n, random.Random(7)) for n in range(1, 20)]
    again = [policy.delay(n, random.Random(7)) for n in range(1, 20)]
    other = [policy.delay(n, random.Random(8)) for n in range(1, 20)]
    assert first == again
    assert first != other
    one_rng = random.Random(7)
    sequence = [policy.delay(n, one_rng) for n in range(1, 20)]
    one_rng = random.Random(7)
    assert sequence == [policy.delay(n, one_rng) for n in range(1, 20)]


def test_delay_stays_capped_after_very_many_attempts() -> None:
    policy = ReconnectPolicy(jitter=0.0)  # keeps trying for ever: no max_attempts/duration
    assert policy.delay(1025) == policy.max_delay
    assert policy.delay(100_000) == policy.max_delay


def test_gives_up_after_max_attempts() -> None:
    policy = ReconnectPolicy(max_attempts=3)
    assert [policy.gives_up(n, 0.0) for n in (1, 2, 3, 4)] == [False, False, True, True]


def test_gives_up_after_max_duration() -> None:
    policy = ReconnectPolicy(max_duration=5.0)
    assert not policy.gives_up(1000, 4.99)
    assert policy.gives_up(1, 5.0)
    assert policy.gives_up(1, 60.0)


def test_gives_up_on_whichever_bound_comes_first() -> None:
    policy = ReconnectPolicy(max_attempts=10, max_duration=2.0)
    assert policy.gives_up(10, 0.0)
    assert policy.gives_up(1, 2.0)
    assert not policy.gives_up(9, 1.9)


def test_never_gives_up_without_bounds() -> None:
    policy = ReconnectPolicy()
    assert not any(policy.gives_up(n, n * 3600.0) for n in (1, 10, 10_000, 10**9))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"initial_delay": -0.1}, "negative"),
        ({"max_delay": -1.0}, "negative"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -3}, "max_attempts"),
    ],
)
def test_policy_validation(kwargs: Dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReconnectPolicy(**kwargs)


def test_policy_edge_values_are_accepted() -> None:
    ReconnectPolicy(initial_delay=0.0, max_delay=0.0, multiplier=1.0, jitter=0.0, max_attempts=1)
    ReconnectPolicy(jitter=1.0)


# -- the protocol core with a bound ------------------------------------------------------


def burst(count: int, start: int = 1) -> bytes:
    """The NotificationResponses of ``notifies(start, start + count)``."""
    return b"".join(notify(1, "c", str(n)) for n in range(start, start + count))


@pytest.mark.parametrize("chunking", ["whole", "halves", "bytewise", "per-message"])
def test_protocol_raise_keeps_the_first_and_records_the_rest(chunking: str) -> None:
    bound = Bound(100, "raise")
    proto = ready_protocol(bound)
    data = burst(250)
    pieces = {
        "whole": [data],
        "halves": split(data, [len(data) // 2 + 3]),
        "bytewise": [data[i : i + 1] for i in range(len(data))],
        "per-message": [notify(1, "c", str(n)) for n in range(1, 251)],
    }[chunking]
    for piece in pieces:
        proto.receive_data(piece)
        assert len(only_notifies(proto.notifications)) <= bound.max_pending
    assert list(proto.notifications) == [*notifies(1, 101), _Overflowed(150)]
    assert proto.state is State.READY


def test_protocol_drop_oldest_in_one_read_keeps_the_newest_max_pending() -> None:
    bound = Bound(100, "drop-oldest")
    proto = ready_protocol(bound)
    proto.receive_data(burst(250))
    assert list(proto.notifications) == [Dropped(150), *notifies(151, 251)]


def test_protocol_drop_oldest_does_not_depend_on_chunking() -> None:
    whole = ready_protocol(Bound(100, "drop-oldest"))
    whole.receive_data(burst(250))
    halves = ready_protocol(Bound(100, "drop-oldest"))
    data = burst(250)
    for piece in split(data, [len(data) // 2]):
        halves.receive_data(piece)
    assert list(halves.notifications) == list(whole.notifications)


def check_accounting(outcomes: List[object], total: int) -> Tuple[int, int]:
    """Every notification is delivered once, in order, or counted in a marker at the point
    where it went missing.  Returns (delivered, lost)."""
    last, gap, delivered, lost = 0, 0, 0, 0
    for outcome in outcomes:
        if isinstance(outcome, Notify):
            seq = int(outcome.payload)
            assert seq == last + gap + 1, f"{outcome!r} after {last} with {gap} reported lost"
            last, gap = seq, 0
            delivered += 1
        else:
            count = outcome.lost if isinstance(outcome, PendingOverflow) else None
            if isinstance(outcome, Dropped):
                count = outcome.dropped
            assert count is not None and count > 0, f"unexpected {outcome!r}"
            gap += count
            lost += count
    assert last + gap == total, f"{total - last - gap} notification(s) vanished silently"
    return delivered, lost


@settings(max_examples=200, deadline=None)
@given(
    max_pending=st.integers(1, 30),
    policy=st.sampled_from(["raise", "drop-oldest"]),
    total=st.integers(0, 150),
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
    takes=st.lists(st.integers(0, 40), max_size=40),
)
def test_protocol_bound_holds_and_every_loss_is_recorded(
    max_pending: int, policy: str, total: int, cuts: List[int], takes: List[int]
) -> None:
    bound = Bound(max_pending, policy)
    proto = ready_protocol(bound)
    queue = proto.notifications
    outcomes: List[object] = []
    pieces = split(burst(total), cuts)
    for index, piece in enumerate(pieces):
        proto.receive_data(piece)
        assert len(only_notifies(queue)) <= max_pending
        for _ in range(takes[index] if index < len(takes) else 0):
            if not queue:
                break
            try:
                outcomes.append(bound.take(queue.popleft()))
            except PendingOverflow as exc:
                outcomes.append(exc)
    outcomes.extend(take_all(bound, queue))
    delivered, lost = check_accounting(outcomes, total)
    assert delivered + lost == total
    if policy == "raise":
        assert not any(isinstance(o, Dropped) for o in outcomes)
    else:
        assert not any(isinstance(o, PendingOverflow) for o in outcomes)
    if total <= max_pending:
        assert lost == 0
