"""require_auth (libpq 16): which authentication the server may ask for, checked first."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import pytest
from authchecks import (
    GSS_REQUEST,
    MD5_REQUEST,
    OK,
    PASSWORD,
    PASSWORD_REQUEST,
    SASL_REQUEST,
    SCRAM,
    SECRET,
    SSPI_REQUEST,
    USER,
    WIRE_MD5,
    WIRE_OK,
    WIRE_PASSWORD,
    WIRE_SASL,
    ScramExchange,
    assert_client_sends_nothing,
    assert_driver_sends_nothing,
    refused_before_the_password,
    role_refused,
    role_session,
)
from test_tls import cluster, home, messages_after, open_session, verify_full

from pgwire_pubsub._blocking.connection import connect_raw
from pgwire_pubsub.errors import OperationalError, ProgrammingError
from pgwire_pubsub.protocol import messages as m
from pgwire_pubsub.protocol.auth import Authenticator, RequireAuth, parse_require_auth
from pgwire_pubsub.testing.pgcluster import Cluster

__all__ = ["cluster", "home"]  # fixtures, imported for these tests


def requirement_failed(require_auth: str, reason: str) -> str:
    """The message of a refusal by ``require_auth``, as libpq words it."""
    return f'authentication method requirement "{require_auth}" failed: {reason}'


# -- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "methods", "negated"),
    [
        ("password", ("password",), False),
        ("md5,scram-sha-256", ("md5", "scram-sha-256"), False),
        ("scram-sha-256,none", ("scram-sha-256", "none"), False),
        ("none", ("none",), False),
        ("gss,sspi", ("gss", "sspi"), False),
        ("!password", ("password",), True),
        ("!password,!md5,!none", ("password", "md5", "none"), True),
    ],
)
def test_parse(value: str, methods: Tuple[str, ...], negated: bool) -> None:
    parsed = parse_require_auth(value)
    assert parsed == RequireAuth(methods, negated)
    assert str(parsed) == value


@pytest.mark.parametrize("value", [None, ""])
def test_unset(value: Optional[str]) -> None:
    assert parse_require_auth(value) is None


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("scram", 'invalid require_auth value: "scram"'),
        ("SCRAM-SHA-256", 'invalid require_auth value: "SCRAM-SHA-256"'),  # case matters
        ("md5, password", 'invalid require_auth value: " password"'),  # no spaces, as libpq
        ("md5,", 'invalid require_auth value: ""'),
        ("!", 'invalid require_auth value: ""'),
        ("!!md5", 'invalid require_auth value: "!md5"'),
        ("cert", 'invalid require_auth value: "cert"'),
        (
            "md5,!password",
            'negative require_auth method "!password" cannot be mixed with non-negative methods',
        ),
        ("!md5,password", 'require_auth method "password" cannot be mixed with negative methods'),
        ("md5,md5", 'require_auth method "md5" is specified more than once'),
        ("!none,!none", 'require_auth method "!none" is specified more than once'),
        ("none,none", 'require_auth method "none" is specified more than once'),
    ],
)
def test_parse_errors(value: str, words: str) -> None:
    with pytest.raises(ProgrammingError) as info:
        parse_require_auth(value)
    assert words in str(info.value)


def test_allows() -> None:
    positive = parse_require_auth("md5,none")
    assert positive is not None
    assert positive.allows("md5") and positive.allows("none")
    assert not positive.allows("password") and not positive.allows("scram-sha-256")
    negative = parse_require_auth("!password,!none")
    assert negative is not None
    assert negative.allows("md5") and negative.allows("scram-sha-256") and negative.allows("gss")
    assert not negative.allows("password") and not negative.allows("none")


def test_bad_value_is_refused_when_the_authenticator_is_made() -> None:
    with pytest.raises(ProgrammingError):
        Authenticator(USER, PASSWORD, require_auth="md5;password")


# -- the check, request by request ---------------------------------------------------


def answers(require_auth: str, *requests: m.BackendMessage) -> Authenticator:
    """An Authenticator that has answered ``requests`` (each must be accepted)."""
    auth = Authenticator(USER, PASSWORD, require_auth=require_auth)
    for request in requests:
        auth.respond(request)
    return auth


def refused(require_auth: str, request: m.BackendMessage, reason: str) -> None:
    auth = Authenticator(USER, PASSWORD, require_auth=require_auth)
    error = refused_before_the_password(auth, request)
    assert str(error) == requirement_failed(require_auth, reason)


ALLOWED = [
    ("password", PASSWORD_REQUEST),
    ("md5", MD5_REQUEST),
    ("scram-sha-256", SASL_REQUEST),
    ("md5,scram-sha-256", MD5_REQUEST),
    ("md5,scram-sha-256", SASL_REQUEST),
    ("!password", MD5_REQUEST),
    ("!password", SASL_REQUEST),
    ("!md5,!scram-sha-256", PASSWORD_REQUEST),
]


@pytest.mark.parametrize(("require_auth", "request_"), ALLOWED)
def test_allowed_requests_are_answered(require_auth: str, request_: m.BackendMessage) -> None:
    assert Authenticator(USER, PASSWORD, require_auth=require_auth).respond(request_) is not None


REFUSED = [
    ("scram-sha-256", PASSWORD_REQUEST, "server requested a cleartext password"),
    ("scram-sha-256", MD5_REQUEST, "server requested a hashed password"),
    ("md5", SASL_REQUEST, "server requested SASL authentication"),
    ("password,md5", SASL_REQUEST, "server requested SASL authentication"),
    ("!password", PASSWORD_REQUEST, "server requested a cleartext password"),
    ("!md5,!password", MD5_REQUEST, "server requested a hashed password"),
    ("!scram-sha-256", SASL_REQUEST, "server requested SASL authentication"),
    ("none", PASSWORD_REQUEST, "server requested a cleartext password"),
    ("none", SASL_REQUEST, "server requested SASL authentication"),
    ("md5", GSS_REQUEST, "server requested GSSAPI authentication"),
    ("md5", SSPI_REQUEST, "server requested SSPI authentication"),
    ("md5", m.AuthenticationUnsupported(2), "server requested an unknown authentication type"),
    ("!md5", m.AuthenticationUnsupported(6), "server requested an unknown authentication type"),
]


@pytest.mark.parametrize(("require_auth", "request_", "reason"), REFUSED)
def test_refused_requests_fail_before_the_password(
    require_auth: str, request_: m.BackendMessage, reason: str
) -> None:
    refused(require_auth, request_, reason)


def test_refused_even_without_a_password() -> None:
    # The requirement, not the missing password, is what the user needs to hear about.
    auth = Authenticator(USER, None, require_auth="scram-sha-256")
    with pytest.raises(OperationalError, match="requirement"):
        auth.respond(MD5_REQUEST)


def test_allowed_gss_still_fails_as_unsupported() -> None:
    with pytest.raises(OperationalError, match="GSSAPI authentication, which pgwire_pubsub"):
        Authenticator(USER, PASSWORD, require_auth="gss").respond(GSS_REQUEST)


# -- "none": may the server skip authentication? --------------------------------------


@pytest.mark.parametrize("require_auth", ["none", "md5,none", "!password", "!md5,!scram-sha-256"])
def test_trust_is_accepted_when_none_is_allowed(require_auth: str) -> None:
    assert Authenticator(USER, None, require_auth=require_auth).respond(OK) is None


@pytest.mark.parametrize(
    "require_auth", ["md5", "scram-sha-256", "password,md5", "!none", "!password,!none"]
)
def test_trust_is_refused_when_none_is_not_allowed(require_auth: str) -> None:
    refused(require_auth, OK, "server did not complete authentication")


@pytest.mark.parametrize(
    ("require_auth", "request_"),
    [("password", PASSWORD_REQUEST), ("md5", MD5_REQUEST), ("!none", MD5_REQUEST)],
)
def test_ok_after_a_password_was_sent(require_auth: str, request_: m.BackendMessage) -> None:
    answers(require_auth, request_, OK)


@pytest.mark.parametrize("require_auth", ["scram-sha-256", "!none", "!password"])
def test_ok_after_a_completed_scram_exchange(require_auth: str) -> None:
    ScramExchange(require_auth=require_auth).run(SCRAM)  # AuthenticationOk is accepted


def test_ok_in_the_middle_of_scram_did_not_complete_authentication() -> None:
    exchange = ScramExchange(require_auth="scram-sha-256")
    exchange.to_server_final(SCRAM)  # the server's final message is not sent
    with pytest.raises(OperationalError, match="server did not complete authentication"):
        exchange.auth.respond(OK)


def test_conninfo_style_requirement_is_accepted() -> None:
    """Any object with ``methods``, ``negated`` and ``allows`` will do (conninfo has its own)."""

    class Requirement:
        methods = ("md5",)
        negated = False

        def allows(self, method: str) -> bool:
            return method in self.methods

    # Deliberately not a RequireAuth (the annotated type): a look-alike must work as well.
    auth = Authenticator(USER, PASSWORD, require_auth=Requirement())  # type: ignore[arg-type]
    assert auth.respond(MD5_REQUEST) is not None
    with pytest.raises(OperationalError, match='requirement "md5" failed'):
        Authenticator(
            USER, PASSWORD, require_auth=Requirement()  # type: ignore[arg-type]
        ).respond(SASL_REQUEST)


# -- against a fake server: no password reaches it ------------------------------------


FAKE_CASES = [
    ("scram-sha-256", WIRE_MD5),
    ("scram-sha-256", WIRE_PASSWORD),
    ("!password", WIRE_PASSWORD),
    ("md5", WIRE_SASL),
    ("md5", WIRE_OK),
]


@pytest.mark.parametrize(("require_auth", "request_"), FAKE_CASES)
def test_no_password_message_reaches_the_server(
    require_auth: str, request_: Tuple[int, bytes]
) -> None:
    assert_driver_sends_nothing(request_, "requirement", require_auth=require_auth)


def test_the_fake_server_does_see_an_allowed_password() -> None:
    # The counterpart, so the test above would notice a password message.
    def client(host: str, port: int) -> None:
        session = open_session(host, port)
        with session, pytest.raises(OperationalError, match="password authentication failed"):
            session.login("u", SECRET, require_auth="md5")

    assert messages_after([WIRE_MD5], client) in ([b"p"], [b"p", b"X"])


# -- against the test cluster ------------------------------------------------------

GOOD = [
    ("scram_user", "scram-sha-256"),
    ("md5_user", "md5,scram-sha-256"),
    ("scram_user", "md5,scram-sha-256"),
    ("password_user", "!md5"),
    ("md5_user", "!password"),
    ("trust_user", "none"),
    ("trust_user", "!password"),
    ("trust_user", "scram-sha-256,none"),
]


@pytest.mark.parametrize(("role", "require_auth"), GOOD)
def test_real_server_allowed(cluster: Cluster, role: str, require_auth: str) -> None:
    with role_session(cluster, role, require_auth=require_auth) as session:
        assert session.query("SELECT current_user") == [(role,)]


BAD = [
    ("md5_user", "scram-sha-256", "server requested a hashed password"),
    ("password_user", "!password", "server requested a cleartext password"),
    ("password_user", "md5,scram-sha-256", "server requested a cleartext password"),
    ("scram_user", "md5", "server requested SASL authentication"),
    ("scram_user", "none", "server requested SASL authentication"),
    ("trust_user", "scram-sha-256", "server did not complete authentication"),
    ("trust_user", "!none", "server did not complete authentication"),
]


@pytest.mark.parametrize(("role", "require_auth", "reason"), BAD)
def test_real_server_refused(cluster: Cluster, role: str, require_auth: str, reason: str) -> None:
    error, sent = role_refused(cluster, role, require_auth=require_auth)
    assert str(error) == requirement_failed(require_auth, reason)
    assert sent[1:] == []  # nothing after the startup message


def test_real_server_scram_over_tls(cluster: Cluster, home: Path) -> None:
    # SCRAM-SHA-256-PLUS counts as scram-sha-256
    with role_session(
        cluster,
        "scram_user",
        verify_full(cluster),
        require_auth="scram-sha-256",
        channel_binding="require",
    ) as session:
        assert session.query("SELECT current_user") == [("scram_user",)]


# -- through the client ------------------------------------------------------------


@pytest.mark.parametrize(("role", "require_auth"), GOOD)
def test_client_allowed(cluster: Cluster, role: str, require_auth: str) -> None:
    with connect_raw(
        **cluster.dsn_kwargs(role, sslmode="disable", require_auth=require_auth)
    ) as conn:
        assert conn.execute("SELECT current_user") == [(role,)]


@pytest.mark.parametrize(("role", "require_auth", "reason"), BAD)
def test_client_refused(cluster: Cluster, role: str, require_auth: str, reason: str) -> None:
    with pytest.raises(OperationalError) as info:
        connect_raw(**cluster.dsn_kwargs(role, sslmode="disable", require_auth=require_auth))
    assert requirement_failed(require_auth, reason) in str(info.value)


@pytest.mark.parametrize(("require_auth", "request_"), FAKE_CASES)
def test_client_sends_no_password(require_auth: str, request_: Tuple[int, bytes]) -> None:
    assert_client_sends_nothing(request_, "requirement", require_auth=require_auth)
