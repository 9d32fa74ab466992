"""Authentication: MD5's answer, cleartext, and SCRAM-SHA-256 against scramp's server side."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Optional

import pytest
from authchecks import PLUS, SCRAM, USER, ScramExchange
from scramp import ScramException

from pgwire_pubsub.errors import OperationalError, ProtocolViolation
from pgwire_pubsub.protocol import frontend
from pgwire_pubsub.protocol import messages as m
from pgwire_pubsub.protocol.auth import Authenticator, md5_password

# Not authchecks' PASSWORD: this one is not ASCII, for MD5 and SCRAM's SASLprep.
PASSWORD = "correct horse \u00e9 battery"
SALT = b"\x9a\x00\xff\x10"


def password_body(data: bytes) -> bytes:
    """The password of a PasswordMessage, checking its framing."""
    assert data[:1] == b"p"
    assert struct.unpack("!i", data[1:5]) == (len(data) - 1,)
    assert data.endswith(b"\0")
    return data[5:-1]


# -- MD5 -----------------------------------------------------------------------


def test_md5_password_known_vector() -> None:
    inner = hashlib.md5(b"secret" + b"bob").hexdigest()
    expected = "md5" + hashlib.md5(inner.encode() + b"\x01\x02\x03\x04").hexdigest()
    assert md5_password("bob", "secret", b"\x01\x02\x03\x04") == expected.encode()


def test_md5_password_literal_vector() -> None:
    # The inner hash is what pg_authid stores for postgres/postgres: md53175bce1...
    answer = md5_password("postgres", "postgres", b"\0\0\0\0")
    inner = hashlib.md5(b"postgrespostgres").hexdigest()
    assert inner == "3175bce1d3201d16594cebf9d7eb3f9d"
    assert answer == b"md5" + hashlib.md5(inner.encode() + b"\0\0\0\0").hexdigest().encode()
    assert len(answer) == 35


def test_md5_password_unicode() -> None:
    inner = hashlib.md5(PASSWORD.encode("utf-8") + USER.encode("utf-8")).hexdigest()
    expected = b"md5" + hashlib.md5(inner.encode() + SALT).hexdigest().encode()
    assert md5_password(USER, PASSWORD, SALT) == expected


def test_md5_salt_matters() -> None:
    assert md5_password("u", "p", b"aaaa") != md5_password("u", "p", b"aaab")


def test_authenticator_md5() -> None:
    auth = Authenticator(USER, PASSWORD)
    answer = auth.respond(m.AuthenticationMD5Password(SALT))
    assert answer is not None
    assert password_body(answer) == md5_password(USER, PASSWORD, SALT)
    assert auth.method == "md5"
    assert auth.respond(m.AuthenticationOk()) is None


# -- cleartext and trust -------------------------------------------------------


def test_authenticator_cleartext() -> None:
    auth = Authenticator(USER, PASSWORD)
    answer = auth.respond(m.AuthenticationCleartextPassword())
    assert answer == frontend.password_message(PASSWORD.encode("utf-8"))
    assert password_body(answer) == PASSWORD.encode("utf-8")
    assert auth.method == "password"


def test_trust_needs_no_password() -> None:
    auth = Authenticator(USER, None)
    assert auth.respond(m.AuthenticationOk()) is None
    assert auth.method is None


@pytest.mark.parametrize(
    ("message", "method"),
    [
        (m.AuthenticationCleartextPassword(), "password"),
        (m.AuthenticationMD5Password(SALT), "md5"),
        (m.AuthenticationSASL((SCRAM,)), "scram-sha-256"),
    ],
    ids=["cleartext", "md5", "scram"],
)
def test_no_password_names_the_method(message: m.BackendMessage, method: str) -> None:
    auth = Authenticator(USER, None)
    with pytest.raises(OperationalError, match=f"{method} authentication") as info:
        auth.respond(message)
    assert not isinstance(info.value, ProtocolViolation)
    assert USER in str(info.value)
    assert auth.method == method


@pytest.mark.parametrize(
    ("code", "name"),
    [(7, "GSSAPI"), (2, "Kerberos V5"), (9, "SSPI"), (6, "SCM credentials"), (99, "code 99")],
)
def test_unsupported_method_is_named(code: int, name: str) -> None:
    with pytest.raises(OperationalError, match=name) as info:
        Authenticator(USER, PASSWORD).respond(m.AuthenticationUnsupported(code))
    assert not isinstance(info.value, ProtocolViolation)


@pytest.mark.parametrize(
    "message",
    [m.ReadyForQuery("I"), m.DataRow(()), m.Notify(1, "c", "")],
    ids=["ready", "data-row", "notify"],
)
def test_unexpected_message(message: m.BackendMessage) -> None:
    with pytest.raises(ProtocolViolation):
        Authenticator(USER, PASSWORD).respond(message)


# -- SCRAM-SHA-256 -------------------------------------------------------------


def scram_exchange(client_password: Optional[str] = None) -> ScramExchange:
    """An exchange against scramp's server, which knows PASSWORD, in which the client
    must pick SCRAM-SHA-256 (there is no TLS to bind to)."""
    return ScramExchange(password=PASSWORD, client_password=client_password, expect_mechanism=SCRAM)


def test_scram_full_exchange() -> None:
    exchange = scram_exchange()
    server_final = exchange.to_server_final(SCRAM)
    assert server_final.startswith(b"v=")
    assert exchange.auth.respond(m.AuthenticationSASLFinal(server_final)) is None
    assert exchange.auth.respond(m.AuthenticationOk()) is None
    assert exchange.auth.method == "scram-sha-256"


def test_scram_client_first_message() -> None:
    _, client_first = scram_exchange().start(PLUS, SCRAM)
    # No channel binding ("n,,"), then the user and a client nonce.
    assert client_first.startswith(b"n,,n=")
    assert b",r=" in client_first


def test_scram_wrong_password_is_caught_by_the_server() -> None:
    exchange = scram_exchange(client_password="wrong")
    with pytest.raises(ScramException):
        exchange.to_server_final(SCRAM)


def test_scram_forged_server_signature() -> None:
    exchange = scram_exchange()
    exchange.to_server_final(SCRAM)
    forged = b"v=" + base64.b64encode(b"\x00" * 32)
    with pytest.raises(OperationalError, match="signature") as info:
        exchange.auth.respond(m.AuthenticationSASLFinal(forged))
    assert not isinstance(info.value, ProtocolViolation)
    # Not having proven itself, the server cannot end the exchange either.
    with pytest.raises(ProtocolViolation):
        exchange.auth.respond(m.AuthenticationOk())


def test_scram_replayed_server_signature() -> None:
    # A signature recorded from another exchange does not prove this one.
    recorded = scram_exchange().to_server_final(SCRAM)
    exchange = scram_exchange()
    exchange.to_server_final(SCRAM)
    with pytest.raises(OperationalError, match="signature") as info:
        exchange.auth.respond(m.AuthenticationSASLFinal(recorded))
    assert not isinstance(info.value, ProtocolViolation)


@pytest.mark.parametrize("final", [b"e=invalid-proof", b"garbage", b"\xff\xfe"])
def test_scram_bad_server_final(final: bytes) -> None:
    exchange = scram_exchange()
    exchange.to_server_final(SCRAM)
    with pytest.raises(OperationalError, match="signature is invalid"):
        exchange.auth.respond(m.AuthenticationSASLFinal(final))


def test_scram_ok_before_server_first() -> None:
    exchange = scram_exchange()
    exchange.start(SCRAM)
    with pytest.raises(ProtocolViolation, match="without proving"):
        exchange.auth.respond(m.AuthenticationOk())


def test_scram_ok_before_sasl_final() -> None:
    exchange = scram_exchange()
    exchange.to_server_final(SCRAM)
    with pytest.raises(ProtocolViolation, match="without proving"):
        exchange.auth.respond(m.AuthenticationOk())


def test_scram_only_unknown_mechanisms() -> None:
    auth = Authenticator(USER, PASSWORD)
    with pytest.raises(OperationalError, match="SCRAM-SHA-1, OAUTHBEARER") as info:
        auth.respond(m.AuthenticationSASL(("SCRAM-SHA-1", "OAUTHBEARER")))
    assert "SCRAM-SHA-256" in str(info.value)
    assert not isinstance(info.value, ProtocolViolation)


def test_scram_no_mechanisms() -> None:
    with pytest.raises(OperationalError, match="none"):
        Authenticator(USER, PASSWORD).respond(m.AuthenticationSASL(()))


def test_scram_restart_is_refused() -> None:
    exchange = scram_exchange()
    exchange.start(SCRAM)
    with pytest.raises(ProtocolViolation, match="restarted"):
        exchange.auth.respond(m.AuthenticationSASL((SCRAM,)))


@pytest.mark.parametrize(
    "message",
    [m.AuthenticationSASLContinue(b"r=abc,s=c2FsdA==,i=4096"), m.AuthenticationSASLFinal(b"v=")],
    ids=["continue", "final"],
)
def test_sasl_messages_outside_an_exchange(message: m.BackendMessage) -> None:
    with pytest.raises(ProtocolViolation, match="outside a SCRAM exchange"):
        Authenticator(USER, PASSWORD).respond(message)


def test_sasl_messages_after_the_exchange() -> None:
    exchange = scram_exchange()
    server_final = exchange.to_server_final(SCRAM)
    exchange.auth.respond(m.AuthenticationSASLFinal(server_final))
    with pytest.raises(ProtocolViolation, match="outside a SCRAM exchange"):
        exchange.auth.respond(m.AuthenticationSASLFinal(server_final))


@pytest.mark.parametrize(
    "server_first",
    [b"r=not-our-nonce,s=c2FsdA==,i=4096", b"garbage", b"\xff"],
    ids=["foreign-nonce", "garbage", "invalid-utf8"],
)
def test_scram_bad_server_first(server_first: bytes) -> None:
    exchange = scram_exchange()
    exchange.start(SCRAM)
    with pytest.raises(ProtocolViolation, match="server-first"):
        exchange.auth.respond(m.AuthenticationSASLContinue(server_first))


# -- the password stays secret -------------------------------------------------


def test_repr_never_shows_the_password() -> None:
    exchange = scram_exchange()
    texts = [repr(exchange.auth), str(exchange.auth)]
    server_final = exchange.to_server_final(SCRAM)
    texts += [repr(exchange.auth), str(exchange.auth)]
    exchange.auth.respond(m.AuthenticationSASLFinal(server_final))
    texts += [repr(exchange.auth), str(exchange.auth)]
    for method_message in (m.AuthenticationCleartextPassword(), m.AuthenticationMD5Password(SALT)):
        auth = Authenticator(USER, PASSWORD)
        auth.respond(method_message)
        texts += [repr(auth), str(auth)]
    for text in texts:
        assert PASSWORD not in text
        assert "correct horse" not in text
        assert USER in text


def test_errors_never_show_the_password() -> None:
    exchange = scram_exchange()
    exchange.to_server_final(SCRAM)
    with pytest.raises(OperationalError) as info:
        exchange.auth.respond(m.AuthenticationSASLFinal(b"v=" + base64.b64encode(b"x" * 32)))
    assert "correct horse" not in str(info.value)
