"""LISTEN/NOTIFY as PostgreSQL does it: one suite, run against the fake backend's pub/sub
server and against a real PostgreSQL, so that the fake cannot drift from the real thing.

Nothing is waited for by time: that a notification did not come is shown by a marker
notification sent after it, which must come first.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import pytest

import pgwire_pubsub
from pgwire_pubsub import DatabaseError, Notify, PubSub
from pgwire_pubsub.testing import Database, FakeBackend

Seen = List[Tuple[str, str]]


@pytest.fixture(params=["fake", "postgres"])
def dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """A connection string of the fake backend, or of a fresh real database."""
    if request.param == "fake":
        with FakeBackend() as fake:
            yield fake.dsn
    else:
        database: Database = request.getfixturevalue("postgres_server")
        yield database.dsn


@pytest.fixture
def listener(dsn: str) -> Iterator[PubSub]:
    ps = pgwire_pubsub.connect(dsn)
    yield ps
    ps.close()


@pytest.fixture
def sender(dsn: str) -> Iterator[PubSub]:
    ps = pgwire_pubsub.connect(dsn)
    yield ps
    ps.close()


def run(ps: PubSub, sql: str) -> object:
    return ps.conn.execute(sql)


def next_event(ps: PubSub) -> Notify:
    event = ps.get_event(select_timeout=10)
    assert isinstance(event, Notify), f"no notification within 10 s (got {event!r})"
    return event


def until_marker(listener: PubSub, marker_from: PubSub, channel: str = "c") -> Seen:
    """Every notification ``listener`` receives before a marker sent now on ``channel``."""
    run(marker_from, f"NOTIFY {channel}, 'marker'")
    seen: Seen = []
    while True:
        event = next_event(listener)
        if event.payload == "marker":
            return seen
        seen.append((event.channel, event.payload))


def sqlstate(ps: PubSub, sql: str, params: Optional[List[Optional[str]]] = None) -> str:
    with pytest.raises(DatabaseError) as excinfo:
        ps.conn.execute(sql, params)
    return str(excinfo.value.sqlstate)


def test_a_session_receives_its_own_notifications(listener: PubSub) -> None:
    run(listener, "LISTEN c")
    run(listener, "NOTIFY c, 'mine'")
    event = next_event(listener)
    assert (event.channel, event.payload) == ("c", "mine")
    assert event.pid == listener.conn.get_backend_pid()


def test_notifications_are_delivered_at_commit(listener: PubSub, sender: PubSub,
                                               dsn: str) -> None:
    run(listener, "LISTEN c")
    run(sender, "BEGIN")
    run(sender, "NOTIFY c, 'one'")
    run(sender, "SELECT pg_notify('c', 'two')")
    other = pgwire_pubsub.connect(dsn)
    try:
        assert until_marker(listener, other) == []  # not before the commit
    finally:
        other.close()
    run(sender, "COMMIT")
    assert [next_event(listener).payload for _ in range(2)] == ["one", "two"]


def test_nothing_is_delivered_on_rollback(listener: PubSub, sender: PubSub) -> None:
    run(listener, "LISTEN c")
    run(sender, "BEGIN")
    run(sender, "NOTIFY c, 'lost'")
    run(sender, "ROLLBACK")
    assert until_marker(listener, sender) == []


def test_order_is_kept_within_and_across_transactions(listener: PubSub, sender: PubSub,
                                                      dsn: str) -> None:
    other = pgwire_pubsub.connect(dsn)
    try:
        run(listener, "LISTEN c")
        run(sender, "BEGIN")
        for i in range(20):
            run(sender, f"NOTIFY c, 's{i}'")
        run(other, "NOTIFY c, 'o1'")
        run(sender, "COMMIT")
        run(other, "NOTIFY c, 'o2'")
        expected = ["o1"] + [f"s{i}" for i in range(20)] + ["o2"]
        assert [payload for _, payload in until_marker(listener, sender)] == expected
    finally:
        other.close()


def test_duplicates_within_one_transaction_are_sent_once(listener: PubSub,
                                                         sender: PubSub) -> None:
    run(listener, "LISTEN c")
    run(listener, "LISTEN d")
    run(sender, "BEGIN")
    for payload in ("a", "a", "b", "a"):
        run(sender, f"NOTIFY c, '{payload}'")
    run(sender, "NOTIFY d, 'a'")  # another channel: not a duplicate
    run(sender, "COMMIT")
    run(sender, "NOTIFY c, 'a'")  # other transactions: not duplicates either
    run(sender, "NOTIFY c, 'a'")
    run(sender, "NOTIFY c, 'x'; NOTIFY c, 'x'")  # one implicit transaction
    assert until_marker(listener, sender) == [
        ("c", "a"), ("c", "b"), ("d", "a"), ("c", "a"), ("c", "a"), ("c", "x")]


def test_listen_takes_effect_at_commit(listener: PubSub, sender: PubSub) -> None:
    """A session reads its queue when its transaction ends and only then looks at the
    channels: listening on d already, it also gets what came on c during the block."""
    run(listener, "LISTEN d")
    run(listener, "BEGIN")
    run(listener, "LISTEN c")
    assert run(listener, "SELECT pg_listening_channels()") == [("d",)]
    run(sender, "NOTIFY c, 'early'")
    run(listener, "COMMIT")
    assert run(listener, "SELECT pg_listening_channels()") == [("d",), ("c",)]
    run(sender, "NOTIFY c, 'late'")
    assert until_marker(listener, sender, "d") == [("c", "early"), ("c", "late")]


def test_a_rolled_back_listen_never_happened(listener: PubSub, sender: PubSub) -> None:
    run(listener, "LISTEN d")
    run(listener, "BEGIN")
    run(listener, "LISTEN c")
    run(listener, "ROLLBACK")
    run(sender, "NOTIFY c, 'x'")
    assert until_marker(listener, sender, "d") == []
    assert run(listener, "SELECT pg_listening_channels()") == [("d",)]


def test_unlisten_one_channel_or_all(listener: PubSub, sender: PubSub) -> None:
    run(listener, "LISTEN c")
    run(listener, "LISTEN d")
    run(listener, "UNLISTEN c")
    run(sender, "NOTIFY c, 'x'")
    assert until_marker(listener, sender, "d") == []
    run(listener, "UNLISTEN *")
    assert run(listener, "SELECT pg_listening_channels()") == []


def test_a_session_in_a_transaction_gets_notifications_after_it(listener: PubSub,
                                                                sender: PubSub) -> None:
    run(listener, "LISTEN c")
    run(listener, "BEGIN")
    run(sender, "NOTIFY c, 'waits'")
    run(listener, "SELECT 1")  # a round trip inside the block: nothing is delivered
    assert listener.get_event() is None
    run(listener, "COMMIT")
    assert next_event(listener).payload == "waits"


def test_an_error_fails_the_block_and_its_notifications(listener: PubSub,
                                                        sender: PubSub) -> None:
    run(listener, "LISTEN c")
    run(sender, "BEGIN")
    run(sender, "NOTIFY c, 'doomed'")
    assert sqlstate(sender, "SELECT pg_notify('', 'x')") == "22023"
    assert sqlstate(sender, "NOTIFY c, 'ignored'") == "25P02"
    run(sender, "COMMIT")  # rolls back
    assert until_marker(listener, sender) == []


def test_an_error_rolls_back_a_whole_simple_query(listener: PubSub, sender: PubSub) -> None:
    run(listener, "LISTEN c")
    assert sqlstate(sender, "NOTIFY c, 'before'; SELECT pg_notify('', 'x')") == "22023"
    assert until_marker(listener, sender) == []


def test_the_same_errors_as_postgresql(sender: PubSub) -> None:
    assert sqlstate(sender, "SELECT pg_notify('', 'x')") == "22023"
    assert sqlstate(sender, "SELECT pg_notify($1, $2)", ["c", "x" * 8000]) == "22023"
    assert sqlstate(sender, "SELECT pg_notify($1, $2)", ["c" * 64, "x"]) == "22023"
    assert run(sender, "SELECT 1") == [("1",)]  # the session is fine afterwards


def test_unquoted_channel_names_fold_to_lower_case(listener: PubSub, sender: PubSub) -> None:
    run(listener, "LISTEN Foo")
    assert run(listener, "SELECT pg_listening_channels()") == [("foo",)]
    run(sender, 'NOTIFY "Foo", \'quoted\'')
    run(sender, "NOTIFY FOO, 'folded'")
    assert until_marker(listener, sender, "foo") == [("foo", "folded")]


def test_payloads_arrive_exactly(listener: PubSub, sender: PubSub) -> None:
    listener.listen("ch an\"nel")
    payloads = ["it's", "back\\slash", "line\nbreak", "\u00e9\u2603\U0001f600", ""]
    for payload in payloads:
        sender.notify("ch an\"nel", payload)
    run(sender, "NOTIFY \"ch an\"\"nel\", 'it''s plain'")
    run(sender, "NOTIFY \"ch an\"\"nel\", E'e\\'s \\\\ \\n'")
    got = [next_event(listener).payload for _ in range(len(payloads) + 2)]
    assert got == [*payloads, "it's plain", "e's \\ \n"]


def test_pg_notify_through_the_extended_protocol(listener: PubSub, sender: PubSub) -> None:
    run(listener, "LISTEN c")
    assert sender.conn.execute("SELECT pg_notify($1, $2)", ["c", "param"]) == [("",)]
    assert sender.conn.execute("SELECT pg_notify($1, $2)", ["c", None]) == [("",)]
    assert until_marker(listener, sender) == [("c", "param"), ("c", "")]


def test_listening_twice_is_listening_once(listener: PubSub, sender: PubSub) -> None:
    run(listener, "LISTEN c")
    run(listener, "LISTEN c")
    run(listener, "LISTEN b")
    assert run(listener, "SELECT pg_listening_channels()") == [("c",), ("b",)]
    run(sender, "NOTIFY c, 'once'")
    assert until_marker(listener, sender) == [("c", "once")]


def test_transaction_commands_outside_a_block_warn_and_go_on(sender: PubSub) -> None:
    run(sender, "COMMIT")
    run(sender, "ROLLBACK")
    run(sender, "BEGIN")
    run(sender, "BEGIN")
    run(sender, "COMMIT")
    assert run(sender, "SELECT 1") == [("1",)]
    assert any("no transaction in progress" in n for n in sender.conn.notices)
    assert any("already a transaction in progress" in n for n in sender.conn.notices)
