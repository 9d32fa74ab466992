"""require_auth (libpq 16): which authentication the server may ask for, checked first."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import pytest
from pgcluster import ROLES, Cluster
from scramp import ScramMechanism
from test_auth import sasl_data, sasl_initial
from test_tls import (
    NOTHING_BUT_GOODBYE,
    cluster,
    messages_after,
    open_session,
    pg_session,
    verify_full,
)

from pgwire_pubsub.auth import Authenticator, RequireAuth, parse_require_auth
from pgwire_pubsub.client import connect_raw
from pgwire_pubsub.errors import OperationalError, ProgrammingError, ProtocolViolation
from pgwire_pubsub.protocol import messages as m

__all__ = ["cluster"]  # a fixture, imported for these tests

USER = "alice"
PASSWORD = "correct horse battery"

PASSWORD_REQUEST = m.AuthenticationCleartextPassword()
MD5_REQUEST = m.AuthenticationMD5Password(b"salt")
SASL_REQUEST = m.AuthenticationSASL(("SCRAM-SHA-256",))
GSS_REQUEST = m.AuthenticationUnsupported(7)
SSPI_REQUEST = m.AuthenticationUnsupported(9)
OK = m.AuthenticationOk()


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
    with pytest.raises(OperationalError) as info:
        auth.respond(request)
    assert str(info.value) == (
        f'authentication method requirement "{require_auth}" failed: {reason}'
    )
    assert not isinstance(info.value, ProtocolViolation)
    assert PASSWORD not in str(info.value)
    assert auth.method is None  # refused before the password was looked at


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


def scram_server() -> Any:
    mechanism = ScramMechanism("SCRAM-SHA-256")
    auth_info = mechanism.make_auth_info(PASSWORD, iteration_count=4096)
    return mechanism.make_server(lambda username: auth_info)


def scram_until(auth: Authenticator, final: bool) -> None:
    """Run SCRAM against scramp's server, up to (and, with ``final``, through) SASLFinal."""
    server = scram_server()
    answer = auth.respond(SASL_REQUEST)
    assert answer is not None
    server.set_client_first(sasl_initial(answer)[1].decode())
    answer = auth.respond(m.AuthenticationSASLContinue(server.get_server_first().encode()))
    assert answer is not None
    server.set_client_final(sasl_data(answer).decode())
    if final:
        auth.respond(m.AuthenticationSASLFinal(server.get_server_final().encode()))


@pytest.mark.parametrize("require_auth", ["scram-sha-256", "!none", "!password"])
def test_ok_after_a_completed_scram_exchange(require_auth: str) -> None:
    auth = Authenticator(USER, PASSWORD, require_auth=require_auth)
    scram_until(auth, final=True)
    assert auth.respond(OK) is None


def test_ok_in_the_middle_of_scram_did_not_complete_authentication() -> None:
    auth = Authenticator(USER, PASSWORD, require_auth="scram-sha-256")
    scram_until(auth, final=False)
    with pytest.raises(OperationalError, match="server did not complete authentication"):
        auth.respond(OK)


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


def driver_refuses(require_auth: str) -> Callable[[str, int], None]:
    def client(host: str, port: int) -> None:
        session = open_session(host, port)
        with session, pytest.raises(OperationalError, match="requirement") as info:
            session.login("u", "secret password", require_auth=require_auth)
        assert "secret password" not in str(info.value)
        assert session.sent[1:] == []  # the startup message only

    return client


FAKE_CASES = [
    ("scram-sha-256", (5, b"salt")),
    ("scram-sha-256", (3, b"")),
    ("!password", (3, b"")),
    ("md5", (10, b"SCRAM-SHA-256\0\0")),
    ("md5", (0, b"")),
]


@pytest.mark.parametrize(("require_auth", "request_"), FAKE_CASES)
def test_no_password_message_reaches_the_server(
    require_auth: str, request_: Tuple[int, bytes]
) -> None:
    received = messages_after([request_], driver_refuses(require_auth))
    assert received in NOTHING_BUT_GOODBYE


def test_the_fake_server_does_see_an_allowed_password() -> None:
    # The counterpart, so the test above would notice a password message.
    def client(host: str, port: int) -> None:
        session = open_session(host, port)
        with session, pytest.raises(OperationalError, match="password authentication failed"):
            session.login("u", "secret password", require_auth="md5")

    assert messages_after([(5, b"salt")], client) in ([b"p"], [b"p", b"X"])


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
    with pg_session(cluster) as session:
        session.login(role, ROLES[role], require_auth=require_auth)
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
    session = pg_session(cluster)
    expected = f'authentication method requirement "{require_auth}" failed: {reason}'
    with session, pytest.raises(OperationalError) as info:
        session.login(role, ROLES[role], require_auth=require_auth)
    assert str(info.value) == expected
    assert session.sent[1:] == []  # nothing after the startup message


def test_real_server_scram_over_tls(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # SCRAM-SHA-256-PLUS counts as scram-sha-256
    with pg_session(cluster, verify_full(cluster)) as session:
        session.login(
            "scram_user",
            ROLES["scram_user"],
            require_auth="scram-sha-256",
            channel_binding="require",
        )
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
    assert f'authentication method requirement "{require_auth}" failed: {reason}' in str(info.value)


@pytest.mark.parametrize(("require_auth", "request_"), FAKE_CASES)
def test_client_sends_no_password(require_auth: str, request_: Tuple[int, bytes]) -> None:
    def client(host: str, port: int) -> None:
        with pytest.raises(OperationalError, match="requirement") as info:
            connect_raw(
                host=host,
                port=port,
                user="u",
                password="secret password",
                dbname="d",
                sslmode="disable",
                require_auth=require_auth,
            )
        assert "secret password" not in str(info.value)

    assert messages_after([request_], client) in NOTHING_BUT_GOODBYE
