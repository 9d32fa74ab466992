"""The decoder against a plain reference: every message parsed on its own by the body
parsers (protocol/_bodies.py), one at a time, from the whole stream.

The decoder's receive path takes shortcuts: notifications are decoded in a loop of
their own, a sender is found by its bytes, a sender's third notification in a row
starts a run of bare payloads, and a long run of payloads of one length is taken many
at a time (protocol/_bulk.py).  Whatever the traffic (many senders and channels,
runs, payloads of one length or of many, other messages between), however it is cut
into reads and whatever bytes are changed in it, the decoder must deliver exactly the
reference's messages, in order, and fail exactly where the reference fails; with a
pending queue, its notifications must come out the same taken all at once or one by
one.
"""

from __future__ import annotations

import struct
import sys
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgwire_pubsub.errors import ProtocolViolation
from pgwire_pubsub.protocol import decoder as decoder_module
from pgwire_pubsub.protocol import messages as m
from pgwire_pubsub.protocol._bodies import PARSERS, Malformed
from pgwire_pubsub.protocol.decoder import (
    LONG_MESSAGE_TYPES,
    MAX_LONG_MESSAGE,
    MAX_SHORT_MESSAGE,
    Decoder,
)
from pgwire_pubsub.protocol.pending import Pending
from pgwire_pubsub.testing.wirebytes import (
    command_complete,
    cstr,
    i32,
    msg,
    notice,
    notify,
    parameter_status,
    ready,
    split,
)

Outcome = Tuple[List[m.BackendMessage], bool]


def reference(stream: bytes) -> Outcome:
    """The messages of ``stream`` parsed one at a time, and whether it is malformed
    (a complete message that is wrong, or a wrong type or length in a header)."""
    out: List[m.BackendMessage] = []
    pos = 0
    try:
        while pos < len(stream):
            kind = stream[pos]
            if kind not in PARSERS:
                return out, True
            if len(stream) - pos < 5:
                break
            (length,) = struct.unpack_from("!i", stream, pos + 1)
            limit = MAX_LONG_MESSAGE if kind in LONG_MESSAGE_TYPES else MAX_SHORT_MESSAGE
            if not 4 <= length <= limit:
                return out, True
            end = pos + 1 + length
            if end > len(stream):
                break
            out.append(PARSERS[kind](stream[pos + 5 : end], 0, length - 4))
            pos = end
    except (Malformed, struct.error, ValueError, IndexError):
        return out, True
    return out, False


def decoded(chunks: List[bytes], pending: Optional[Pending]) -> Outcome:
    """What a decoder hands out for ``chunks`` until it fails: its messages (with
    ``pending``: the other messages, and the queue's notifications then), and whether
    it failed."""
    decoder = Decoder()
    out: List[m.BackendMessage] = []
    failed = False
    try:
        for chunk in chunks:
            out += decoder.feed(chunk, pending)
        decoder.check()
    except ProtocolViolation:
        failed = True
    return out, failed


def notifications_first(messages: List[m.BackendMessage]) -> List[m.BackendMessage]:
    """The other messages, then the notifications: what a decoder with a pending queue
    hands out and then holds."""
    return ([x for x in messages if type(x) is not m.Notify]
            + [x for x in messages if type(x) is m.Notify])


def taken_one_by_one(pending: Pending) -> Iterator[object]:
    while pending:
        yield pending.popleft()


@pytest.fixture(params=[2, 8, sys.maxsize], ids=["bulk-early", "bulk-default", "no-bulk"])
def bulk_after(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(decoder_module, "_BULK_AFTER", request.param)
    return int(request.param)


def check_against_reference(stream: bytes, cuts: List[int]) -> None:
    expected, malformed = reference(stream)
    chunks = split(stream, cuts)
    assert decoded(chunks, None) == (expected, malformed)
    for take in (Pending.take_all, taken_one_by_one):
        pending = Pending()
        out, failed = decoded(chunks, pending)
        assert failed == malformed
        assert len(pending) == len(list(pending))
        assert out + list(take(pending)) == notifications_first(expected)


# -- traffic --------------------------------------------------------------------------

# Pids whose bytes hold NULs, a type byte and a NUL after it, or none at all.
PIDS = [4321, 0x4100, 0x410000, 0x01020304, 65, 2**22 - 1, -7]
CHANNELS = ["bench", "bench_app_0", "bench_app_1", "", "A", "é通道"]
senders = st.tuples(st.sampled_from(PIDS), st.sampled_from(CHANNELS))
nul_free = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=30)


@st.composite
def one_length(draw: st.DrawFn, count: int) -> List[str]:
    """Payloads of one length in bytes (ids, hashes...), ASCII or not."""
    width = draw(st.integers(0, 12))
    unit = draw(st.sampled_from(["x", "é", "😀"]))
    return [(str(i) + unit * width)[:width] if unit == "x" else unit * width
            for i in range(count)]


# Notifications that are not quite right, as a sender's next one in a run could be (some
# as long as the run's others).
MALFORMED: Dict[str, Callable[[int, str, str], bytes]] = {
    "only the channel": lambda pid, channel, p: cstr(channel),
    "three strings": lambda pid, channel, p: cstr(channel) + cstr(p) + cstr(p),
    "a NUL in the channel": lambda pid, channel, p: cstr(channel) + cstr(channel) + cstr(p),
    "a NUL in the payload": lambda pid, channel, p: cstr(channel) + b"\0" + cstr(p)[1:],
    "invalid UTF-8": lambda pid, channel, p: cstr(channel) + b"\xff" + cstr(p)[1:],
    "unterminated": lambda pid, channel, p: cstr(channel) + p.encode() + b"!",
    "nothing": lambda pid, channel, p: b"",
}


@st.composite
def segment(draw: st.DrawFn, malformed: bool = False) -> bytes:
    """One sender's notifications in a row (a burst, a trigger's rows), notifications of
    senders taking turns (an application's traffic), or another message; with
    ``malformed``, a run may hold a notification that is not quite right."""
    shape = draw(st.sampled_from(["run", "mixed", "other"]))
    if shape == "other":
        return draw(st.sampled_from([command_complete("NOTIFY"), ready("I"), notice("hi"),
                                     parameter_status("TimeZone", "UTC")]))
    count = draw(st.integers(1, 40))
    if shape == "run":
        pid, channel = draw(senders)
        payloads = draw(one_length(count) | st.lists(nul_free, min_size=count,
                                                     max_size=count))
        run = [notify(pid, channel, p) for p in payloads]
        if malformed and draw(st.booleans()):
            body = MALFORMED[draw(st.sampled_from(sorted(MALFORMED)))]
            bad = msg(b"A", i32(pid) + body(pid, channel, payloads[0]))
            run.insert(draw(st.integers(0, count)), bad)
        return b"".join(run)
    pairs = draw(st.lists(st.tuples(senders, nul_free), min_size=count, max_size=count))
    return b"".join(notify(pid, channel, p) for (pid, channel), p in pairs)


traffic = st.lists(segment(), min_size=1, max_size=8).map(b"".join)
malformed_traffic = st.lists(segment(malformed=True), min_size=1, max_size=8).map(b"".join)
# The fixture only sets a module constant, the same for every example.
SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
cuts = st.lists(st.integers(0, 5000), max_size=8)


@settings(deadline=None, max_examples=300, suppress_health_check=SLOW)
@given(stream=traffic, cuts=cuts)
@example(stream=b"".join(notify(4321, "bench", str(i).rjust(8, "x")) for i in range(300)),
         cuts=[1000, 3000])
def test_traffic_in_any_chunking(bulk_after: int, stream: bytes, cuts: List[int]) -> None:
    check_against_reference(stream, cuts)
    assert not reference(stream)[1]


@settings(deadline=None, max_examples=400, suppress_health_check=SLOW)
@given(stream=traffic, cuts=cuts,
       changes=st.lists(st.tuples(st.integers(0, 5000), st.binary(min_size=1, max_size=4)),
                        min_size=1, max_size=3))
def test_traffic_with_bytes_changed(
    bulk_after: int, stream: bytes, cuts: List[int], changes: List[Tuple[int, bytes]]
) -> None:
    for at, value in changes:
        at %= len(stream)
        stream = stream[:at] + value + stream[at + len(value) :]
    check_against_reference(stream, cuts)


def run_with(kind: str, at: int, count: int = 30) -> bytes:
    """A run of ``count`` notifications of one length, the one at ``at`` malformed."""
    payloads = [str(i).rjust(6, "x") for i in range(count)]
    run = [notify(4321, "bench", p) for p in payloads]
    run[at] = msg(b"A", i32(4321) + MALFORMED[kind](4321, "bench", payloads[at]))
    return b"".join(run)


@settings(deadline=None, max_examples=300, suppress_health_check=SLOW)
@given(stream=malformed_traffic, cuts=cuts)
@example(stream=run_with("a NUL in the payload", 20), cuts=[])
@example(stream=run_with("unterminated", 20), cuts=[])
@example(stream=run_with("only the channel", 5), cuts=[])
def test_traffic_with_a_malformed_notification(
    bulk_after: int, stream: bytes, cuts: List[int]
) -> None:
    check_against_reference(stream, cuts)
