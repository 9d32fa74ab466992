"""Property: whatever the notifications and however TCP cuts the byte stream, the listener
receives exactly what was sent, in order, no more and no less (real server + hypothesis).

The listener connects through ``ChunkingProxy``, which cuts what the server sends at
boundaries drawn from a seeded RNG and lets each piece be read by the client before sending
the next, so that every cut is one ``recv()`` of the client.  ``sslmode=disable``: the cuts
fall inside the protocol's own messages, not inside TLS records.
"""

from __future__ import annotations

import fcntl
import random
import select
import socket
import struct
import termios
import time
import uuid
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import Notify, PubSub
from pgwire_pubsub._blocking.connection import Connection, connect_raw
from pgwire_pubsub.testing.faultproxy import POLL, FaultProxy
from pgwire_pubsub.testing.pgcluster import Server

TIMEOUT = 10.0  # seconds: a failure guard, never a performance target
CHANNELS = ("stream_plain", "Stream MixedCase", "поток_通道_ünï 📣")
SENTINEL = "stream_sentinel"
NOTIFY = "SELECT pg_notify($1, $2)"


class ChunkingProxy(FaultProxy):
    """A FaultProxy whose server-to-client direction is cut at random boundaries."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.rng = random.Random(0)
        self.reader_fd: Optional[int] = None  # the client's socket, in this process
        self.pieces = 0

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.rng = random.Random(seed)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            from_server = source.getpeername() == self.target
        except OSError:
            return
        if not from_server:
            super()._pump(source, sink)
            return
        try:
            while not self._stopped.is_set():
                ready, _, _ = select.select([source], [], [], POLL)
                if not ready:
                    continue
                data = source.recv(65536)
                if not data:
                    sink.close()
                    return
                while data:
                    with self._lock:
                        size = self.rng.randint(1, self.rng.choice((1, 8, 64, 1024, 16384)))
                    sink.sendall(data[:size])
                    data = data[size:]
                    self.pieces += 1
                    self._wait_until_read()
        except (OSError, ValueError):
            sink.close()

    def _wait_until_read(self) -> None:
        """Until the client has read everything sent so far (bounded: it may not read)."""
        deadline = time.monotonic() + 2.0
        while self.reader_fd is not None and time.monotonic() < deadline:
            try:
                raw = fcntl.ioctl(self.reader_fd, termios.FIONREAD, struct.pack("i", 0))
            except OSError:
                return
            if struct.unpack("i", raw)[0] == 0:
                return
            time.sleep(0.0002)  # polling interval


class Stream:
    def __init__(self, pg: Server) -> None:
        self.proxy = ChunkingProxy(pg.host, pg.port)
        self.listener: PubSub = pgpubsub.connect(
            **pg.dsn_kwargs(host=self.proxy.host, port=self.proxy.port, sslmode="disable")
        )
        for channel in (*CHANNELS, SENTINEL):
            self.listener.listen(channel)
        self.proxy.reader_fd = self.listener.conn.fileno()
        self.sender: Connection = connect_raw(**pg.dsn_kwargs())
        self.sender_pid = self.sender.get_backend_pid()

    def until_sentinel(self) -> List[Any]:
        """Send a sentinel after everything else; every event before it."""
        token = uuid.uuid4().hex
        self.sender.execute(NOTIFY, [SENTINEL, token])
        got: List[Any] = []
        while True:
            event = self.listener.get_event(select_timeout=TIMEOUT)
            assert event is not None, f"the sentinel never came; received so far: {got!r}"
            if event == Notify(self.sender_pid, SENTINEL, token):
                return got
            got.append(event)

    def close(self) -> None:
        self.proxy.reader_fd = None
        self.listener.close()
        self.sender.close()
        self.proxy.close()


@pytest.fixture(scope="module")
def stream(pg: Server) -> Iterator[Stream]:
    stream = Stream(pg)
    yield stream
    stream.close()


TEXT = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
SHORT = st.text(TEXT, max_size=12)


def sized(unit: str, size: int) -> str:
    """``unit`` repeated up to ``size`` bytes of UTF-8 (whole characters only)."""
    raw = (unit * (size // len(unit.encode()) + 1)).encode()[:size]
    return raw.decode("utf-8", errors="ignore")


# Long payloads, up to the limit (under 7999 bytes), cheaply: a short text repeated.
LONG = st.builds(
    sized,
    st.text(TEXT, min_size=1, max_size=6),
    st.one_of(st.sampled_from([7998, 7995, 4096]), st.integers(100, 7998)),
)
PAYLOADS = st.integers(0, 7).flatmap(lambda k: LONG if k == 0 else SHORT)
SEQUENCES = st.lists(st.tuples(st.sampled_from(CHANNELS), PAYLOADS), max_size=40)


def delivered(sent: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """What PostgreSQL delivers for one transaction: a (channel, payload) already sent in
    the same transaction is sent only once, at its first place."""
    seen = set()
    out = []
    for pair in sent:
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sent=SEQUENCES, seed=st.integers(0, 2**32 - 1))
@example(
    sent=[(CHANNELS[i % 3], sized("📣ü", 7998) if i % 10 == 0 else f"n{i}") for i in range(40)],
    seed=7,
)
@example(sent=[(CHANNELS[2], sized("€", 7998)), (CHANNELS[1], ""), (CHANNELS[0], "")], seed=0)
def test_the_listener_receives_exactly_what_was_sent(
    stream: Stream, sent: List[Tuple[str, str]], seed: int
) -> None:
    assert all(len(payload.encode()) < 7999 for _, payload in sent)
    stream.until_sentinel()  # nothing left over from an earlier example
    stream.proxy.reseed(seed)
    stream.sender.execute("BEGIN")
    for channel, payload in sent:
        stream.sender.execute(NOTIFY, [channel, payload])
    stream.sender.execute("COMMIT")

    got = stream.until_sentinel()
    expected = [Notify(stream.sender_pid, c, p) for c, p in delivered(sent)]
    assert got == expected
    assert stream.listener.conn.closed == 0


def test_the_proxy_cuts_the_stream(stream: Stream) -> None:
    """The property above is only as good as its cuts: a long payload arrives in pieces."""
    stream.until_sentinel()
    before = stream.proxy.pieces
    stream.proxy.reseed(1)
    payload = sized("ĉ", 7998)
    stream.sender.execute(NOTIFY, [CHANNELS[0], payload])
    assert stream.until_sentinel() == [Notify(stream.sender_pid, CHANNELS[0], payload)]
    assert stream.proxy.pieces - before > 3


def test_delivered_models_the_servers_deduplication(stream: Stream) -> None:
    stream.until_sentinel()
    sent = [(CHANNELS[0], "a"), (CHANNELS[1], "a"), (CHANNELS[0], "a"), (CHANNELS[0], "b")]
    stream.sender.execute("BEGIN")
    for channel, payload in sent:
        stream.sender.execute(NOTIFY, [channel, payload])
    stream.sender.execute("COMMIT")
    got = stream.until_sentinel()
    assert [(e.channel, e.payload) for e in got] == delivered(sent) == [sent[0], sent[1], sent[3]]
