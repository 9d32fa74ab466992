"""Long runs of one sender's notifications with payloads of one length, decoded many at a
time (protocol/_bulk.py).

``take_run`` is checked on its own, then the decoder with it is compared with the
decoder without it (one message at a time) on runs in any chunking and with bytes
changed anywhere: both must deliver the same notifications and raise the same error.
Payloads of varying lengths never reach it.
"""

from __future__ import annotations

import struct
from typing import Any, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgwire_pubsub.errors import ProtocolViolation
from pgwire_pubsub.protocol import _bulk as bulk
from pgwire_pubsub.protocol import decoder as decoder_module
from pgwire_pubsub.protocol import messages as m
from pgwire_pubsub.protocol.decoder import Decoder
from pgwire_pubsub.protocol.pending import Pending
from pgwire_pubsub.testing.wirebytes import command_complete, notify, split

PID = 4321
SOURCE = struct.pack("!i", PID) + b"bench\0"


def run_bytes(payloads: List[str], pid: int = PID, channel: str = "bench") -> bytes:
    return b"".join(notify(pid, channel, p) for p in payloads)


START = 5 + len(SOURCE)  # the first notification's payload: after type, length and source
LENGTH = len(notify(PID, "bench", "p00")) - 1  # the length field of a 3-byte payload's message


# -- take_run on its own ------------------------------------------------------


def test_takes_every_whole_message_but_the_last() -> None:
    payloads = ["ab", "cd", "é", "ef", "gh"]  # two bytes of UTF-8 each
    stream = run_bytes(payloads)
    length = len(notify(PID, "bench", "ab")) - 1
    taken = bulk.take_run(stream, START, length, 100, SOURCE)
    assert taken is not None
    texts, next_start = taken
    assert texts == payloads[:-1]
    assert stream[next_start:] == notify(PID, "bench", "gh")


def test_stops_at_the_limit() -> None:
    stream = run_bytes([f"p{i:02d}" for i in range(20)])
    size = len(notify(PID, "bench", "p00"))
    taken = bulk.take_run(stream, START, LENGTH, 5, SOURCE)
    assert taken is not None
    assert taken[0] == ["p00", "p01", "p02", "p03", "p04"]
    assert taken[1] == 5 * size


def test_a_message_cut_short_by_the_chunk_is_left() -> None:
    stream = run_bytes(["one", "two", "six", "ten"])
    chunk = stream[:-3]
    taken = bulk.take_run(chunk, START, LENGTH, 100, SOURCE)
    assert taken is not None
    assert taken[0] == ["one", "two", "six"]
    assert chunk[taken[1] :] == notify(PID, "bench", "ten")[:-3]


def test_the_next_message_may_have_another_length() -> None:
    stream = run_bytes(["one", "two", "six", "a longer one"])
    taken = bulk.take_run(stream, START, LENGTH, 100, SOURCE)
    assert taken is not None
    assert taken[0] == ["one", "two", "six"]


def _corrupt(stream: bytes, at: int, value: bytes) -> bytes:
    return stream[:at] + value + stream[at + len(value) :]


def _nth(n: int, payload_size: int = 3) -> int:
    """Where the n-th notification of ``run_bytes(["p00", ...])`` starts."""
    return n * len(notify(PID, "bench", "x" * payload_size))


RUN = run_bytes([f"p{i:02d}" for i in range(10)])


@pytest.mark.parametrize(
    "why,stream,length",
    [
        ("a length one too long", _corrupt(RUN, _nth(4) + 1, struct.pack("!i", LENGTH + 1)),
         LENGTH),
        ("a length one too short", _corrupt(RUN, _nth(4) + 1, struct.pack("!i", LENGTH - 1)),
         LENGTH),
        ("a NUL in a payload", _corrupt(RUN, _nth(4) + START, b"\0"), LENGTH),
        ("invalid UTF-8 in a payload", _corrupt(RUN, _nth(4) + START, b"\xff"), LENGTH),
        ("another type", _corrupt(RUN, _nth(4), b"N"), LENGTH),
        ("another sender in between", RUN[: _nth(4)] + notify(99, "bench", "p") + RUN[_nth(4) :],
         LENGTH),
        ("another length in between", RUN[: _nth(4)] + notify(PID, "bench", "pp") + RUN[_nth(4) :],
         LENGTH),
        ("another message in between", RUN[: _nth(4)] + command_complete("X") + RUN[_nth(4) :],
         LENGTH),
        ("the first length disagreeing", RUN, LENGTH + 1),
        ("the last one taken unterminated", _corrupt(RUN, _nth(9) - 1, b"x"), LENGTH),
        ("a longer payload than its length says", RUN[: _nth(4) + START] + b"zz"
         + RUN[_nth(4) + START :], LENGTH),
    ],
)
def test_refuses_what_is_not_exactly_such_a_run(why: str, stream: bytes, length: int) -> None:
    assert bulk.take_run(stream, START, length, 100, SOURCE) is None


def test_a_first_payload_longer_than_its_length_says() -> None:
    stream = RUN[:START] + b"zz" + RUN[START:]  # "zzp00": 5 bytes where the header says 3
    assert bulk.take_run(stream, START, LENGTH, 100, SOURCE) is None


def short_last_piece() -> bytes:
    """A run whose last message is followed, too soon, by the bytes a header starts with
    and then the source: a piece shorter than any trailer."""
    return RUN + b"A" + struct.pack("!i", LENGTH) + SOURCE + b"\0Ax" + SOURCE


def test_a_piece_shorter_than_a_trailer_is_refused() -> None:
    stream = short_last_piece()
    assert bulk.take_run(stream, START, LENGTH, 100, SOURCE) is None


def test_fewer_than_two_is_left_to_the_caller() -> None:
    stream = run_bytes(["one", "two"])
    assert bulk.take_run(stream, START, LENGTH, 100, SOURCE) is None


# -- the decoder with and without it --------------------------------------------


Outcome = Tuple[List[object], Optional[str]]


def decode(chunks: List[bytes], with_pending: bool, bulk_after: int) -> Outcome:
    """What a decoder delivers for ``chunks`` (messages, then pending notifications), and
    the error it raised, if any."""
    saved = decoder_module._BULK_AFTER
    decoder_module._BULK_AFTER = bulk_after
    try:
        decoder, pending = Decoder(), Pending()
        out: List[object] = []
        error = None
        try:
            for chunk in chunks:
                out += decoder.feed(chunk, pending if with_pending else None)
            decoder.check()
        except ProtocolViolation as exc:
            error = str(exc)
        assert len(pending) == len(list(pending))
        return out + list(pending), error
    finally:
        decoder_module._BULK_AFTER = saved


def counting_take_run(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """take_run's answers, as the decoder calls it."""
    calls: List[Any] = []

    def counting(*args: Any) -> Optional[Tuple[List[str], int]]:
        result = bulk.take_run(*args)
        calls.append(result)
        return result

    monkeypatch.setattr(decoder_module, "take_run", counting)
    return calls


def test_the_decoder_takes_long_runs_of_one_length_in_bulk(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_take_run(monkeypatch)
    payloads = [str(i).rjust(6, "x") for i in range(2000)]
    expected = [m.Notify(PID, "bench", p) for p in payloads]
    assert decode([run_bytes(payloads)], True, 8) == (expected, None)
    taken = [c for c in calls if c is not None]
    assert sum(len(c[0]) for c in taken) > 1900  # nearly all went through take_run
    assert len(taken) < 12  # in windows that keep doubling


def test_payloads_of_varying_lengths_never_try_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_take_run(monkeypatch)
    payloads = ["x" * (i % 7) for i in range(2000)]
    expected = [m.Notify(PID, "bench", p) for p in payloads]
    assert decode([run_bytes(payloads)], True, 8) == (expected, None)
    assert calls == []


def test_without_a_pending_queue_nothing_is_taken_in_bulk(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_take_run(monkeypatch)
    payloads = ["x" * 6] * 100
    assert decode([run_bytes(payloads)], False, 8) == (
        [m.Notify(PID, "bench", p) for p in payloads], None)
    assert calls == []


@pytest.mark.parametrize("with_pending", [False, True])
def test_a_piece_shorter_than_a_trailer_fails_as_one_at_a_time(with_pending: bool) -> None:
    messages, error = decode([short_last_piece()], with_pending, 2)
    assert (messages, error) == decode([short_last_piece()], with_pending, 10**9)
    assert len(messages) == 10 and error is not None and "more than two strings" in error


def test_a_failed_try_costs_at_most_twice_the_messages_read_meanwhile(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose every try fails: each payload ends with its sender's pid and channel,
    which with the payload's NUL make the bytes a split looks for.  The messages all
    windows span stay a small multiple of the input's."""
    spans: List[int] = []

    def measuring(buf: bytes, start: int, length: int, limit: int, source: bytes) -> Any:
        spans.append(min(limit, (len(buf) - start) // (length + 1) + 1))
        return bulk.take_run(buf, start, length, limit, source)

    monkeypatch.setattr(decoder_module, "take_run", measuring)
    pid = 0x01020304  # no NUL in its bytes, so that they can end a payload
    payload = "q\x01\x02\x03\x04bench"
    messages, error = decode([run_bytes([payload] * 4000, pid)], True, 8)
    assert error is None and messages == [m.Notify(pid, "bench", payload)] * 4000
    assert spans and sum(spans) < 4 * 4000


def test_one_message_at_a_time_never_takes_a_run() -> None:
    payloads = [f"p{i:03d}" for i in range(50)]
    stream = run_bytes(payloads)
    size = len(notify(PID, "bench", "p000"))
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert decode(chunks, True, 8) == decode([stream], True, 8)


senders = st.sampled_from([(PID, "bench"), (PID, "other"), (77, "bench"), (2**24 + 5, "bench")])
payload_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=12)


@st.composite
def runs(draw: st.DrawFn) -> bytes:
    """Several runs of one sender each (some long, of one payload length), with an
    occasional other message."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        pid, channel = draw(senders)
        count = draw(st.integers(1, 60))
        if draw(st.booleans()):
            width = draw(st.integers(0, 9))
            parts.append(run_bytes([str(i).rjust(width, "x")[-width:] if width else ""
                                    for i in range(count)], pid, channel))
        else:
            parts.append(run_bytes(draw(st.lists(payload_text, min_size=count,
                                                 max_size=count)), pid, channel))
        if draw(st.booleans()):
            parts.append(command_complete("NOTIFY"))
    return b"".join(parts)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(stream=runs(), cuts=st.lists(st.integers(0, 3000), max_size=6),
       with_pending=st.booleans())
def test_same_as_one_at_a_time_in_any_chunking(
    stream: bytes, cuts: List[int], with_pending: bool
) -> None:
    chunks = split(stream, cuts)
    bulk_result = decode(chunks, with_pending, 2)
    assert bulk_result == decode(chunks, with_pending, 10**9)
    assert bulk_result[1] is None


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(stream=runs(), changes=st.lists(st.tuples(st.integers(0, 3000), st.binary(min_size=1,
       max_size=4)), min_size=1, max_size=3), with_pending=st.booleans())
def test_same_as_one_at_a_time_with_bytes_changed(
    stream: bytes, changes: List[Tuple[int, bytes]], with_pending: bool
) -> None:
    for at, value in changes:
        at %= len(stream)
        stream = stream[:at] + value + stream[at + len(value) :]
    assert decode([stream], True, 2) == decode([stream], True, 10**9)
    assert decode([stream], with_pending, 2) == decode([stream], with_pending, 10**9)
