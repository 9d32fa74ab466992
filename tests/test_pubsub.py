"""The pgpubsub API against a real server: delivery, channel names, payloads, failures."""

from __future__ import annotations

import logging
import random
import select
import threading
import uuid
from typing import Any, Callable, List, Optional, Set, Tuple, cast

import pytest
from aioadapter import SyncPubSub
from conftest import CLIENTS, UVLOOP, blocking_only, client_kind_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import (
    InterfaceError,
    Notify,
    OperationalError,
    ProgrammingError,
    ProtocolViolation,
    PubSub,
)
from pgwire_pubsub._blocking import socketio
from pgwire_pubsub._blocking.connection import Connection, connect_raw
from pgwire_pubsub.protocol import _bulk as bulk
from pgwire_pubsub.protocol import decoder as decoder_module
from pgwire_pubsub.protocol.events import Event
from pgwire_pubsub.testing.pgcluster import LineReader, Server, in_thread, lit, wait_for

TIMEOUT = 10  # seconds: a failure guard, never a performance target


# -- helpers ---------------------------------------------------------------


pytestmark = pytest.mark.all_servers("listen-notify")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"



def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def psql_notify(pg: Server, *pairs: Tuple[str, str]) -> int:
    """Send (channel, payload) pairs from psql in one transaction; the sender's pid."""
    calls = "".join(f"SELECT pg_notify({lit(c)}, {lit(p)}); " for c, p in pairs)
    out = pg.psql(f"BEGIN; {calls}SELECT pg_backend_pid(); COMMIT;")
    return int(out.split()[-1])


def listening(ps: PubSub) -> Set[str]:
    """The channels the server says this session listens on."""
    return {row[0] for row in ps.conn.execute("SELECT pg_listening_channels()")}


def receive(ps: PubSub, count: int, timeout: float = TIMEOUT) -> List[Notify]:
    """Exactly ``count`` notifications, each within ``timeout`` seconds."""
    got: List[Notify] = []
    while len(got) < count:
        event = ps.get_event(select_timeout=timeout)
        assert event is not None, f"only {len(got)} of {count} notifications arrived: {got!r}"
        assert isinstance(event, Notify)  # no marker options: only notifications
        got.append(event)
    return got


def readable(ps: PubSub, timeout: float = TIMEOUT) -> bool:
    """Something is on the way: readable on the socket (blocking client), or already taken
    in by the reader (asyncio client)."""
    if isinstance(ps, SyncPubSub):
        return bool(wait_for(lambda: ps.conn.notifications.items, timeout))
    ready, _, _ = select.select([ps.conn.fileno()], [], [], timeout)
    return bool(ready)


def backend_gone(pg: Server, pid: int) -> Callable[[], bool]:
    def gone() -> bool:
        return pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}") == "0\n"

    return gone



@pytest.fixture(params=[*CLIENTS, *UVLOOP])
def client_kind(request: pytest.FixtureRequest) -> str:
    """The core behaviours run on uvloop too."""
    return client_kind_of(request)


@pytest.fixture
def connect(pg: Server, open_client: Callable[..., PubSub]) -> Callable[..., PubSub]:
    def make(**over: Any) -> PubSub:
        return open_client(**pg.dsn_kwargs(**over))

    return make


@pytest.fixture
def pubsub(connect: Callable[..., PubSub]) -> PubSub:
    return connect()


def round_trip(ps: PubSub) -> None:
    """The PubSub still listens and notifies, and nothing else is waiting."""
    channel = unique("alive")
    ps.listen(channel)
    ps.notify(channel, "still alive")
    assert ps.get_event(select_timeout=TIMEOUT) == Notify(
        ps.conn.get_backend_pid(), channel, "still alive"
    )
    assert ps.get_event() is None
    ps.unlisten(channel)


# -- the pgpubsub README ----------------------------------------------------


def test_readme_example(pg: Server) -> None:
    kwargs = pg.dsn_kwargs(dbname=None, database="pubsub")
    pubsub = pgpubsub.connect(**kwargs)
    try:
        assert pubsub.conn.execute("SELECT current_database()") == [("pubsub",)]
        pubsub.notify("test_channel", "some message")
        pubsub.listen("test")
        assert pubsub.get_event() is None  # nothing delivered yet
        pubsub.notify("test", "message 1")
        pubsub.notify("test", "message 2")
        pid = pubsub.conn.get_backend_pid()
        first = pubsub.get_event()
        assert repr(first) == f"Notify({pid}, 'test', 'message 1')"
        assert repr(pubsub.get_event()) == f"Notify({pid}, 'test', 'message 2')"
        assert pubsub.get_event() is None  # no more messages

        pubsub.notify("test", "message 3")

        def first_event() -> Notify:
            for e in pubsub.events():
                assert isinstance(e, Notify)
                return e
            raise AssertionError("events() ended")

        e = in_thread(first_event)()
        assert (e.pid, e.channel, e.payload) == (pid, "test", "message 3")
    finally:
        pubsub.close()


def test_connect_with_a_dsn_string(pg: Server) -> None:
    with pgpubsub.connect(pg.dsn(dbname="postgres"), dbname="pubsub") as pubsub:
        assert pubsub.conn.execute("SELECT current_database()") == [("pubsub",)]
        round_trip(pubsub)


def test_event_attributes_and_sender_pid(connect: Callable[..., PubSub]) -> None:
    listener, sender = connect(), connect()
    channel = unique("attrs")
    listener.listen(channel)
    sender.notify(channel, "payload")
    event = listener.get_event(select_timeout=TIMEOUT)
    assert isinstance(event, Notify)
    assert event.pid == sender.conn.get_backend_pid()
    assert event.pid != listener.conn.get_backend_pid() > 0
    assert event.channel == channel
    assert event.payload == "payload"


def test_pid_of_a_psql_sender(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("from_psql")
    pid = psql_notify(pg, ("from_psql", "hi"))
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(pid, "from_psql", "hi")


# -- get_event / get_events -------------------------------------------------


def test_get_event_returns_pending_in_order(pubsub: PubSub) -> None:
    pubsub.listen("order")
    for i in range(5):
        pubsub.notify("order", str(i))
    got = [pubsub.get_event() for _ in range(5)]
    # No marker options: every event is a notification.
    assert [cast(Notify, e).payload for e in got if e is not None] == ["0", "1", "2", "3", "4"]
    assert pubsub.get_event() is None


def test_get_events_returns_all_pending_then_none(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("many")
    assert pubsub.get_events() is None
    pubsub.notify("many", "a")
    pubsub.notify("many", "b")
    pid = pubsub.conn.get_backend_pid()
    assert pubsub.get_events() == [Notify(pid, "many", "a"), Notify(pid, "many", "b")]
    assert pubsub.get_events() is None
    assert pubsub.get_event() is None

    psql_pid = psql_notify(pg, ("many", "x"), ("many", "y"), ("many", "z"))
    got: List[Event] = []
    while len(got) < 3:
        events = pubsub.get_events(select_timeout=TIMEOUT)
        assert events, f"got only {got!r}"
        got += events
    assert got == [Notify(psql_pid, "many", p) for p in "xyz"]
    assert pubsub.get_events() is None


def test_get_event_times_out_with_none(pubsub: PubSub) -> None:
    pubsub.listen("quiet")
    assert pubsub.get_event(select_timeout=0.2) is None
    assert pubsub.get_events(select_timeout=0.2) is None


def test_get_event_waits_for_a_psql_notification(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("later")
    pid = psql_notify(pg, ("later", "sent by psql"))
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(pid, "later", "sent by psql")


def test_get_event_receives_while_blocked(connect: Callable[..., PubSub]) -> None:
    listener, sender = connect(), connect()
    listener.listen("blocked")
    waiting = threading.Event()

    def send() -> None:
        assert waiting.wait(TIMEOUT)
        sender.notify("blocked", "wake up")

    join = in_thread(send)
    waiting.set()
    event = listener.get_event(select_timeout=TIMEOUT)
    join()
    assert event == Notify(sender.conn.get_backend_pid(), "blocked", "wake up")


@pytest.mark.parametrize("method", ["get_event", "get_events", "events"])
def test_select_timeout_none_waits_without_limit(pg: Server, pubsub: PubSub, method: str) -> None:
    pubsub.listen("forever")
    pid = psql_notify(pg, ("forever", "came"))
    if method == "events":
        got = in_thread(lambda: next(pubsub.events(select_timeout=None)))()
    else:
        got = in_thread(lambda: getattr(pubsub, method)(select_timeout=None))()
    expected = Notify(pid, "forever", "came")
    assert got == ([expected] if method == "get_events" else expected)


# -- events() ---------------------------------------------------------------


def test_events_yields_notifications(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("stream")
    pid = psql_notify(pg, ("stream", "1"), ("stream", "2"), ("stream", "3"))
    got: List[Event] = []
    for event in pubsub.events(select_timeout=TIMEOUT, yield_timeouts=True):
        assert event is not None, f"only {got!r} arrived"
        got.append(event)
        if len(got) == 3:
            break
    assert got == [Notify(pid, "stream", p) for p in "123"]


def test_events_yield_timeouts_gives_none_when_idle(pubsub: PubSub) -> None:
    pubsub.listen("idle")
    stream = pubsub.events(select_timeout=0.2, yield_timeouts=True)
    assert next(stream) is None
    assert next(stream) is None
    pubsub.notify("idle", "now")
    assert next(stream) == Notify(pubsub.conn.get_backend_pid(), "idle", "now")


def test_events_without_yield_timeouts_never_yields_none(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("no_none")
    waiting = threading.Event()

    def send() -> int:
        assert waiting.wait(TIMEOUT)
        return psql_notify(pg, ("no_none", "eventually"))  # psql takes many 10 ms timeouts

    join = in_thread(send)
    stream = pubsub.events(select_timeout=0.01)
    waiting.set()
    event = in_thread(lambda: next(stream))()
    assert event == Notify(join(), "no_none", "eventually")


def test_events_hands_over_received_notifications_at_once(pubsub: PubSub) -> None:
    pubsub.listen("x")
    pubsub.notify("x", "a")  # received while the notify command ran
    pubsub.notify("x", "b")
    stream = pubsub.events(select_timeout=60)
    event = in_thread(lambda: next(stream))()  # waiting on select first would block
    assert event == Notify(pubsub.conn.get_backend_pid(), "x", "a")
    event = in_thread(lambda: pubsub.get_event(select_timeout=60))()
    assert event == Notify(pubsub.conn.get_backend_pid(), "x", "b")


def take_in_turns(ps: PubSub, count: int, seed: int) -> List[Any]:
    """``count`` events, taken in turns chosen by ``seed``: a few through ``events()`` then a
    break, ``get_event``, ``get_events``, and a loop left earlier resumed."""
    rng = random.Random(seed)
    got: List[Any] = []
    left_behind: List[Any] = []  # loops broken out of, to resume later
    while len(got) < count:
        turn = rng.choice(["events", "events", "get_event", "get_events", "resume"])
        if turn == "events" or (turn == "resume" and not left_behind):
            loop = ps.events(select_timeout=TIMEOUT, yield_timeouts=True)
            for event in loop:
                assert event is not None, f"only {len(got)} of {count} arrived"
                got.append(event)
                if len(got) == count or rng.random() < 0.02:
                    break
            left_behind.append(loop)
        elif turn == "resume":
            event = next(left_behind.pop(rng.randrange(len(left_behind))))
            assert event is not None, f"only {len(got)} of {count} arrived"
            got.append(event)
        elif turn == "get_event":
            event = ps.get_event(select_timeout=TIMEOUT)
            assert event is not None, f"only {len(got)} of {count} arrived"
            got.append(event)
        else:
            events = ps.get_events(select_timeout=TIMEOUT)
            assert events is not None, f"only {len(got)} of {count} arrived"
            got += events
    return got


@pytest.mark.parametrize("seed", range(3))
def test_events_left_and_resumed_hand_over_every_notification_once_in_order(
    pg: Server, pubsub: PubSub, seed: int
) -> None:
    """events() takes what waits many at a time (Pending.ready): what a loop broken out of
    did not hand over stays first for whatever takes next, and resuming that loop later
    goes on from where the queue is, on a burst of every shape (runs, interleaved senders,
    changing lengths)."""
    pubsub.listen("turns")
    pubsub.listen("turns_other")
    channel = "CASE WHEN i % 5 = 0 OR i > 2500 AND i % 2 = 0 THEN 'turns_other' ELSE 'turns' END"
    payload = "CASE WHEN i <= 1000 THEN lpad(i::text, 30, 'x') ELSE repeat('é', i % 7) || i END"
    out = pg.psql(f"BEGIN; SELECT pg_notify({channel}, {payload}) "
                  "FROM generate_series(1, 3000) i; SELECT pg_backend_pid(); COMMIT;")
    pid = int(out.split()[-1])

    def expected(i: int) -> Notify:
        text = ("x" * 30 + str(i))[-30:] if i <= 1000 else "é" * (i % 7) + str(i)
        other = i % 5 == 0 or (i > 2500 and i % 2 == 0)
        return Notify(pid, "turns_other" if other else "turns", text)

    assert take_in_turns(pubsub, 3000, seed) == [expected(i) for i in range(1, 3001)]
    assert pubsub.get_event(select_timeout=0.2) is None


def test_close_ends_an_events_loop_in_the_middle_of_what_waits(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("closing")
    pg.psql("SELECT pg_notify('closing', i::text) FROM generate_series(1, 500) i")
    got: List[Any] = []
    for event in pubsub.events(select_timeout=TIMEOUT):
        got.append(event)
        if len(got) == 10:
            pubsub.close()
    assert len(got) == 10


# -- channel names ----------------------------------------------------------

CHANNEL_NAMES = [
    "MixedCase",
    "lower",
    "with space",
    'double"quote',
    "single'quote",
    "back\\slash",
    "; DROP TABLE users; --",
    "select",
    "1starts_with_digit",
    "a.b",
    "$1",
    "🎉 emoji 🐘",
    "Ünïcödé ñame 日本語",
    "é" * 31 + "a",  # 63 bytes in UTF-8
    "日" * 21,  # 63 bytes in UTF-8
    "🐘" * 15 + "abc",  # 63 bytes in UTF-8
    "x" * 63,
]


@pytest.mark.parametrize("channel", CHANNEL_NAMES)
def test_channel_names_are_exact(pg: Server, pubsub: PubSub, channel: str) -> None:
    assert len(channel.encode("utf-8")) <= 63
    pubsub.listen(channel)
    assert pubsub.channels == {channel}
    assert listening(pubsub) == {channel}

    pubsub.notify(channel, "ours")
    assert pubsub.get_event() == Notify(pubsub.conn.get_backend_pid(), channel, "ours")
    pid = psql_notify(pg, (channel, "from psql"))
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(pid, channel, "from psql")

    pubsub.unlisten(channel)
    assert pubsub.channels == set()
    assert listening(pubsub) == set()
    round_trip(pubsub)


def test_channel_name_case_is_kept_in_listen_and_notify(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("MixedCase")
    pg.psql(
        "BEGIN; NOTIFY mixedcase, 'folded'; NOTIFY MixedCase, 'folded too'; "
        "NOTIFY \"MixedCase\", 'exact'; COMMIT;"
    )
    event = pubsub.get_event(select_timeout=TIMEOUT)
    assert event is not None
    assert isinstance(event, Notify)
    assert (event.channel, event.payload) == ("MixedCase", "exact")

    pubsub.notify("mixedcase", "lower")  # not our channel: nothing arrives
    pubsub.notify("MixedCase", "ours")
    assert pubsub.get_event() == Notify(pubsub.conn.get_backend_pid(), "MixedCase", "ours")
    assert pubsub.get_event() is None


def test_hostile_channel_name_cannot_inject_sql(pg: Server, pubsub: PubSub) -> None:
    canary = unique("canary")
    pg.psql(f"CREATE TABLE {canary} (id int)")
    try:
        channel = f"x; DROP TABLE {canary}; --"
        pubsub.listen(channel)
        pubsub.notify(channel, "harmless")
        event = pubsub.get_event()
        assert event is not None
        assert isinstance(event, Notify)
        assert event.channel == channel
        pubsub.unlisten(channel)
        for name in (f'x"; DROP TABLE {canary}; --', f"x'); DROP TABLE {canary}; --"):
            pubsub.listen(name)
            pubsub.notify(name, "harmless")
            assert pubsub.get_events() == [Notify(pubsub.conn.get_backend_pid(), name, "harmless")]
            pubsub.unlisten(name)
        assert pg.psql(f"SELECT to_regclass('{canary}') IS NOT NULL") == "t\n"
    finally:
        pg.psql(f"DROP TABLE IF EXISTS {canary}")


def test_our_notify_reaches_a_psql_listener(pg: Server, pubsub: PubSub) -> None:
    channel, payload = "Mixed Chan", "hello 'world' \\ é"
    proc = pg.popen_psql()
    assert proc.stdin is not None and proc.stdout is not None
    out = LineReader(proc.stdout)
    try:
        proc.stdin.write(f"LISTEN {ident(channel)};\nSELECT 'listening';\n")
        proc.stdin.flush()
        out.wait_for_line("listening")
        pubsub.notify(channel, payload)
        proc.stdin.write("SELECT 1;\n")
        proc.stdin.flush()
        line = out.wait_for_line("Asynchronous notification")
        pid = pubsub.conn.get_backend_pid()
        assert line == (
            f'Asynchronous notification "{channel}" with payload "{payload}" '
            f"received from server process with PID {pid}."
        )
    finally:
        proc.stdin.close()
        proc.wait(timeout=TIMEOUT)


# -- payloads ---------------------------------------------------------------

PAYLOADS = [
    "",
    "plain",
    'it\'s "quoted"',
    "''",
    "back\\slash \\n \\t \\\\ \\x41 \\'",
    "E'\\x41'",
    "$1 $2 %s %(x)s ?",
    "line\nbreak\ttab\r",
    "🎉🐘 emoji",
    "Ünïcödé 日本語 ñ",
    "\x01\x7f control",
    "   spaces   ",
]


@pytest.mark.parametrize("scs", ["on", "off"])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_are_exact(pubsub: PubSub, payload: str, scs: str) -> None:
    pubsub.conn.execute(f"SET standard_conforming_strings = {scs}")
    assert pubsub.conn.get_parameter_status("standard_conforming_strings") == scs
    pubsub.listen("payloads")
    pubsub.notify("payloads", payload)
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(
        pubsub.conn.get_backend_pid(), "payloads", payload
    )


def test_hostile_payload_cannot_inject_sql(pg: Server, pubsub: PubSub) -> None:
    canary = unique("canary")
    pg.psql(f"CREATE TABLE {canary} (id int)")
    try:
        pubsub.listen("hostile")
        pid = pubsub.conn.get_backend_pid()
        for scs in ("on", "off"):
            pubsub.conn.execute(f"SET standard_conforming_strings = {scs}")
            for payload in (f"'; DROP TABLE {canary}; --", f"\\'; DROP TABLE {canary}; --",
                            f"\\''; DROP TABLE {canary}; --", f"\\\\'); DROP TABLE {canary}; --"):
                pubsub.notify("hostile", payload)
                assert pubsub.get_events() == [Notify(pid, "hostile", payload)]
        assert pg.psql(f"SELECT to_regclass('{canary}') IS NOT NULL") == "t\n"
    finally:
        pg.psql(f"DROP TABLE IF EXISTS {canary}")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]),
                       max_size=300),
       scs=st.sampled_from(["on", "off"]))
def test_any_payload_arrives_exact(pubsub: PubSub, payload: str, scs: str) -> None:
    pubsub.conn.execute(f"SET standard_conforming_strings = {scs}")
    pubsub.listen("any_payload")
    pubsub.notify("any_payload", payload)
    assert pubsub.get_events() == [Notify(pubsub.conn.get_backend_pid(), "any_payload", payload)]


@pytest.mark.parametrize("payload", ["plain", "back\\slash", "it's", "🐘"])
def test_psql_payloads_arrive_exact(pg: Server, pubsub: PubSub, payload: str) -> None:
    pubsub.conn.execute("SET standard_conforming_strings = off")
    pubsub.listen("psql_payloads")
    pid = psql_notify(pg, ("psql_payloads", payload))
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(pid, "psql_payloads", payload)


def test_notify_without_payload_sends_empty(pubsub: PubSub) -> None:
    pubsub.listen("empty")
    pubsub.notify("empty")
    pubsub.notify("empty", None)
    pid = pubsub.conn.get_backend_pid()
    assert pubsub.get_events() == [Notify(pid, "empty", ""), Notify(pid, "empty", "")]


@pytest.mark.parametrize(
    "payload",
    ["a" * 7999, "é" * 3999 + "a", "€" * 2666 + "a", "🐘" * 1999 + "abc"],
    ids=["ascii", "2-byte", "3-byte", "4-byte"],
)
def test_largest_payload(pubsub: PubSub, payload: str) -> None:
    assert len(payload.encode("utf-8")) == 7999
    for channel in ("big", "é" * 31 + "a"):  # with the longest channel name too
        pubsub.listen(channel)
        pubsub.notify(channel, payload)
        assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(
            pubsub.conn.get_backend_pid(), channel, payload
        )


@pytest.mark.parametrize(
    "payload",
    ["a" * 8000, "é" * 4000, "€" * 2666 + "ab", "🐘" * 2000],
    ids=["ascii", "2-byte", "3-byte", "4-byte"],
)
def test_payload_of_8000_bytes_is_refused_before_sending(
    connect: Callable[..., PubSub], payload: str
) -> None:
    pubsub, spy = connect(), connect()
    spy.listen("big")
    pubsub.listen("big")
    with pytest.raises(ValueError, match="8000 bytes") as info:
        pubsub.notify("big", payload)
    assert "7999" in str(info.value)
    pubsub.notify("big", "marker")
    marker = Notify(pubsub.conn.get_backend_pid(), "big", "marker")
    assert pubsub.get_events() == [marker]
    assert spy.get_event(select_timeout=TIMEOUT) == marker
    assert spy.get_event() is None


# -- client-side checks -----------------------------------------------------

BAD_CALLS: List[Tuple[str, Callable[[PubSub], Any], type]] = [
    ("listen-empty", lambda ps: ps.listen(""), ValueError),
    ("notify-empty", lambda ps: ps.notify("", "x"), ValueError),
    ("unlisten-empty", lambda ps: ps.unlisten(""), ValueError),
    ("listen-64-bytes", lambda ps: ps.listen("é" * 32), ValueError),
    ("listen-64-ascii", lambda ps: ps.listen("c" * 64), ValueError),
    ("notify-64-bytes", lambda ps: ps.notify("é" * 32, "x"), ValueError),
    ("unlisten-64-bytes", lambda ps: ps.unlisten("é" * 32), ValueError),
    ("listen-nul", lambda ps: ps.listen("c\0d"), ValueError),
    ("notify-nul-channel", lambda ps: ps.notify("c\0d", "x"), ValueError),
    ("notify-nul-payload", lambda ps: ps.notify("c", "x\0y"), ValueError),
    # Deliberately wrong types (ignored for mypy): the calls must refuse them at run time.
    ("listen-bytes", lambda ps: ps.listen(b"c"), TypeError),  # type: ignore[arg-type]
    ("listen-int", lambda ps: ps.listen(1), TypeError),  # type: ignore[arg-type]
    ("listen-none", lambda ps: ps.listen(None), TypeError),  # type: ignore[arg-type]
    ("unlisten-bytes", lambda ps: ps.unlisten(b"c"), TypeError),  # type: ignore[arg-type]
    ("notify-bytes-channel", lambda ps: ps.notify(b"c", "x"), TypeError),  # type: ignore[arg-type]
    ("notify-none-channel", lambda ps: ps.notify(None, "x"), TypeError),  # type: ignore[arg-type]
    ("notify-bytes-payload", lambda ps: ps.notify("c", b"x"), TypeError),  # type: ignore[arg-type]
    ("notify-int-payload", lambda ps: ps.notify("c", 1), TypeError),  # type: ignore[arg-type]
    ("listen-surrogate", lambda ps: ps.listen("c\ud800"), ValueError),
    ("notify-surrogate-payload", lambda ps: ps.notify("c", "x\ud800"), ValueError),
]


@pytest.mark.parametrize(
    ("call", "error"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_bad_arguments_are_refused_before_sending(
    connect: Callable[..., PubSub], call: Callable[[PubSub], Any], error: type
) -> None:
    pubsub, spy = connect(), connect()
    for ps in (pubsub, spy):
        ps.listen("c")
    before = listening(pubsub)
    assert before == {"c"}
    with pytest.raises(error):
        call(pubsub)
    assert pubsub.conn.closed == 0
    assert listening(pubsub) == before
    assert pubsub.channels == before
    spy.notify("c", "marker")  # had anything been sent, it would have come first
    assert spy.get_event(select_timeout=TIMEOUT) == Notify(
        spy.conn.get_backend_pid(), "c", "marker"
    )
    assert spy.get_event() is None
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(
        spy.conn.get_backend_pid(), "c", "marker"
    )
    assert pubsub.get_event() is None
    round_trip(pubsub)


# -- server errors ----------------------------------------------------------


def test_server_error_leaves_the_pubsub_working(pubsub: PubSub) -> None:
    pubsub.listen("err")
    pubsub.notify("err", "before the error")
    with pytest.raises(ProgrammingError) as info:
        pubsub.conn.execute("SELECT bogus")
    assert info.value.sqlstate == "42703"
    assert info.value.pgcode == "42703"
    assert "bogus" in str(info.value)
    assert pubsub.conn.closed == 0
    assert pubsub.conn.transaction_status == "I"
    assert pubsub.get_event() == Notify(pubsub.conn.get_backend_pid(), "err", "before the error")
    assert pubsub.channels == {"err"}
    assert listening(pubsub) == {"err"}
    round_trip(pubsub)
    pubsub.notify("err", "after the error")
    assert pubsub.get_event() == Notify(pubsub.conn.get_backend_pid(), "err", "after the error")


def test_notifications_during_a_command_are_kept_in_order(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("c")
    pid = psql_notify(pg, ("c", "1"), ("c", "2"), ("c", "3"))
    assert readable(pubsub)  # on the way, not read yet: they come before the command's reply
    assert pubsub.conn.execute("SELECT 1") == [("1",)]
    assert pubsub.get_events() == [Notify(pid, "c", p) for p in "123"]
    assert pubsub.get_event() is None


def test_own_notifications_while_listening(pubsub: PubSub) -> None:
    pubsub.listen("own")
    pubsub.notify("own", "1")
    assert pubsub.conn.execute("SELECT 2") == [("2",)]
    pubsub.notify("own", "3")
    pid = pubsub.conn.get_backend_pid()
    assert [pubsub.get_event() for _ in range(3)] == [
        Notify(pid, "own", "1"),
        Notify(pid, "own", "3"),
        None,
    ]


@pytest.mark.parametrize("sslmode", ["prefer", "disable"])
def test_burst_of_5000_in_one_transaction(
    pg: Server, connect: Callable[..., PubSub], sslmode: str
) -> None:
    pubsub = connect(sslmode=sslmode)
    pubsub.listen("burst")
    out = pg.psql(
        "BEGIN; SELECT pg_notify('burst', i::text) FROM generate_series(1, 5000) i; "
        "SELECT pg_backend_pid(); COMMIT;"
    )
    pid = int(out.split()[-1])
    got = receive(pubsub, 5000)
    assert got == [Notify(pid, "burst", str(i)) for i in range(1, 5001)]
    assert pubsub.get_event(select_timeout=0.2) is None


def test_burst_over_tls_in_reads_shorter_than_a_record(
    pg: Server, connect: Callable[..., PubSub], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS decrypts a whole record at once: with reads shorter than a record, the rest of
    it waits inside the TLS layer, where select cannot see it, and must still be taken."""
    if not pg.has_tls:
        pytest.skip("server has no TLS")
    monkeypatch.setattr(socketio, "_SIZES", (100,))  # every read, start-up's too
    pubsub = connect(sslmode="require", connect_timeout=5)  # start-up is read this way too
    pubsub.listen("burst")
    out = pg.psql(
        "BEGIN; SELECT pg_notify('burst', i::text) FROM generate_series(1, 3000) i; "
        "SELECT pg_backend_pid(); COMMIT;"
    )
    pid = int(out.split()[-1])
    assert receive(pubsub, 3000) == [Notify(pid, "burst", str(i)) for i in range(1, 3001)]


def test_burst_of_every_shape_taken_many_at_a_time(
    pg: Server, connect: Callable[..., PubSub], monkeypatch: pytest.MonkeyPatch,
    client_kind: str
) -> None:
    """Runs of equal and of varying lengths, an empty and multibyte payloads, and a stretch
    alternating between two channels, from psql: what arrives is exactly what was sent,
    and the long runs of one length (1-3000 and 6002-9000) went through the bulk path
    (forced on PyPy too).  (PostgreSQL sends a payload only once per channel and
    transaction: every one here differs.)"""
    taken: List[int] = []

    def counting(*args: Any) -> Optional[Tuple[List[str], int]]:
        result = bulk.take_run(*args)
        taken.append(0 if result is None else len(result[0]))
        return result

    monkeypatch.setattr(decoder_module, "_BULK_AFTER", 8)
    monkeypatch.setattr(decoder_module, "take_run", counting)
    pubsub = connect()
    pubsub.listen("shape")
    pubsub.listen("other")
    payload = (
        "CASE WHEN i <= 3000 THEN lpad(i::text, 40, 'x') "
        "WHEN i <= 6000 THEN repeat('é', i % 7) || i::text "
        "WHEN i = 6001 THEN '' ELSE i::text END"
    )
    channel = "CASE WHEN i > 9000 AND i % 2 = 0 THEN 'other' ELSE 'shape' END"
    out = pg.psql(
        f"BEGIN; SELECT pg_notify({channel}, {payload}) FROM generate_series(1, 10000) i; "
        "SELECT pg_backend_pid(); COMMIT;"
    )
    pid = int(out.split()[-1])

    def expected(i: int) -> Notify:
        text = ("x" * 40 + str(i))[-40:] if i <= 3000 else (
            "é" * (i % 7) + str(i) if i <= 6000 else "" if i == 6001 else str(i))
        return Notify(pid, "other" if i > 9000 and i % 2 == 0 else "shape", text)

    assert receive(pubsub, 10000) == [expected(i) for i in range(1, 10001)]
    if client_kind == "blocking":  # the asyncio client takes bytes in as they trickle in
        # Only the runs of one length (5999 notifications) go through the bulk path; each
        # read that cuts a run takes a few notifications the plain way, and how the server's
        # writes are cut into reads depends on the machine's load: most, not all.
        assert 3000 < sum(taken) <= 5999


# -- unlisten ---------------------------------------------------------------


def test_unlisten_one_channel(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("a")
    pubsub.listen("b")
    assert pubsub.channels == {"a", "b"}
    pubsub.unlisten("a")
    assert pubsub.channels == {"b"}
    assert listening(pubsub) == {"b"}
    pid = psql_notify(pg, ("a", "dropped"), ("b", "kept"))
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(pid, "b", "kept")
    assert pubsub.get_event() is None
    pubsub.unlisten("never_listened")
    assert pubsub.channels == {"b"}


@pytest.mark.parametrize("args", [(), (None,), ("*",)], ids=["none", "None", "star"])
def test_unlisten_all(pg: Server, pubsub: PubSub, args: Tuple[Optional[str], ...]) -> None:
    for channel in ("a", "B", "c c"):
        pubsub.listen(channel)
    assert pubsub.channels == {"a", "B", "c c"}
    pubsub.unlisten(*args)
    assert pubsub.channels == set()
    assert listening(pubsub) == set()
    pubsub.listen("sentinel")
    pid = psql_notify(pg, ("a", "1"), ("B", "2"), ("c c", "3"), ("sentinel", "4"))
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(pid, "sentinel", "4")
    assert pubsub.get_event() is None


# -- a lost connection ------------------------------------------------------


def terminate(pg: Server, ps: PubSub) -> None:
    pid = ps.conn.get_backend_pid()
    assert pg.psql(f"SELECT pg_terminate_backend({pid})") == "t\n"


def assert_terminated(error: BaseException) -> None:
    assert isinstance(error, OperationalError)
    assert "administrator command" in str(error)
    assert error.sqlstate == "57P01"


def assert_stays_lost(pubsub: PubSub) -> None:
    assert pubsub.conn.closed == 2
    calls: List[Callable[[], Any]] = [
        lambda: pubsub.listen("lost"),
        lambda: pubsub.notify("lost", "x"),
        lambda: pubsub.unlisten("lost"),
        lambda: pubsub.get_event(),
        lambda: pubsub.get_event(select_timeout=1),
        lambda: pubsub.get_events(),
        lambda: next(pubsub.events(select_timeout=1, yield_timeouts=True)),
        lambda: pubsub.conn.execute("SELECT 1"),
    ]
    for call in calls:
        with pytest.raises(OperationalError):
            call()
    assert pubsub.conn.closed == 2
    pubsub.close()  # no error


def test_lost_connection_in_get_event(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("lost")
    terminate(pg, pubsub)
    with pytest.raises(OperationalError) as info:
        pubsub.get_event(select_timeout=TIMEOUT)
    assert_terminated(info.value)
    assert_stays_lost(pubsub)


def test_lost_connection_in_events(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("lost")
    terminate(pg, pubsub)
    with pytest.raises(OperationalError) as info:
        next(pubsub.events(select_timeout=TIMEOUT, yield_timeouts=True))
    assert_terminated(info.value)
    assert_stays_lost(pubsub)


@pytest.mark.parametrize("sslmode", ["prefer", "disable"])
def test_lost_connection_in_a_command(
    pg: Server, connect: Callable[..., PubSub], wait_for: Any, sslmode: str
) -> None:
    pubsub = connect(sslmode=sslmode)
    pid = pubsub.conn.get_backend_pid()
    terminate(pg, pubsub)
    wait_for(backend_gone(pg, pid))
    with pytest.raises(OperationalError) as info:
        pubsub.listen("lost")
    assert_terminated(info.value)
    assert_stays_lost(pubsub)


@pytest.mark.parametrize("sslmode", ["require", "disable"])
def test_notifications_before_the_loss_come_first(
    pg: Server, connect: Callable[..., PubSub], wait_for: Any, sslmode: str
) -> None:
    if sslmode == "require" and not pg.has_tls:
        pytest.skip("server has no TLS")
    pubsub = connect(sslmode=sslmode)
    pubsub.listen("last")
    sender = psql_notify(pg, ("last", "words"), ("last", "really"))
    assert readable(pubsub)
    pid = pubsub.conn.get_backend_pid()
    terminate(pg, pubsub)
    wait_for(backend_gone(pg, pid))  # notifications, error and end of stream all wait unread
    assert receive(pubsub, 2) == [Notify(sender, "last", "words"), Notify(sender, "last", "really")]
    with pytest.raises(OperationalError) as info:
        pubsub.get_event(select_timeout=TIMEOUT)
    assert_terminated(info.value)
    assert_stays_lost(pubsub)


# -- closing ----------------------------------------------------------------


def test_close(pg: Server, pubsub: PubSub, wait_for: Any) -> None:
    pubsub.listen("closing")
    pid = pubsub.conn.get_backend_pid()
    pubsub.close()
    assert pubsub.conn.closed == 1
    calls: List[Callable[[], Any]] = [
        lambda: pubsub.listen("closing"),
        lambda: pubsub.notify("closing", "x"),
        lambda: pubsub.unlisten("closing"),
        lambda: pubsub.unlisten(),
        lambda: pubsub.get_event(),
        lambda: pubsub.get_event(select_timeout=1),
        lambda: pubsub.get_events(),
        lambda: next(pubsub.events(select_timeout=1, yield_timeouts=True)),
        lambda: pubsub.conn.execute("SELECT 1"),
    ]
    if not isinstance(pubsub, SyncPubSub):  # the asyncio client has no socket of yours
        calls.append(lambda: pubsub.conn.fileno())
    for call in calls:
        with pytest.raises(InterfaceError):
            call()
    pubsub.close()
    pubsub.conn.close()
    assert pubsub.conn.closed == 1
    wait_for(backend_gone(pg, pid))


def test_context_manager_closes(pg: Server, wait_for: Any) -> None:
    with pgpubsub.connect(**pg.dsn_kwargs()) as pubsub:
        round_trip(pubsub)
        pid = pubsub.conn.get_backend_pid()
    assert pubsub.conn.closed == 1
    wait_for(backend_gone(pg, pid))

    with pytest.raises(RuntimeError, match="inside"), pgpubsub.connect(**pg.dsn_kwargs()) as pubsub:
        raise RuntimeError("inside")
    assert pubsub.conn.closed == 1


def test_fileno_works_with_select(pg: Server, pubsub: PubSub, client_kind: str) -> None:
    blocking_only(client_kind, "the asyncio client's socket belongs to the event loop")
    fd = pubsub.conn.fileno()
    assert isinstance(fd, int)
    pubsub.listen("fd")
    assert select.select([fd], [], [], 0)[0] == []
    pid = psql_notify(pg, ("fd", "ready"))
    assert select.select([fd], [], [], TIMEOUT)[0] == [fd]
    assert pubsub.get_event() == Notify(pid, "fd", "ready")


# -- connection details -----------------------------------------------------


def test_server_version_and_parameters(pg: Server, pubsub: PubSub) -> None:
    conn = pubsub.conn
    assert conn.server_version >= 150000
    assert conn.server_version == int(pg.psql("SHOW server_version_num"))
    assert conn.parameters["server_version"] == pg.psql("SHOW server_version").strip()
    assert conn.get_parameter_status("server_encoding") == "UTF8"
    assert conn.get_parameter_status("client_encoding") == "UTF8"
    assert conn.get_parameter_status("no_such_parameter") is None
    assert conn.execute("SHOW client_encoding") == [("UTF8",)]
    conn.execute("SET application_name = 'pubsub tests'")
    assert conn.get_parameter_status("application_name") == "pubsub tests"


def test_changing_client_encoding_does_not_break_the_pubsub(pg: Server, pubsub: PubSub) -> None:
    pubsub.listen("enc")
    try:
        pubsub.conn.execute("SET client_encoding = 'LATIN1'")
    except pgpubsub.Error as exc:  # refusing the change is fine, breaking is not
        assert not isinstance(exc, ProtocolViolation)
    pid = psql_notify(pg, ("enc", "é"))
    assert pubsub.get_event(select_timeout=TIMEOUT) == Notify(pid, "enc", "é")
    assert pubsub.conn.closed == 0
    round_trip(pubsub)


def test_notices_are_kept_and_logged(pubsub: PubSub, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pgwire_pubsub"):
        pubsub.conn.execute("DO $$BEGIN RAISE NOTICE 'hello'; END$$")
        pubsub.conn.execute("DO $$BEGIN RAISE WARNING 'careful'; END$$")
    assert pubsub.conn.notices[-2:] == ["NOTICE:  hello\n", "WARNING:  careful\n"]
    records = [r for r in caplog.records if r.name == "pgwire_pubsub"]
    hello = [r for r in records if "hello" in r.getMessage()]
    careful = [r for r in records if "careful" in r.getMessage()]
    assert len(hello) == 1 and hello[0].levelno == logging.INFO
    assert len(careful) == 1 and careful[0].levelno == logging.WARNING


def test_notices_stay_bounded(pubsub: PubSub) -> None:
    pubsub.conn.execute("DO $$BEGIN FOR i IN 1..60 LOOP RAISE NOTICE 'n%', i; END LOOP; END$$")
    notices = pubsub.conn.notices
    assert len(notices) == 50
    assert notices[0] == "NOTICE:  n11\n"
    assert notices[-1] == "NOTICE:  n60\n"
    round_trip(pubsub)


@pytest.mark.parametrize(
    "make",
    [
        lambda kw: connect_raw(**kw),
        lambda kw: pgpubsub.Connection(pgpubsub.make_params(**kw)),
        lambda kw: Connection(pgpubsub.make_params(**kw)),
    ],
    ids=["connect_raw", "Connection", "client.Connection"],
)
def test_pubsub_from_a_connection(pg: Server, make: Callable[[Any], Connection]) -> None:
    conn = make(pg.dsn_kwargs())
    pubsub = PubSub(conn)
    try:
        assert pubsub.conn is conn
        assert pubsub.channels == set()
        round_trip(pubsub)
    finally:
        pubsub.close()
    assert conn.closed == 1


def test_after_close_buffered_events_are_not_handed_out(pubsub: PubSub) -> None:
    pubsub.listen("closing")
    pubsub.notify("closing", "left behind")
    pubsub.close()
    with pytest.raises(InterfaceError):
        pubsub.get_event()
    with pytest.raises(InterfaceError):
        pubsub.get_events()
    with pytest.raises(InterfaceError):
        next(pubsub.events(select_timeout=0.1))
