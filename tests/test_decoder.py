"""The backend message decoder: every message type whole, byte by byte and with
trailing bytes; malformed input; and properties over random chunkings and bytes."""

from __future__ import annotations

import struct
from typing import Dict, List, Sequence, Tuple, cast, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgwire_pubsub.errors import ProtocolViolation
from pgwire_pubsub.protocol import messages as m
from pgwire_pubsub.protocol.decoder import MAX_SHORT_MESSAGE, Decoder
from pgwire_pubsub.protocol.pending import Pending
from pgwire_pubsub.testing.wirebytes import (
    auth,
    column,
    command_complete,
    cstr,
    data_row,
    fields,
    i16,
    i32,
    msg,
    notify,
    ready,
    split,
)

# -- byte builders -------------------------------------------------------------


def header(kind: bytes, length: int) -> bytes:
    return kind + i32(length)


# -- feeding helpers -----------------------------------------------------------


def feed_whole(data: bytes) -> List[m.BackendMessage]:
    decoder = Decoder()
    out = decoder.feed(data)
    decoder.check()
    assert decoder.buffered == 0
    return out


def feed_bytewise(data: bytes) -> List[m.BackendMessage]:
    decoder = Decoder()
    out: List[m.BackendMessage] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    decoder.check()
    assert decoder.buffered == 0
    return out


def feed_until_error(
    decoder: Decoder, chunks: Sequence[bytes]
) -> Tuple[List[m.BackendMessage], bool]:
    """Messages decoded from the chunks, and whether a ProtocolViolation ended them."""
    out: List[m.BackendMessage] = []
    try:
        for chunk in chunks:
            out += decoder.feed(chunk)
        decoder.check()
    except ProtocolViolation:
        return out, True
    return out, False


# -- every message type --------------------------------------------------------

SALT = b"\x01\xfe\x00\x7f"
SCRAM_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
SCRAM_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
ERROR_FIELDS = {
    "S": "FATAL",
    "V": "FATAL",
    "C": "57P01",
    "M": "terminating connection due to administrator command",
    "F": "postgres.c",
    "L": "3300",
    "R": "ProcessInterrupts",
}
NOTICE_FIELDS = {"S": "NOTICE", "V": "NOTICE", "C": "00000", "M": "relation \"t\" already exists"}

VECTORS = [
    ("auth-ok", auth(0), m.AuthenticationOk()),
    ("auth-cleartext", auth(3), m.AuthenticationCleartextPassword()),
    ("auth-md5", auth(5, SALT), m.AuthenticationMD5Password(SALT)),
    (
        "auth-sasl",
        auth(10, cstr("SCRAM-SHA-256-PLUS") + cstr("SCRAM-SHA-256") + b"\0"),
        m.AuthenticationSASL(("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")),
    ),
    ("auth-sasl-none", auth(10, b"\0"), m.AuthenticationSASL(())),
    ("auth-sasl-continue", auth(11, SCRAM_FIRST), m.AuthenticationSASLContinue(SCRAM_FIRST)),
    ("auth-sasl-final", auth(12, SCRAM_FINAL), m.AuthenticationSASLFinal(SCRAM_FINAL)),
    ("auth-gssapi", auth(7), m.AuthenticationUnsupported(7)),
    (
        "parameter-status",
        msg(b"S", cstr("server_version") + cstr("16.2 (Debian)")),
        m.ParameterStatus("server_version", "16.2 (Debian)"),
    ),
    (
        "parameter-status-empty",
        msg(b"S", cstr("application_name") + cstr("")),
        m.ParameterStatus("application_name", ""),
    ),
    (
        "backend-key-data",
        msg(b"K", i32(4242) + i32(-559038737)),
        m.BackendKeyData(4242, i32(-559038737)),
    ),
    (
        "backend-key-data-protocol-3.2",  # PostgreSQL 18 sends 32 bytes; 256 at most
        msg(b"K", i32(4242) + bytes(range(256))),
        m.BackendKeyData(4242, bytes(range(256))),
    ),
    ("ready-idle", ready("I"), m.ReadyForQuery("I")),
    ("ready-transaction", ready("T"), m.ReadyForQuery("T")),
    ("ready-failed", ready("E"), m.ReadyForQuery("E")),
    (
        "row-description",
        msg(b"T", i16(2) + column("pid") + column("channel")),
        m.RowDescription(("pid", "channel")),
    ),
    ("row-description-empty", msg(b"T", i16(0)), m.RowDescription(())),
    ("data-row", data_row(b"1", b"two"), m.DataRow((b"1", b"two"))),
    ("data-row-null", data_row(None, b"", b"\xff\x00"), m.DataRow((None, b"", b"\xff\x00"))),
    ("data-row-empty", data_row(), m.DataRow(())),
    ("command-complete", msg(b"C", cstr("SELECT 1")), m.CommandComplete("SELECT 1")),
    ("command-complete-listen", msg(b"C", cstr("LISTEN")), m.CommandComplete("LISTEN")),
    ("empty-query", msg(b"I"), m.EmptyQueryResponse()),
    ("error", msg(b"E", fields(ERROR_FIELDS)), m.ErrorResponse(ERROR_FIELDS)),
    ("error-no-fields", msg(b"E", b"\0"), m.ErrorResponse({})),
    ("notice", msg(b"N", fields(NOTICE_FIELDS)), m.NoticeResponse(NOTICE_FIELDS)),
    ("notify", notify(1234, "events", "hello"), m.Notify(1234, "events", "hello")),
    ("notify-empty-payload", notify(1, "c", ""), m.Notify(1, "c", "")),
    (
        "notify-unicode",
        notify(7, "ch\u00e9nal \U0001f600", "it's \"quoted\" \\back\\slash\\ \U0001f389\u2603"),
        m.Notify(7, "ch\u00e9nal \U0001f600", "it's \"quoted\" \\back\\slash\\ \U0001f389\u2603"),
    ),
    (
        "negotiate-protocol-version",
        msg(b"v", i32(3 << 16) + i32(2) + cstr("_pq_.a") + cstr("_pq_.b")),
        m.NegotiateProtocolVersion((3, 0), ("_pq_.a", "_pq_.b")),
    ),
    ("parse-complete", msg(b"1"), m.ParseComplete()),
    ("bind-complete", msg(b"2"), m.BindComplete()),
    ("close-complete", msg(b"3"), m.CloseComplete()),
    ("no-data", msg(b"n"), m.NoData()),
    (
        "parameter-description",
        msg(b"t", i16(3) + struct.pack("!III", 25, 23, 4294967295)),
        m.ParameterDescription((25, 23, 4294967295)),
    ),
    ("parameter-description-empty", msg(b"t", i16(0)), m.ParameterDescription(())),
    ("portal-suspended", msg(b"s"), m.PortalSuspended()),
]

TRAILER = notify(99, "next", "message")
TRAILER_MESSAGE = m.Notify(99, "next", "message")


def test_every_parser_has_a_vector() -> None:
    from pgwire_pubsub.protocol._bodies import PARSERS

    assert {data[0] for _, data, _ in VECTORS} == set(PARSERS)


@pytest.mark.parametrize(
    ("data", "expected"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
class TestEveryMessage:
    def test_whole(self, data: bytes, expected: m.BackendMessage) -> None:
        assert feed_whole(data) == [expected]

    def test_one_byte_at_a_time(self, data: bytes, expected: m.BackendMessage) -> None:
        decoder = Decoder()
        for i in range(len(data) - 1):
            assert decoder.feed(data[i : i + 1]) == []
            assert decoder.buffered == i + 1
        assert decoder.feed(data[-1:]) == [expected]
        assert decoder.buffered == 0

    def test_with_trailing_message(self, data: bytes, expected: m.BackendMessage) -> None:
        assert feed_whole(data + TRAILER) == [expected, TRAILER_MESSAGE]
        assert feed_bytewise(data + TRAILER) == [expected, TRAILER_MESSAGE]

    def test_with_trailing_partial_message(self, data: bytes, expected: m.BackendMessage) -> None:
        for cut in range(1, len(TRAILER)):
            decoder = Decoder()
            assert decoder.feed(data + TRAILER[:cut]) == [expected]
            assert decoder.buffered == cut
            assert decoder.feed(TRAILER[cut:]) == [TRAILER_MESSAGE]
            assert decoder.buffered == 0

    def test_twice_in_one_chunk(self, data: bytes, expected: m.BackendMessage) -> None:
        assert feed_whole(data + data) == [expected, expected]


def test_all_vectors_in_one_stream() -> None:
    stream = b"".join(data for _, data, _ in VECTORS)
    expected = [message for _, _, message in VECTORS]
    assert feed_whole(stream) == expected
    assert feed_bytewise(stream) == expected


def test_empty_feed_returns_nothing() -> None:
    decoder = Decoder()
    assert decoder.feed(b"") == []
    assert decoder.buffered == 0
    decoder.check()


def test_accepts_bytearray_and_memoryview() -> None:
    data = notify(1, "a", "b")
    # Deliberately not bytes: feed is annotated as taking bytes, yet takes any buffer.
    assert Decoder().feed(bytearray(data)) == [m.Notify(1, "a", "b")]  # type: ignore[arg-type]
    assert Decoder().feed(memoryview(data)) == [m.Notify(1, "a", "b")]  # type: ignore[arg-type]


def test_unsupported_auth_method_name() -> None:
    assert m.AuthenticationUnsupported(7).method_name == "GSSAPI"
    assert m.AuthenticationUnsupported(9).method_name == "SSPI"
    assert "99" in m.AuthenticationUnsupported(99).method_name


def test_notify_repr_is_psycopg2s() -> None:
    assert repr(m.Notify(12, "ch", "it's")) == "Notify(12, 'ch', \"it's\")"
    assert m.Notify(12, "ch") == (12, "ch", "")


def test_long_data_row_over_the_short_limit() -> None:
    value = b"x" * (MAX_SHORT_MESSAGE + 1000)
    assert feed_whole(data_row(value)) == [m.DataRow((value,))]


# -- malformed input -----------------------------------------------------------

MALFORMED = [
    ("unknown-type", msg(b"x", b"abc")),
    ("unknown-type-copy-data", msg(b"d", b"abc")),
    ("length-3", header(b"Z", 3) + b"I"),
    ("length-0", header(b"A", 0)),
    ("length-negative", header(b"D", -1)),
    ("length-min-int", header(b"Z", -(2**31))),
    ("missing-nul-command-complete", msg(b"C", b"SELECT 1")),
    ("missing-nul-parameter-value", msg(b"S", cstr("a") + b"b")),
    ("missing-nul-parameter-name", msg(b"S", b"abc")),
    ("missing-nul-notify-channel", msg(b"A", i32(1) + b"channel")),
    ("missing-nul-notify-payload", msg(b"A", i32(1) + cstr("channel") + b"payload")),
    ("missing-nul-sasl-mechanism", auth(10, b"SCRAM-SHA-256")),
    ("missing-sasl-terminator", auth(10, cstr("SCRAM-SHA-256"))),
    ("missing-error-terminator", msg(b"E", b"SFATAL\0")),
    ("error-field-without-nul", msg(b"E", b"SFATAL")),
    ("empty-error", msg(b"E")),
    ("row-description-missing-nul", msg(b"T", i16(1) + b"name")),
    ("row-description-truncated-column", msg(b"T", i16(1) + cstr("name") + b"\0" * 17)),
    ("row-description-too-few-columns", msg(b"T", i16(2) + column("a"))),
    ("after-auth-ok", auth(0, b"\0")),
    ("after-cleartext", auth(3, b"x")),
    ("after-md5-salt", auth(5, SALT + b"!")),
    ("after-sasl-list", auth(10, cstr("SCRAM-SHA-256") + b"\0x")),
    ("after-parameter-status", msg(b"S", cstr("a") + cstr("b") + b"c")),
    ("backend-key-over-256-bytes", msg(b"K", i32(1) + b"k" * 257)),
    ("backend-key-data-without-key", msg(b"K", i32(1))),
    ("after-ready-status", msg(b"Z", b"II")),
    ("after-row-description", msg(b"T", i16(1) + column("a") + b"\0")),
    ("after-data-row", msg(b"D", i16(1) + i32(1) + b"ab")),
    ("after-command-tag", msg(b"C", cstr("LISTEN") + b"x")),
    ("after-empty-query", msg(b"I", b"\0")),
    ("after-error-fields", msg(b"E", fields({"M": "x"}) + b"M")),
    ("after-notice-fields", msg(b"N", fields({"M": "x"}) + b"\0")),
    ("after-notify-payload", msg(b"A", i32(1) + cstr("c") + cstr("p") + b"\0")),
    ("after-notify-payload-text", msg(b"A", i32(1) + cstr("c") + cstr("p") + b"extra")),
    ("after-negotiate", msg(b"v", i32(0) + i32(1) + cstr("_pq_.a") + b"\0")),
    ("after-parse-complete", msg(b"1", b"\0")),
    ("after-bind-complete", msg(b"2", b"\0")),
    ("after-close-complete", msg(b"3", b"\0")),
    ("after-no-data", msg(b"n", b"\0")),
    ("after-parameter-description", msg(b"t", i16(1) + i32(25) + b"\0")),
    ("after-portal-suspended", msg(b"s", b"\0")),
    ("empty-auth", msg(b"R")),
    ("short-auth-code", msg(b"R", b"\0\0\0")),
    ("short-md5-salt", auth(5, b"\1\2\3")),
    ("short-backend-key-data", msg(b"K", i32(1) + b"\0\0\0")),
    ("empty-ready", msg(b"Z")),
    ("bad-ready-status", ready("X")),
    ("bad-ready-status-lowercase", ready("i")),
    ("bad-ready-status-nul", ready("\0")),
    ("empty-data-row", msg(b"D")),
    ("data-row-overrun", msg(b"D", i16(1) + i32(10) + b"abc")),
    ("data-row-overrun-count", msg(b"D", i16(2) + i32(1) + b"a")),
    ("data-row-negative-size", msg(b"D", i16(1) + i32(-2) + b"ab")),
    ("data-row-overrun-into-next-message", msg(b"D", i16(1) + i32(9)) + ready()),
    ("empty-notify", msg(b"A")),
    ("short-notify", msg(b"A", i32(1) + b"\0")),
    ("notify-only-pid", msg(b"A", i32(1))),
    ("notify-invalid-utf8-channel", msg(b"A", i32(1) + b"\xff\xfe\0" + cstr("p"))),
    ("notify-invalid-utf8-payload", msg(b"A", i32(1) + cstr("c") + b"caf\xe9\0")),
    ("notify-truncated-utf8", msg(b"A", i32(1) + cstr("c") + "\U0001f600".encode()[:3] + b"\0")),
    ("notify-surrogate-utf8", msg(b"A", i32(1) + cstr("c") + b"\xed\xa0\x80\0")),
    ("parameter-status-invalid-utf8", msg(b"S", b"a\xff\0" + cstr("b"))),
    ("command-complete-invalid-utf8", msg(b"C", b"\xc3\0")),
    ("negotiate-negative-count", msg(b"v", i32(0) + i32(-1))),
    ("negotiate-short", msg(b"v", i32(0))),
    ("negotiate-too-few-names", msg(b"v", i32(0) + i32(2) + cstr("_pq_.a"))),
    ("parameter-description-negative", msg(b"t", i16(-1))),
    ("parameter-description-short", msg(b"t", i16(2) + i32(25))),
    ("parameter-description-empty-body", msg(b"t")),
]


@pytest.mark.parametrize("data", [v[1] for v in MALFORMED], ids=[v[0] for v in MALFORMED])
class TestMalformed:
    def test_whole(self, data: bytes) -> None:
        decoder = Decoder()
        with pytest.raises(ProtocolViolation):
            decoder.feed(data)
        # The decoder stays broken: every later call raises again.
        with pytest.raises(ProtocolViolation):
            decoder.feed(ready())
        with pytest.raises(ProtocolViolation):
            decoder.check()

    def test_one_byte_at_a_time(self, data: bytes) -> None:
        decoder = Decoder()
        with pytest.raises(ProtocolViolation):
            for i in range(len(data)):
                assert decoder.feed(data[i : i + 1]) == []
        with pytest.raises(ProtocolViolation):
            decoder.check()

    def test_after_a_good_message(self, data: bytes) -> None:
        decoder = Decoder()
        good = notify(5, "ok", "before")
        assert decoder.feed(good + data) == [m.Notify(5, "ok", "before")]
        with pytest.raises(ProtocolViolation):
            decoder.check()
        with pytest.raises(ProtocolViolation):
            decoder.feed(b"")


@pytest.mark.parametrize(
    ("kind", "length"),
    [
        (b"A", 2**31 - 1),
        (b"Z", 2**31 - 1),
        (b"Z", MAX_SHORT_MESSAGE + 1),
        (b"C", MAX_SHORT_MESSAGE + 1),
        (b"S", 100_000),
        (b"K", 2**31 - 1),
        (b"D", 0x40000000),
        (b"T", 2**31 - 1),
        (b"E", 0x40000000),
    ],
)
def test_length_over_the_limit_raises_from_the_header(kind: bytes, length: int) -> None:
    decoder = Decoder()
    for byte in header(kind, length)[:4]:
        assert decoder.feed(bytes([byte])) == []
    with pytest.raises(ProtocolViolation, match="exceeds the limit"):
        decoder.feed(header(kind, length)[4:])
    assert decoder.buffered == 0


def test_short_limit_is_inclusive() -> None:
    # A ParameterStatus of exactly 30000 bytes is accepted.
    value = "v" * (MAX_SHORT_MESSAGE - 4 - len("abc\0") - 1)
    data = msg(b"S", cstr("abc") + cstr(value))
    assert len(data) == MAX_SHORT_MESSAGE + 1
    assert feed_whole(data) == [m.ParameterStatus("abc", value)]


def test_long_message_below_its_limit_waits_for_its_body() -> None:
    decoder = Decoder()
    assert decoder.feed(header(b"D", 0x3FFFFFFF)) == []
    assert decoder.buffered == 5


@pytest.mark.parametrize(
    ("kind", "length"), [(b"d", 0x3FFFFFFF), (b"V", 0x3FFFFFFF), (b"x", MAX_SHORT_MESSAGE)]
)
def test_unknown_type_raises_from_the_header(kind: bytes, length: int) -> None:
    with pytest.raises(ProtocolViolation):
        Decoder().feed(header(kind, length))


@pytest.mark.parametrize("kind", [b"D", b"T"])
def test_negative_column_count(kind: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        Decoder().feed(msg(kind, i16(-1)))


def test_error_fields_with_invalid_utf8_are_kept_readable() -> None:
    # Startup errors may come in the server's own encoding: replaced, not rejected.
    [error] = feed_whole(msg(b"E", b"SFATAL\0Mcaf\xe9\0\0"))
    assert error == m.ErrorResponse({"S": "FATAL", "M": "caf\ufffd"})


def test_only_protocol_violation_escapes_struct_errors() -> None:
    with pytest.raises(ProtocolViolation) as info:
        Decoder().feed(msg(b"K", b"\0"))
    assert type(info.value) is ProtocolViolation
    assert "malformed" in str(info.value)


# -- deferred errors -----------------------------------------------------------


def test_good_notify_then_garbage_in_one_chunk() -> None:
    decoder = Decoder()
    good = notify(321, "jobs", "{\"id\": 1}")
    assert decoder.feed(good + b"\x00garbage!") == [m.Notify(321, "jobs", "{\"id\": 1}")]
    assert decoder.buffered == 0
    with pytest.raises(ProtocolViolation):
        decoder.feed(b"")
    with pytest.raises(ProtocolViolation):
        decoder.check()
    with pytest.raises(ProtocolViolation):
        decoder.feed(notify(1, "a", "b"))


def test_good_messages_then_garbage_then_check_first() -> None:
    decoder = Decoder()
    data = notify(1, "a", "1") + notify(2, "b", "2") + header(b"Z", 2)
    assert decoder.feed(data) == [m.Notify(1, "a", "1"), m.Notify(2, "b", "2")]
    with pytest.raises(ProtocolViolation):
        decoder.check()


def test_buffered_good_message_completed_before_garbage() -> None:
    decoder = Decoder()
    good = notify(3, "c", "p")
    assert decoder.feed(good[:7]) == []
    assert decoder.feed(good[7:] + b"?\0\0\0\x04") == [m.Notify(3, "c", "p")]
    with pytest.raises(ProtocolViolation, match="unknown message type"):
        decoder.check()


def test_garbage_alone_raises_at_once() -> None:
    decoder = Decoder()
    with pytest.raises(ProtocolViolation):
        decoder.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_check_on_a_healthy_decoder_does_nothing() -> None:
    decoder = Decoder()
    decoder.feed(notify(1, "a", "b")[:3])
    decoder.check()
    assert decoder.buffered == 3


# -- properties ----------------------------------------------------------------

nul_free_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=20)
field_codes = st.sampled_from("SVCMDHPpqWstcdnFLR")
int32 = st.integers(-(2**31), 2**31 - 1)

Pair = Tuple[bytes, m.BackendMessage]


@st.composite
def backend_messages(draw: st.DrawFn) -> Pair:
    kind = draw(st.sampled_from("ASZCDENKTI123nst"))
    if kind == "A":
        pid, channel, payload = draw(int32), draw(nul_free_text), draw(nul_free_text)
        return notify(pid, channel, payload), m.Notify(pid, channel, payload)
    if kind == "S":
        name, value = draw(nul_free_text), draw(nul_free_text)
        return msg(b"S", cstr(name) + cstr(value)), m.ParameterStatus(name, value)
    if kind == "Z":
        status = draw(st.sampled_from("ITE"))
        return ready(status), m.ReadyForQuery(status)
    if kind == "C":
        tag = draw(nul_free_text)
        return msg(b"C", cstr(tag)), m.CommandComplete(tag)
    if kind == "D":
        values = draw(st.lists(st.none() | st.binary(max_size=12), max_size=5))
        return data_row(*values), m.DataRow(tuple(values))
    if kind in "EN":
        items = draw(st.dictionaries(field_codes, nul_free_text, max_size=5))
        cls = m.ErrorResponse if kind == "E" else m.NoticeResponse
        return msg(kind.encode(), fields(items)), cls(items)
    if kind == "K":
        pid, key = draw(int32), draw(st.binary(min_size=4, max_size=256))
        return msg(b"K", i32(pid) + key), m.BackendKeyData(pid, key)
    if kind == "T":
        names = draw(st.lists(nul_free_text, max_size=4))
        body = i16(len(names)) + b"".join(column(name) for name in names)
        return msg(b"T", body), m.RowDescription(tuple(names))
    if kind == "t":
        oids = draw(st.lists(st.integers(0, 2**32 - 1), max_size=4))
        body = i16(len(oids)) + struct.pack(f"!{len(oids)}I", *oids)
        return msg(b"t", body), m.ParameterDescription(tuple(oids))
    empty: Dict[str, m.BackendMessage] = {
        "I": m.EmptyQueryResponse(),
        "1": m.ParseComplete(),
        "2": m.BindComplete(),
        "3": m.CloseComplete(),
        "n": m.NoData(),
        "s": m.PortalSuspended(),
    }
    return msg(kind.encode()), empty[kind]


cut_points = st.lists(st.integers(0, 4000), max_size=30)


@settings(deadline=None, max_examples=150)
@given(pairs=st.lists(backend_messages(), max_size=12), cuts=cut_points)
def test_valid_messages_in_any_chunking(pairs: List[Pair], cuts: List[int]) -> None:
    stream = b"".join(data for data, _ in pairs)
    chunks = split(stream, cuts)
    assert b"".join(chunks) == stream
    decoder = Decoder()
    out: List[m.BackendMessage] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    decoder.check()
    assert out == [message for _, message in pairs]
    assert decoder.buffered == 0


@st.composite
def plausible_frames(draw: st.DrawFn) -> bytes:
    """A header of a known (or unknown) type, with a random body and a length that may lie."""
    kind = draw(st.sampled_from(b"RSKZTDCIENAv123nts" + b"xd\0"))
    body = draw(st.binary(max_size=40))
    if kind == ord("R") and draw(st.booleans()):
        body = i32(draw(st.sampled_from([0, 3, 5, 7, 10, 11, 12, -1]))) + body
    length = draw(
        st.one_of(
            st.just(len(body) + 4),
            st.integers(-10, 60),
            st.integers(MAX_SHORT_MESSAGE - 2, MAX_SHORT_MESSAGE + 2),
            st.integers(2**30 - 2, 2**31 - 1),
        )
    )
    return bytes([kind]) + i32(length) + body


noise = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.one_of(plausible_frames(), backend_messages().map(lambda pair: pair[0])), max_size=8
    ).map(b"".join),
)


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=noise, cuts=st.lists(st.integers(0, 400), max_size=20))
def test_any_bytes_in_any_chunking(data: bytes, cuts: List[int]) -> None:
    # Only messages come out, or ProtocolViolation: never any other exception.
    whole, whole_failed = feed_until_error(Decoder(), [data])
    chunked_decoder = Decoder()
    chunked, chunked_failed = feed_until_error(chunked_decoder, split(data, cuts))
    # The chunking changes nothing: the same messages, then the same verdict.
    assert chunked == whole
    assert chunked_failed == whole_failed
    for message in chunked:
        assert isinstance(message, get_args(m.BackendMessage))
    if not chunked_failed:
        assert chunked_decoder.buffered <= len(data)


def test_small_routine_replies_are_parsed_once_and_shared() -> None:
    row = b"D" + struct.pack("!ihi", 10, 1, 0)  # pg_notify's one empty value
    complete = b"C" + struct.pack("!i", 13) + b"SELECT 1\0"
    stream = b"1\0\0\0\x042\0\0\0\x04" + row + complete + ready()
    first, second = Decoder().feed(stream), Decoder().feed(stream)
    assert first == [m.ParseComplete(), m.BindComplete(), m.DataRow((b"",)),
                     m.CommandComplete("SELECT 1"), m.ReadyForQuery("I")]
    assert all(a is b for a, b in zip(first, second))


def test_a_whole_small_reply_is_parsed_once_and_handed_out_as_a_new_list() -> None:
    reply = command_complete("NOTIFY") + ready()
    first, second = Decoder().feed(reply), Decoder().feed(reply)
    assert first == second == [m.CommandComplete("NOTIFY"), m.ReadyForQuery("I")]
    assert first is not second and all(a is b for a, b in zip(first, second))
    first.clear()
    assert Decoder().feed(reply) == second


def test_a_small_reply_with_a_notification_delivers_it_every_time() -> None:
    reply = notify(7, "c", "p") + ready()
    pending = Pending()
    decoder = Decoder()
    for _ in range(3):
        assert decoder.feed(reply, pending) == [m.ReadyForQuery("I")]
        assert Decoder().feed(reply) == [m.Notify(7, "c", "p"), m.ReadyForQuery("I")]
    assert list(pending) == [m.Notify(7, "c", "p")] * 3


def test_a_malformed_small_reply_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ProtocolViolation, match="transaction status"):
            Decoder().feed(ready("X"))


def notifies(messages: List[m.BackendMessage]) -> List[m.Notify]:
    assert all(type(message) is m.Notify for message in messages)
    return cast("List[m.Notify]", messages)


def test_senders_and_channels_are_shared_between_notifications() -> None:
    decoder = Decoder()
    first, second = notifies(decoder.feed(notify(40000, "jobs", "1") + notify(40000, "jobs", "2")))
    (third,) = notifies(decoder.feed(notify(40000, "jobs", "3")))
    assert [n.payload for n in (first, second, third)] == ["1", "2", "3"]
    assert first.pid is second.pid is third.pid
    assert first.channel is second.channel is third.channel


def test_a_third_string_is_refused_even_after_its_channel_was_seen() -> None:
    decoder = Decoder()
    good = notify(7, "c", "p")
    bad = msg(b"A", i32(7) + cstr("c") + cstr("p") + cstr("q"))
    with pytest.raises(ProtocolViolation, match="more than two strings"):
        decoder.feed(good + bad + good)
        decoder.check()


def test_the_same_sender_again_is_checked_as_strictly() -> None:
    good = notify(7, "c", "p")
    both = Decoder().feed(good + notify(7, "c", ""))
    assert both == [m.Notify(7, "c", "p"), m.Notify(7, "c", "")]
    only_channel = msg(b"A", i32(7) + cstr("c"))
    bad_utf8 = msg(b"A", i32(7) + cstr("c") + b"\xff\0")
    unterminated = msg(b"A", i32(7) + cstr("c") + b"p!")
    for bad, reason in [(only_channel, "NUL-terminated"), (bad_utf8, "utf-8"),
                        (unterminated, "NUL-terminated")]:
        decoder = Decoder()
        assert decoder.feed(good + bad) == [m.Notify(7, "c", "p")]
        with pytest.raises(ProtocolViolation, match=reason):
            decoder.check()


def test_many_senders_keep_the_source_cache_bounded() -> None:
    decoder = Decoder()
    stream = b"".join(notify(pid, f"c{pid % 7}", str(pid)) for pid in range(3000))
    received = notifies(decoder.feed(stream))
    assert [(n.pid, n.channel, n.payload) for n in received] == [
        (pid, f"c{pid % 7}", str(pid)) for pid in range(3000)
    ]
    assert len(decoder._sources) <= 1024
