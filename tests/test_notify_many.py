"""notify_many: many notifications in one statement, in order, atomically, safely quoted."""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import pytest

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import Notify, PubSub
from pgwire_pubsub._shared import pubsub as pubsub_module
from pgwire_pubsub._shared.channels import text_array
from pgwire_pubsub.testing.pgcluster import Server

TIMEOUT = 10  # seconds: a failure guard only

pytestmark = pytest.mark.all_servers("notify-many")

AWKWARD = [
    "",
    "plain",
    'double "quotes"',
    "single 'quotes'",
    "back\\slash \\\\ and \\\"",
    "{braces}, commas, NULL",
    "NULL",
    "emoji 😀 and ünïcödé",
    " leading and trailing spaces ",
    "new\nline\ttab",
]


@pytest.fixture
def pair(pg: Server, open_client: Callable[..., PubSub]) -> Tuple[PubSub, PubSub]:
    return open_client(**pg.dsn_kwargs()), open_client(**pg.dsn_kwargs())


def receive(ps: PubSub, count: int) -> List[Notify]:
    got: List[Notify] = []
    while len(got) < count:
        events = ps.get_events(select_timeout=TIMEOUT)
        assert events is not None, f"only {len(got)} of {count} arrived"
        got.extend(e for e in events if isinstance(e, Notify))
    return got


def test_text_array_round_trips_through_the_server(pg: Server) -> None:
    with pgpubsub.connect(**pg.dsn_kwargs()) as ps:
        rows = ps.conn.execute("SELECT unnest($1::text[])", [text_array(AWKWARD)])
    assert [row[0] for row in rows] == AWKWARD


def test_in_order_with_awkward_payloads_and_channels(pair: Tuple[PubSub, PubSub]) -> None:
    listener, sender = pair
    channels = ["plain", "MixedCase", 'we"ird', "ünï"]
    for channel in channels:
        listener.listen(channel)
    items = [(channels[i % len(channels)], f"{i}:{AWKWARD[i % len(AWKWARD)]}") for i in range(300)]
    assert sender.notify_many(items) == 300
    pid = sender.conn.get_backend_pid()
    assert receive(listener, 300) == [Notify(pid, c, p) for c, p in items]
    assert listener.get_event() is None


def test_more_than_one_statement_stays_in_order_and_atomic(
    pair: Tuple[PubSub, PubSub], monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, sender = pair
    listener.listen("big")
    monkeypatch.setattr(pubsub_module, "BATCH_SIZE", 7)
    items = [("big", str(i)) for i in range(50)]
    assert sender.notify_many(items) == 50
    assert [n.payload for n in receive(listener, 50)] == [str(i) for i in range(50)]
    assert sender.conn.transaction_status == "I"

    # A failure in a later statement takes back the earlier ones: nothing arrives.
    calls: List[int] = []
    real = text_array  # the function pubsub imports from channels

    def broken_third(values: Any) -> str:
        calls.append(1)
        return "{not an array" if len(calls) == 5 else real(values)

    monkeypatch.setattr(pubsub_module, "text_array", broken_third)
    with pytest.raises(pgpubsub.DataError, match="none of the 50 notifications was sent"):
        sender.notify_many(items)
    assert sender.conn.transaction_status == "I"
    sender.notify("big", "after")
    assert [n.payload for n in receive(listener, 1)] == ["after"]


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        (("", "x"), ValueError, "notification 2: a channel name cannot be empty"),
        (("c" * 64, "x"), ValueError, "notification 2: channel name is 64 bytes"),
        (("ok", "x" * 8000), ValueError, "notification 2: payload is 8000 bytes"),
        (("ok", "nul\0"), ValueError, "notification 2: a payload cannot contain a NUL"),
        (("ok", 5), TypeError, "notification 2: a payload must be a str"),
        (("ok",), ValueError, "notification 2"),
    ],
)
def test_one_bad_item_fails_the_batch_before_anything_is_sent(
    pair: Tuple[PubSub, PubSub], bad: Tuple[Any, ...], error: type, words: str
) -> None:
    listener, sender = pair
    listener.listen("ok")
    with pytest.raises(error, match=words):
        sender.notify_many([("ok", "0"), ("ok", "1"), bad, ("ok", "3")])
    sender.notify("ok", "after")
    assert [n.payload for n in receive(listener, 1)] == ["after"]


def test_payload_defaults_and_empty_batches(pair: Tuple[PubSub, PubSub]) -> None:
    listener, sender = pair
    listener.listen("d")
    none: Optional[str] = None
    assert sender.notify_many([]) == 0
    assert sender.notify_many(iter([("d", none), ("d", "x")])) == 2
    assert [n.payload for n in receive(listener, 2)] == ["", "x"]


def test_identical_notifications_in_one_batch_arrive_once(pair: Tuple[PubSub, PubSub]) -> None:
    """PostgreSQL folds identical notifications of one transaction into one (documented)."""
    listener, sender = pair
    listener.listen("dup")
    assert sender.notify_many([("dup", "same"), ("dup", "same"), ("dup", "other")]) == 3
    assert [n.payload for n in receive(listener, 2)] == ["same", "other"]
    assert listener.get_event(select_timeout=0.2) is None


def test_inside_a_transaction_it_waits_for_commit(pair: Tuple[PubSub, PubSub]) -> None:
    listener, sender = pair
    listener.listen("tx")
    sender.conn.execute("BEGIN")
    sender.notify_many([("tx", "a"), ("tx", "b")])
    assert listener.get_event(select_timeout=0.2) is None
    sender.conn.execute("COMMIT")
    assert [n.payload for n in receive(listener, 2)] == ["a", "b"]


def test_a_server_error_keeps_the_connection_usable(
    pair: Tuple[PubSub, PubSub], monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, sender = pair
    listener.listen("s")
    monkeypatch.setattr(pubsub_module, "text_array", lambda values: "{not an array")
    with pytest.raises(pgpubsub.DataError, match="none of the 1 notifications was sent"):
        sender.notify_many([("s", "x")])
    monkeypatch.undo()
    sender.notify_many([("s", "y")])
    assert [n.payload for n in receive(listener, 1)] == ["y"]
    assert listener.get_event(select_timeout=0.2) is None
