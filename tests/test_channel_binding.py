"""SCRAM-SHA-256-PLUS and channel_binding, against scramp's server side and a real server.

What libpq does: over TLS, with the server offering SCRAM-SHA-256-PLUS, bind to
the server certificate (``p=tls-server-end-point``); ``channel_binding=require``
refuses anything else before the password is used; a client that could bind but
was not offered PLUS says so (``y``), so that a server that does support binding
detects the downgrade.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import pytest
import scramp
from pgcluster import ROLES, Cluster
from scramp import ScramException, ScramMechanism
from test_auth import sasl_data, sasl_initial
from test_tls import (
    NOTHING_BUT_GOODBYE,
    Certs,
    Session,
    certs,
    cluster,
    der_of,
    messages_after,
    open_session,
    pg_session,
    verify_full,
)

from pgwire_pubsub import tls
from pgwire_pubsub.auth import Authenticator
from pgwire_pubsub.client import connect_raw
from pgwire_pubsub.errors import OperationalError, ProgrammingError, ProtocolViolation
from pgwire_pubsub.protocol import messages as m

__all__ = ["certs", "cluster"]  # fixtures, imported for these tests

USER = "alice"
PASSWORD = "correct horse battery"
BINDING = ("tls-server-end-point", hashlib.sha256(b"the server certificate").digest())
PLUS = "SCRAM-SHA-256-PLUS"
SCRAM = "SCRAM-SHA-256"


class Exchange:
    """A client Authenticator against scramp's server (PLUS when it has binding data)."""

    def __init__(
        self,
        server_binding: Optional[Tuple[str, Any]] = None,
        client_password: str = PASSWORD,
        **client: Any,
    ) -> None:
        mechanism = ScramMechanism(PLUS if server_binding is not None else SCRAM)
        auth_info = mechanism.make_auth_info(PASSWORD, iteration_count=4096)
        self.server = mechanism.make_server(
            lambda username: auth_info, channel_binding=server_binding
        )
        self.auth = Authenticator(USER, client_password, **client)

    def start(self, *mechanisms: str) -> Tuple[str, bytes]:
        answer = self.auth.respond(m.AuthenticationSASL(mechanisms or (PLUS, SCRAM)))
        assert answer is not None
        return sasl_initial(answer)

    def run(self, *mechanisms: str) -> bytes:
        """The whole exchange; returns the client-first message."""
        _, client_first = self.start(*mechanisms)
        self.server.set_client_first(client_first.decode())
        answer = self.auth.respond(
            m.AuthenticationSASLContinue(self.server.get_server_first().encode())
        )
        assert answer is not None
        self.server.set_client_final(sasl_data(answer).decode())
        final = self.server.get_server_final().encode()
        assert self.auth.respond(m.AuthenticationSASLFinal(final)) is None
        assert self.auth.respond(m.AuthenticationOk()) is None
        return client_first


# -- the mechanism and the gs2 header ----------------------------------------------


def test_plus_is_chosen_over_tls() -> None:
    mechanism, client_first = Exchange(tls_binding=BINDING).start(PLUS, SCRAM)
    assert mechanism == PLUS
    assert client_first.startswith(b"p=tls-server-end-point,,n=")


def test_plus_exchange_binds_to_the_certificate_hash() -> None:
    exchange = Exchange(server_binding=BINDING, tls_binding=BINDING)
    client_first = exchange.run(PLUS, SCRAM)
    assert client_first.startswith(b"p=tls-server-end-point,,")
    assert exchange.auth.mechanism == PLUS
    assert exchange.auth.channel_bound
    assert exchange.auth.method == "scram-sha-256"


def test_plus_with_other_binding_data_is_refused_by_the_server() -> None:
    # The proof covers the certificate hash: a man in the middle, who shows the client
    # another certificate than the server has, cannot pass the exchange on.
    other = ("tls-server-end-point", hashlib.sha256(b"another certificate").digest())
    exchange = Exchange(server_binding=BINDING, tls_binding=other)
    with pytest.raises(ScramException):
        exchange.run(PLUS, SCRAM)


def scramp_binding(cert_file: str) -> Tuple[str, Any]:
    """scramp's own tls-server-end-point binding for a certificate, for its server side."""
    make = getattr(scramp, "make_channel_binding", None)
    if make is not None:  # scramp 1.4: from a socket's peer certificate

        class Peer:
            def getpeercert(self, binary_form: bool = False) -> bytes:
                return der_of(cert_file)

        return make("tls-server-end-point", Peer())  # type: ignore[no-any-return]
    with open(cert_file) as f:  # scramp 1.5: from the PEM certificate
        return "tls-server-end-point", f.read()


@pytest.mark.parametrize(
    ("key", "digest"),
    [
        ("ec", "sha256"),
        ("ec", "sha384"),
        ("rsa", "sha512"),
        ("ec", "sha1"),
        ("rsa", "sha1"),
        ("rsa-pss", "sha384"),
    ],
)
def test_binding_data_is_what_scramp_computes_from_the_certificate(
    certs: Certs, key: str, digest: str
) -> None:
    cert, _ = certs.make(subject=f"/CN={key}-{digest}", key=key, digest=digest)
    binding = ("tls-server-end-point", tls.certificate_hash(der_of(cert)))
    Exchange(server_binding=scramp_binding(cert), tls_binding=binding).run()


@pytest.mark.parametrize(
    ("key", "digest", "expected"),
    [
        ("ec", "sha256", "sha256"),
        ("ec", "sha384", "sha384"),
        ("ec", "sha512", "sha512"),
        ("rsa", "sha256", "sha256"),
        ("rsa-pss", "sha384", "sha384"),
        # RFC 5929: MD5 and SHA-1 are replaced by SHA-256.
        ("ec", "sha1", "sha256"),
        ("rsa", "sha1", "sha256"),
    ],
)
def test_certificate_hash_follows_the_signature_algorithm(
    certs: Certs, key: str, digest: str, expected: str
) -> None:
    der = certs.der(subject=f"/CN={key}-{digest}", key=key, digest=digest)
    assert tls.certificate_hash(der) == hashlib.new(expected, der).digest()


def test_certificate_hash_of_garbage() -> None:
    with pytest.raises(OperationalError, match="signature algorithm"):
        tls.certificate_hash(b"\x30\x03\x02\x01\x00")


def test_y_when_the_server_does_not_offer_plus() -> None:
    exchange = Exchange(tls_binding=BINDING)
    client_first = exchange.run(SCRAM)
    assert client_first.startswith(b"y,,n=")
    assert exchange.auth.mechanism == SCRAM
    assert not exchange.auth.channel_bound


def test_y_lets_a_binding_server_detect_the_downgrade() -> None:
    # Someone removed PLUS from the server's list: the server, which can bind, refuses "y".
    exchange = Exchange(server_binding=BINDING, tls_binding=BINDING)
    _, client_first = exchange.start(SCRAM)
    assert client_first.startswith(b"y,,")
    with pytest.raises(ScramException):
        exchange.server.set_client_first(client_first.decode())


def test_n_when_binding_is_disabled() -> None:
    exchange = Exchange(tls_binding=BINDING, channel_binding="disable")
    client_first = exchange.run(PLUS, SCRAM)
    assert client_first.startswith(b"n,,n=")
    assert exchange.auth.mechanism == SCRAM
    assert not exchange.auth.channel_bound


def test_n_without_tls() -> None:
    exchange = Exchange(tls_binding=None)
    assert exchange.run(SCRAM).startswith(b"n,,n=")


def test_plus_offered_without_tls_is_refused() -> None:
    # Something between client and server removed TLS: libpq refuses to go on.
    auth = Authenticator(USER, PASSWORD, tls_binding=None)
    with pytest.raises(
        OperationalError, match="SCRAM-SHA-256-PLUS authentication over a non-SSL connection"
    ):
        auth.respond(m.AuthenticationSASL((PLUS, SCRAM)))


def test_the_two_argument_form_does_not_know_about_tls() -> None:
    # The older form: no binding, and no opinion about PLUS without TLS.
    mechanism, client_first = Exchange().start(PLUS, SCRAM)
    assert mechanism == SCRAM
    assert client_first.startswith(b"n,,")


def test_plus_only_with_binding_disabled() -> None:
    auth = Authenticator(USER, PASSWORD, tls_binding=BINDING, channel_binding="disable")
    with pytest.raises(OperationalError, match=PLUS):
        auth.respond(m.AuthenticationSASL((PLUS,)))


def test_forged_signature_is_still_caught_with_plus() -> None:
    exchange = Exchange(server_binding=BINDING, tls_binding=BINDING)
    _, client_first = exchange.start()
    exchange.server.set_client_first(client_first.decode())
    answer = exchange.auth.respond(
        m.AuthenticationSASLContinue(exchange.server.get_server_first().encode())
    )
    assert answer is not None
    forged = b"v=" + base64.b64encode(b"\x00" * 32)
    with pytest.raises(OperationalError, match="signature"):
        exchange.auth.respond(m.AuthenticationSASLFinal(forged))
    assert not exchange.auth.channel_bound
    with pytest.raises(OperationalError):
        exchange.auth.respond(m.AuthenticationOk())


# -- channel_binding=require -----------------------------------------------------------


def require(**kwargs: Any) -> Authenticator:
    kwargs.setdefault("tls_binding", BINDING)
    return Authenticator(USER, PASSWORD, channel_binding="require", **kwargs)


def test_require_completes_with_plus() -> None:
    exchange = Exchange(server_binding=BINDING, tls_binding=BINDING, channel_binding="require")
    exchange.run(PLUS, SCRAM)
    assert exchange.auth.channel_bound


@pytest.mark.parametrize("known", [True, False], ids=["no-tls", "tls-unknown"])
def test_require_without_tls(known: bool) -> None:
    auth = (
        require(tls_binding=None)
        if known
        else Authenticator(USER, PASSWORD, channel_binding="require")
    )
    with pytest.raises(OperationalError, match="channel binding required, but SSL not in use"):
        auth.respond(m.AuthenticationSASL((SCRAM,)))


def test_require_without_plus_on_offer() -> None:
    with pytest.raises(
        OperationalError,
        match="channel binding is required, but server did "
        "not offer an authentication method that "
        "supports channel binding",
    ):
        require().respond(m.AuthenticationSASL((SCRAM,)))


@pytest.mark.parametrize(
    "message",
    [
        m.AuthenticationCleartextPassword(),
        m.AuthenticationMD5Password(b"salt"),
        m.AuthenticationUnsupported(7),
    ],
    ids=["password", "md5", "gss"],
)
def test_require_refuses_other_methods_before_the_password(message: m.BackendMessage) -> None:
    auth = require()
    with pytest.raises(
        OperationalError,
        match="channel binding required but not supported by server's authentication request",
    ) as info:
        auth.respond(message)
    assert not isinstance(info.value, ProtocolViolation)
    assert auth.method is None  # the password was not even looked at


@pytest.mark.parametrize("binding", [BINDING, None])
def test_require_refuses_no_authentication(binding: Optional[Tuple[str, bytes]]) -> None:
    with pytest.raises(
        OperationalError,
        match="channel binding required, but server authenticated client without channel binding",
    ):
        require(tls_binding=binding).respond(m.AuthenticationOk())


def test_require_refuses_ok_in_the_middle_of_plus() -> None:
    auth = require()
    auth.respond(m.AuthenticationSASL((PLUS, SCRAM)))
    with pytest.raises(OperationalError, match="without channel binding"):
        auth.respond(m.AuthenticationOk())


@pytest.mark.parametrize("mode", ["disable", "prefer"])
def test_other_modes_accept_what_the_server_chooses(mode: str) -> None:
    for message in (m.AuthenticationCleartextPassword(), m.AuthenticationMD5Password(b"salt")):
        auth = Authenticator(USER, PASSWORD, channel_binding=mode, tls_binding=BINDING)
        assert auth.respond(message) is not None
    assert (
        Authenticator(USER, None, channel_binding=mode, tls_binding=BINDING).respond(
            m.AuthenticationOk()
        )
        is None
    )


@pytest.mark.parametrize("mode", ["", "required", "Prefer", "allow"])
def test_invalid_channel_binding(mode: str) -> None:
    with pytest.raises(ProgrammingError, match=f'invalid channel_binding value: "{mode}"'):
        Authenticator(USER, PASSWORD, channel_binding=mode)


# -- against a fake server: what reaches it ----------------------------------------


def driver_refuses(**auth: Any) -> Callable[[str, int], None]:
    def client(host: str, port: int) -> None:
        session = open_session(host, port)
        with session, pytest.raises(OperationalError) as info:
            session.login("u", "secret password", **auth)
        assert "secret password" not in str(info.value)
        assert "channel binding required" in str(info.value)
        assert session.sent[1:] == []  # the startup message only

    return client


SASL = (10, b"SCRAM-SHA-256\0\0")
REQUESTS = [(3, b""), (5, b"salt"), SASL, (0, b"")]
REQUEST_IDS = ["password", "md5", "sasl", "trust"]


@pytest.mark.parametrize("request_", REQUESTS, ids=REQUEST_IDS)
def test_require_over_plain_sends_nothing(request_: Tuple[int, bytes]) -> None:
    received = messages_after([request_], driver_refuses(channel_binding="require"))
    assert received in NOTHING_BUT_GOODBYE


# -- against the test cluster ------------------------------------------------------


def scram_session(cluster: Cluster, context: Any = None, **auth: Any) -> Session:
    session = pg_session(cluster, context)
    try:
        session.login("scram_user", ROLES["scram_user"], **auth)
    except BaseException:
        session.close()
        raise
    return session


def test_real_server_uses_plus_over_tls_by_default(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with scram_session(cluster, verify_full(cluster)) as session:
        assert session.auth is not None
        assert session.auth.mechanism == PLUS and session.auth.channel_bound
        assert session.query("SELECT current_user") == [("scram_user",)]
        first = session.sent[1]  # after the startup message: the SASLInitialResponse
        assert sasl_initial(first) == (PLUS, sasl_initial(first)[1])
        assert sasl_initial(first)[1].startswith(b"p=tls-server-end-point,,")


def test_real_server_accepts_require_over_tls(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    context = tls.make_context("require")  # no verification: binding authenticates the server
    with scram_session(cluster, context, channel_binding="require") as session:
        assert session.query("SELECT current_user") == [("scram_user",)]


def test_real_server_accepts_disable_over_tls(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with scram_session(cluster, verify_full(cluster), channel_binding="disable") as session:
        assert session.auth is not None and session.auth.mechanism == SCRAM
        assert sasl_initial(session.sent[1])[1].startswith(b"n,,")


def test_real_server_refuses_a_wrong_binding(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    session = pg_session(cluster, verify_full(cluster))
    with session, pytest.raises(OperationalError) as info:
        session.login("scram_user", ROLES["scram_user"], tls_binding=BINDING)
    assert info.value.sqlstate is not None  # the server's verdict
    assert "channel binding" in str(info.value)


def test_real_server_require_over_plain(cluster: Cluster) -> None:
    session = pg_session(cluster)
    refused = "channel binding required, but SSL not in use"
    with session, pytest.raises(OperationalError, match=refused):
        session.login("scram_user", ROLES["scram_user"], channel_binding="require")
    assert len(session.sent) == 1  # the startup message, and nothing after


@pytest.mark.parametrize(
    ("role", "words"),
    [
        ("md5_user", "channel binding required but not supported by server's authentication"),
        ("password_user", "channel binding required but not supported by server's authentication"),
        ("trust_user", "server authenticated client without channel binding"),
    ],
)
def test_real_server_require_refuses_methods_without_binding(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: str, words: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    session = pg_session(cluster, verify_full(cluster))
    with session, pytest.raises(OperationalError, match=words):
        session.login(role, ROLES[role], channel_binding="require")
    assert len(session.sent) == 1


# -- through the client ------------------------------------------------------------


def test_client_channel_binding_require(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    kwargs = cluster.dsn_kwargs("scram_user", sslmode="require", channel_binding="require")
    with connect_raw(**kwargs) as conn:
        assert conn.execute("SELECT current_user") == [("scram_user",)]
    kwargs["sslmode"] = "disable"
    with pytest.raises(OperationalError, match="channel binding required, but SSL not in use"):
        connect_raw(**kwargs)
    for role in ("md5_user", "password_user", "trust_user"):
        with pytest.raises(OperationalError, match="channel binding required"):
            connect_raw(**cluster.dsn_kwargs(role, sslmode="require", channel_binding="require"))


@pytest.mark.parametrize("request_", REQUESTS, ids=REQUEST_IDS)
def test_client_channel_binding_require_sends_no_password(request_: Tuple[int, bytes]) -> None:
    def client(host: str, port: int) -> None:
        with pytest.raises(OperationalError, match="channel binding required") as info:
            connect_raw(
                host=host,
                port=port,
                user="u",
                password="secret password",
                dbname="d",
                sslmode="disable",
                channel_binding="require",
            )
        assert "secret password" not in str(info.value)

    assert messages_after([request_], client) in NOTHING_BUT_GOODBYE


def test_the_password_stays_secret_with_binding_and_requirements() -> None:
    exchange = Exchange(
        server_binding=BINDING,
        tls_binding=BINDING,
        channel_binding="require",
        require_auth="scram-sha-256",
    )
    texts = [repr(exchange.auth), str(exchange.auth)]
    exchange.run(PLUS, SCRAM)
    texts += [repr(exchange.auth), str(exchange.auth)]
    for request in (m.AuthenticationMD5Password(b"salt"), m.AuthenticationOk()):
        auth = Authenticator(
            USER, PASSWORD, channel_binding="require", tls_binding=BINDING, require_auth="md5"
        )
        with pytest.raises(OperationalError) as info:
            auth.respond(request)
        texts += [str(info.value), repr(auth)]
    for text in texts:
        assert "correct horse" not in text
    assert USER in texts[0] and "require" in texts[0]
