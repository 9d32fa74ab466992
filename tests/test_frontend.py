"""Frontend message encoders: exact bytes, written out by hand."""

from __future__ import annotations

import struct
from typing import Callable, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgwire_pubsub.protocol import frontend


def test_ssl_request() -> None:
    # Length 8, then the code 1234 << 16 | 5679.
    assert frontend.ssl_request() == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


def test_cancel_request() -> None:
    # Length 16, the code 1234 << 16 | 5678, the process id and the secret key.
    assert frontend.cancel_request(0x01020304, b"\xff\xff\xff\xfe") == (
        b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x01\x02\x03\x04\xff\xff\xff\xfe"
    )


def test_cancel_request_with_a_protocol_3_2_key() -> None:
    key = bytes(range(32))  # PostgreSQL 18's length; the protocol allows up to 256
    assert frontend.cancel_request(7, key) == (
        b"\x00\x00\x00\x2c\x04\xd2\x16\x2e\x00\x00\x00\x07" + key  # 12 + 32 = 44
    )


def test_startup_message_asks_for_protocol_3_2() -> None:
    data = frontend.startup_message({"user": "u"}, frontend.PROTOCOL_3_2)
    assert data == b"\x00\x00\x00\x10\x00\x03\x00\x02user\x00u\x00\x00"
    assert struct.unpack("!i", data[4:8]) == (196610,)


def test_startup_message() -> None:
    data = frontend.startup_message({"user": "alice", "database": "db"})
    assert data == (
        b"\x00\x00\x00\x20"  # 4 + 4 + 11 + 12 + 1
        b"\x00\x03\x00\x00"  # protocol 3.0 = 196608
        b"user\x00alice\x00"
        b"database\x00db\x00"
        b"\x00"
    )
    assert struct.unpack("!i", data[4:8]) == (196608,)


def test_startup_message_keeps_parameter_order_and_unicode() -> None:
    data = frontend.startup_message(
        {"user": "j\u00f6rg", "application_name": "\u2603", "client_encoding": "UTF8"}
    )
    body = (
        b"\x00\x03\x00\x00"
        b"user\x00j\xc3\xb6rg\x00"
        b"application_name\x00\xe2\x98\x83\x00"
        b"client_encoding\x00UTF8\x00"
        b"\x00"
    )
    assert data == struct.pack("!i", len(body) + 4) + body


def test_startup_message_without_parameters() -> None:
    assert frontend.startup_message({}) == b"\x00\x00\x00\x09\x00\x03\x00\x00\x00"


def test_password_message() -> None:
    assert frontend.password_message(b"secret") == b"p\x00\x00\x00\x0bsecret\x00"
    assert frontend.password_message(b"") == b"p\x00\x00\x00\x05\x00"


def test_password_message_md5_form() -> None:
    password = b"md5" + b"0" * 32
    assert frontend.password_message(password) == b"p\x00\x00\x00\x28" + password + b"\x00"


def test_sasl_initial_response() -> None:
    data = frontend.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc")
    assert data == (
        b"p\x00\x00\x00\x21"  # 4 + 14 + 4 + 11 = 33
        b"SCRAM-SHA-256\x00"
        b"\x00\x00\x00\x0b"
        b"n,,n=,r=abc"
    )


def test_sasl_initial_response_without_data() -> None:
    assert frontend.sasl_initial_response("X", b"") == b"p\x00\x00\x00\x0aX\x00\x00\x00\x00\x00"


def test_sasl_response() -> None:
    assert frontend.sasl_response(b"c=biws,r=abc,p=xyz") == (
        b"p\x00\x00\x00\x16c=biws,r=abc,p=xyz"
    )


def test_query() -> None:
    assert frontend.query("SELECT 1") == b"Q\x00\x00\x00\x0dSELECT 1\x00"
    assert frontend.query("") == b"Q\x00\x00\x00\x05\x00"


def test_query_unicode() -> None:
    assert frontend.query("NOTIFY c, '\u00e9'") == (
        b"Q\x00\x00\x00\x13NOTIFY c, '\xc3\xa9'\x00"  # 4 + 14 + 1 = 19
    )


def test_parse() -> None:
    assert frontend.parse("", "SELECT $1", [25]) == (
        b"P\x00\x00\x00\x15"  # 4 + 1 + 10 + 2 + 4 = 21
        b"\x00"
        b"SELECT $1\x00"
        b"\x00\x01"
        b"\x00\x00\x00\x19"
    )


def test_parse_named_without_types() -> None:
    assert frontend.parse("s1", "SELECT 1") == b"P\x00\x00\x00\x12s1\x00SELECT 1\x00\x00\x00"


def test_parse_with_large_type_oid() -> None:
    data = frontend.parse("", "x", [4294967295, 0])
    assert data.endswith(b"\x00\x02\xff\xff\xff\xff\x00\x00\x00\x00")


def test_bind() -> None:
    assert frontend.bind("", "", ["a", None, "\u00e9"]) == (
        b"B\x00\x00\x00\x1b"  # 4 + 1 + 1 + 2 + 2 + 5 + 4 + 6 + 2 = 27
        b"\x00"  # portal
        b"\x00"  # statement
        b"\x00\x00"  # no parameter format codes: all text
        b"\x00\x03"  # three parameters
        b"\x00\x00\x00\x01a"
        b"\xff\xff\xff\xff"  # NULL
        b"\x00\x00\x00\x02\xc3\xa9"
        b"\x00\x00"  # no result format codes: all text
    )


def test_bind_named_without_parameters() -> None:
    assert frontend.bind("p", "s", []) == b"B\x00\x00\x00\x0ep\x00s\x00\x00\x00\x00\x00\x00\x00"


def test_bind_empty_string_is_not_null() -> None:
    assert frontend.bind("", "", [""]) == (
        b"B\x00\x00\x00\x10"  # 4 + 1 + 1 + 2 + 2 + 4 + 2 = 16
        b"\x00\x00\x00\x00\x00\x01"
        b"\x00\x00\x00\x00"  # length 0, not -1
        b"\x00\x00"
    )


def test_bind_emoji_length_is_in_bytes() -> None:
    data = frontend.bind("", "", ["\U0001f600"])
    assert b"\x00\x00\x00\x04\xf0\x9f\x98\x80" in data


def test_execute() -> None:
    assert frontend.execute() == b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"
    assert frontend.execute("p", 10) == b"E\x00\x00\x00\x0ap\x00\x00\x00\x00\x0a"


def test_sync() -> None:
    assert frontend.sync() == b"S\x00\x00\x00\x04"


def test_terminate() -> None:
    assert frontend.terminate() == b"X\x00\x00\x00\x04"


@pytest.mark.parametrize(
    "encode",
    [
        lambda: frontend.query("SELECT 1\0; DROP TABLE t"),
        lambda: frontend.parse("", "SELECT\0"),
        lambda: frontend.parse("s\0", "SELECT 1"),
        lambda: frontend.bind("p\0", "", []),
        lambda: frontend.bind("", "s\0", []),
        lambda: frontend.execute("p\0"),
        lambda: frontend.startup_message({"user\0": "x"}),
        lambda: frontend.startup_message({"user": "x\0database"}),
        lambda: frontend.password_message(b"pass\0word"),
        lambda: frontend.sasl_initial_response("SCRAM\0", b""),
    ],
    ids=[
        "query",
        "parse-sql",
        "parse-name",
        "bind-portal",
        "bind-statement",
        "execute-portal",
        "startup-key",
        "startup-value",
        "password",
        "sasl-mechanism",
    ],
)
def test_nul_in_a_string_raises_value_error(encode: Callable[[], bytes]) -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode()


def test_nul_is_allowed_in_sasl_data() -> None:
    # SASL data is length-prefixed, not NUL-terminated.
    assert frontend.sasl_response(b"a\0b") == b"p\x00\x00\x00\x07a\x00b"


@settings(deadline=None, max_examples=100)
@given(sql=st.text(st.characters(codec="utf-8", exclude_characters="\0")))
def test_query_framing(sql: str) -> None:
    data = frontend.query(sql)
    encoded = sql.encode("utf-8")
    assert data[:1] == b"Q"
    assert struct.unpack("!i", data[1:5]) == (len(data) - 1,)
    assert data[5:] == encoded + b"\0"


SENDABLE = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")


@settings(deadline=None, max_examples=100)
@given(params=st.lists(st.none() | st.text(SENDABLE, max_size=10), max_size=6))
def test_bind_framing(params: List[Optional[str]]) -> None:
    data = frontend.bind("", "", params)
    assert struct.unpack("!i", data[1:5]) == (len(data) - 1,)
    pos = 5 + 2 + 2  # empty portal and statement, no parameter formats
    assert struct.unpack("!h", data[pos : pos + 2]) == (len(params),)
    pos += 2
    for value in params:
        (size,) = struct.unpack("!i", data[pos : pos + 4])
        pos += 4
        if value is None:
            assert size == -1
        else:
            assert data[pos : pos + size] == value.encode("utf-8")
            pos += size
    assert data[pos:] == b"\x00\x00"


def test_bind_refuses_nul_in_a_value() -> None:
    with pytest.raises(ValueError, match="NUL"):
        frontend.bind("", "", ["a\0b"])


def test_startup_refuses_an_empty_parameter_name() -> None:
    with pytest.raises(ValueError, match="empty"):
        frontend.startup_message({"": "x"})


def test_run_unnamed_is_parse_bind_execute_sync() -> None:
    sql = "SELECT pg_notify($1, $2)"
    params: List[Optional[str]] = ["chan", None]
    expected = (frontend.parse("", sql, [frontend.TEXT_OID] * 2) + frontend.bind("", "", params)
                + frontend.execute() + frontend.sync())
    assert frontend.run_unnamed(sql, params) == expected
    assert frontend.run_unnamed(sql, ["other", "x"]).startswith(
        frontend.parse("", sql, [frontend.TEXT_OID] * 2))


def test_run_unnamed_keeps_a_bounded_number_of_parse_messages() -> None:
    for number in range(frontend._PARSED_LIMIT * 3):
        frontend.run_unnamed(f"SELECT {number}", [])
    assert 0 < len(frontend._PARSED) <= frontend._PARSED_LIMIT
    assert frontend.run_unnamed("SELECT $1", ["a"]) == (
        frontend.parse("", "SELECT $1", [frontend.TEXT_OID]) + frontend.bind("", "", ["a"])
        + frontend.execute() + frontend.sync())
