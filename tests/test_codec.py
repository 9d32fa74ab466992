"""The public codec, both directions: build and parse are inverse for every message type, in
any chunking; bytes that are not the protocol raise ProtocolViolation and nothing else."""

from __future__ import annotations

import typing
from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgwire_pubsub import protocol as pg
from pgwire_pubsub.errors import ProtocolViolation
from pgwire_pubsub.protocol import frontend
from pgwire_pubsub.testing.wirebytes import split

# Strings the protocol can carry: UTF-8, no NUL.
text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]),
               max_size=40)
name = text.filter(bool)
blob = st.binary(max_size=60)
int32 = st.integers(-(2**31), 2**31 - 1)
uint32 = st.integers(0, 2**32 - 1)
uint16 = st.integers(0, 2**16 - 1)
cancel_key = st.binary(min_size=4, max_size=256)  # 4 bytes in protocol 3.0, up to 256 in 3.2
field_code = st.characters(min_codepoint=1, max_codepoint=255)

BACKEND: Dict[type, st.SearchStrategy[Any]] = {
    pg.Notify: st.builds(pg.Notify, int32, text, text),
    pg.AuthenticationOk: st.just(pg.AuthenticationOk()),
    pg.AuthenticationCleartextPassword: st.just(pg.AuthenticationCleartextPassword()),
    pg.AuthenticationMD5Password: st.builds(pg.AuthenticationMD5Password,
                                            st.binary(min_size=4, max_size=4)),
    pg.AuthenticationSASL: st.builds(pg.AuthenticationSASL,
                                     st.lists(name, max_size=3).map(tuple)),
    pg.AuthenticationSASLContinue: st.builds(pg.AuthenticationSASLContinue, blob),
    pg.AuthenticationSASLFinal: st.builds(pg.AuthenticationSASLFinal, blob),
    pg.AuthenticationUnsupported: st.builds(
        pg.AuthenticationUnsupported, int32.filter(lambda c: c not in (0, 3, 5, 10, 11, 12))),
    pg.ParameterStatus: st.builds(pg.ParameterStatus, text, text),
    pg.BackendKeyData: st.builds(pg.BackendKeyData, int32, cancel_key),
    pg.ReadyForQuery: st.builds(pg.ReadyForQuery, st.sampled_from("ITE")),
    pg.RowDescription: st.builds(pg.RowDescription, st.lists(text, max_size=4).map(tuple)),
    pg.DataRow: st.builds(pg.DataRow, st.lists(st.none() | blob, max_size=4).map(tuple)),
    pg.CommandComplete: st.builds(pg.CommandComplete, text),
    pg.EmptyQueryResponse: st.just(pg.EmptyQueryResponse()),
    pg.ErrorResponse: st.builds(pg.ErrorResponse, st.dictionaries(field_code, text, max_size=5)),
    pg.NoticeResponse: st.builds(pg.NoticeResponse, st.dictionaries(field_code, text, max_size=5)),
    pg.NegotiateProtocolVersion: st.builds(pg.NegotiateProtocolVersion,
                                           st.tuples(uint16, uint16),
                                           st.lists(text, max_size=3).map(tuple)),
    pg.ParseComplete: st.just(pg.ParseComplete()),
    pg.BindComplete: st.just(pg.BindComplete()),
    pg.CloseComplete: st.just(pg.CloseComplete()),
    pg.NoData: st.just(pg.NoData()),
    pg.ParameterDescription: st.builds(pg.ParameterDescription,
                                       st.lists(uint32, max_size=5).map(tuple)),
    pg.PortalSuspended: st.just(pg.PortalSuspended()),
}


@st.composite
def binds(draw: st.DrawFn) -> pg.Bind:
    params = tuple(draw(st.lists(st.none() | blob, max_size=4)))
    formats = st.sampled_from((0, 1))
    param_formats = draw(st.sampled_from([(), (draw(formats),),
                                          tuple(draw(formats) for _ in params)]))
    result_formats = tuple(draw(st.lists(formats, max_size=3)))
    return pg.Bind(draw(text), draw(text), params, param_formats, result_formats)


FRONTEND: Dict[type, st.SearchStrategy[Any]] = {
    pg.StartupMessage: st.builds(pg.StartupMessage, st.dictionaries(name, text, max_size=4),
                                 st.integers(0, 0xFFFF).map(lambda minor: 3 << 16 | minor)),
    pg.SSLRequest: st.just(pg.SSLRequest()),
    pg.GSSENCRequest: st.just(pg.GSSENCRequest()),
    pg.CancelRequest: st.builds(pg.CancelRequest, int32, cancel_key),
    pg.PasswordMessage: st.builds(pg.PasswordMessage, blob.filter(lambda b: b"\0" not in b)),
    pg.SASLInitialResponse: st.builds(pg.SASLInitialResponse, text, st.none() | blob),
    pg.SASLResponse: st.builds(pg.SASLResponse, blob),
    pg.Query: st.builds(pg.Query, text),
    pg.Parse: st.builds(pg.Parse, text, text, st.lists(uint32, max_size=4).map(tuple)),
    pg.Bind: binds(),
    pg.Describe: st.builds(pg.Describe, st.sampled_from("SP"), text),
    pg.Execute: st.builds(pg.Execute, text, int32),
    pg.Close: st.builds(pg.Close, st.sampled_from("SP"), text),
    pg.Flush: st.just(pg.Flush()),
    pg.Sync: st.just(pg.Sync()),
    pg.Terminate: st.just(pg.Terminate()),
}
PASSWORD_TYPES = (pg.PasswordMessage, pg.SASLInitialResponse, pg.SASLResponse)

any_backend = st.one_of(*BACKEND.values())
cuts = st.lists(st.integers(0, 2000), max_size=12)


def test_every_message_type_has_a_strategy() -> None:
    assert set(typing.get_args(pg.BackendMessage)) == set(BACKEND)
    assert set(typing.get_args(pg.FrontendMessage)) == set(FRONTEND)


@pytest.mark.parametrize("kind", list(BACKEND), ids=lambda k: k.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_backend_message_round_trip(kind: type, data: st.DataObject) -> None:
    message = data.draw(BACKEND[kind])
    assert pg.parse_backend(pg.build(message)) == message


@pytest.mark.parametrize("kind", list(FRONTEND), ids=lambda k: k.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_frontend_message_round_trip(kind: type, data: st.DataObject) -> None:
    message = data.draw(FRONTEND[kind])
    password_type = kind if kind in PASSWORD_TYPES else pg.PasswordMessage
    assert pg.parse_frontend(pg.build(message), password_type) == message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_backend, max_size=8), cuts)
def test_backend_stream_in_any_chunking(messages: List[Any], points: List[int]) -> None:
    decoder = pg.Decoder()
    out: List[Any] = []
    for chunk in split(b"".join(map(pg.build, messages)), points):
        out += decoder.feed(chunk)
    assert out == messages
    assert decoder.buffered == 0


@st.composite
def frontend_streams(draw: st.DrawFn) -> Tuple[Any, List[Any]]:
    """Messages a client could send in a row: their ``p`` messages all of one kind."""
    password_type = draw(st.sampled_from(PASSWORD_TYPES))
    kinds = [k for k in FRONTEND if k not in PASSWORD_TYPES or k is password_type]
    return password_type, draw(st.lists(st.one_of(*(FRONTEND[k] for k in kinds)), max_size=8))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frontend_streams(), cuts)
def test_frontend_stream_in_any_chunking(stream: Tuple[Any, List[Any]], points: List[int]) -> None:
    password_type, messages = stream
    decoder = pg.FrontendDecoder(password_type)
    out: List[Any] = []
    for chunk in split(b"".join(map(pg.build, messages)), points):
        out += decoder.feed(chunk)
    assert out == messages
    assert decoder.buffered == 0


def _feed_everything(decoder: Any, data: bytes, points: List[int]) -> None:
    """Feed ``data``; only ProtocolViolation may escape, and the decoder stays broken."""
    try:
        for chunk in split(data, points):
            decoder.feed(chunk)
    except ProtocolViolation:
        with pytest.raises(ProtocolViolation):
            decoder.check()
        with pytest.raises(ProtocolViolation):
            decoder.feed(b"Z\0\0\0\x05I")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), cuts, st.sampled_from(PASSWORD_TYPES))
def test_frontend_garbage_raises_protocol_violation_only(
        data: bytes, points: List[int], password_type: Any) -> None:
    _feed_everything(pg.FrontendDecoder(password_type), data, points)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frontend_streams(), st.data(), cuts)
def test_damaged_frontend_streams_raise_protocol_violation_only(
        stream: Tuple[Any, List[Any]], data: st.DataObject, points: List[int]) -> None:
    password_type, messages = stream
    damaged = _damage(data, b"".join(map(pg.build, messages)))
    _feed_everything(pg.FrontendDecoder(password_type), damaged, points)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_backend, max_size=6), st.data(), cuts)
def test_damaged_backend_streams_raise_protocol_violation_only(
        messages: List[Any], data: st.DataObject, points: List[int]) -> None:
    damaged = _damage(data, b"".join(map(pg.build, messages)))
    _feed_everything(pg.Decoder(), damaged, points)


def _damage(data: st.DataObject, raw: bytes) -> bytes:
    damaged = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(damaged)))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if action == "set" and at < len(damaged):
            damaged[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            damaged.insert(at, data.draw(st.integers(0, 255)))
        elif at < len(damaged):
            del damaged[at]
    return bytes(damaged)


# -- exact bytes and reprs --------------------------------------------------------------


def test_reprs_are_stable() -> None:
    assert repr(pg.Query("LISTEN jobs")) == "Query(sql='LISTEN jobs')"
    assert repr(pg.StartupMessage({"user": "alice"})) == (
        "StartupMessage(parameters={'user': 'alice'}, protocol_version=196608)")
    assert repr(pg.Notify(42, "jobs", "1")) == "Notify(42, 'jobs', '1')"
    assert repr(pg.ReadyForQuery("I")) == "ReadyForQuery(status='I')"
    assert repr(pg.Bind("", "", (b"1",))) == (
        "Bind(portal='', statement='', params=(b'1',), param_formats=(), result_formats=())")


def test_a_password_never_shows_in_a_repr() -> None:
    message = pg.PasswordMessage(b"hunter2")
    assert "hunter2" not in repr(message) and "hunter2" not in str(message)
    assert repr(message) == "PasswordMessage(<7 bytes hidden>)"


def test_frontend_bytes_by_hand() -> None:
    assert pg.build(pg.Describe("P")) == b"D\0\0\0\x06P\0"
    assert pg.build(pg.Close("S", "s1")) == b"C\0\0\0\x08Ss1\0"
    assert pg.build(pg.Flush()) == b"H\0\0\0\x04"
    assert pg.build(pg.GSSENCRequest()) == b"\0\0\0\x08\x04\xd2\x16\x30"
    assert pg.build(pg.SASLInitialResponse("X", None)) == b"p\0\0\0\x0aX\0\xff\xff\xff\xff"
    assert pg.build(pg.Bind("p", "s", (None, b"ab"), (1,), (0, 1))) == (
        b"B\0\0\0\x1ep\0s\0\0\x01\0\x01\0\x02\xff\xff\xff\xff\0\0\0\x02ab\0\x02\0\0\0\x01")


def test_backend_bytes_by_hand() -> None:
    assert pg.build(pg.AuthenticationOk()) == b"R\0\0\0\x08\0\0\0\0"
    assert pg.build(pg.ReadyForQuery("T")) == b"Z\0\0\0\x05T"
    assert pg.build(pg.Notify(1, "c", "p")) == b"A\0\0\0\x0c\0\0\0\x01c\0p\0"
    assert pg.build(pg.ErrorResponse({"S": "ERROR"})) == b"E\0\0\0\x0cSERROR\0\0"


@settings(max_examples=100, deadline=None)
@given(text, text, st.lists(st.none() | text, max_size=5))
def test_the_clients_text_bind_is_the_general_one(portal: str, statement: str,
                                                  params: List[Any]) -> None:
    values = [None if p is None else p.encode() for p in params]
    assert frontend.bind(portal, statement, params) == pg.build(
        pg.Bind(portal, statement, tuple(values)))


@pytest.mark.parametrize("message, problem", [
    (pg.Query("a\0b"), "NUL"),
    (pg.AuthenticationMD5Password(b"abc"), "4 bytes"),
    (pg.AuthenticationUnsupported(5), "type of its own"),
    (pg.ReadyForQuery("X"), "'I', 'T' or 'E'"),
    (pg.Describe("X"), "statement"),
    (pg.ErrorResponse({"SC": "x"}), "one character"),
    (pg.AuthenticationSASL(("",)), "empty"),
])
def test_what_the_protocol_cannot_carry_is_refused(message: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        pg.build(message)


def test_build_refuses_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match="tuple is not a protocol message"):
        pg.build((1, 2))  # type: ignore[arg-type]


@pytest.mark.parametrize("data, problem", [
    (b"", "found 0"),
    (pg.build(pg.Sync()) * 2, "found 2"),
    (pg.build(pg.Query("x"))[:-1], "found 0 and 6 bytes"),
])
def test_parse_wants_exactly_one_whole_message(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        pg.parse_frontend(data)


@pytest.mark.parametrize("data, problem", [
    (b"\0\0\0\x08\0\x02\0\0", "unsupported protocol version 2.0"),
    (b"\0\0\x27\x11", "not within 8-10000"),
    (b"S\0\0\x27\x15", "not within 4-10000"),  # only Query, Parse, Bind and p may be long
    (b"Y\0\0\0\x04", "unknown message type b'Y'"),
])
def test_frontend_headers_are_checked(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        pg.FrontendDecoder().feed(data)


def test_bind_formats_must_match_the_parameters() -> None:
    raw = frontend.bind_values("", "", [b"1", b"2", b"3"], [0, 1])
    with pytest.raises(ProtocolViolation, match="2 parameter formats for 3 parameters"):
        pg.parse_frontend(raw)


def test_a_password_message_is_one_string() -> None:
    with pytest.raises(ProtocolViolation, match="one NUL-terminated string"):
        pg.parse_frontend(b"p\0\0\0\x07a\0b\0")
