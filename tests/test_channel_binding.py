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
from typing import Any, Dict, Optional, Tuple

import pytest
import scramp
from authchecks import (
    GSS_REQUEST,
    MD5_REQUEST,
    OK,
    PASSWORD,
    PASSWORD_REQUEST,
    PLUS,
    SASL_REQUEST,
    SCRAM,
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
    sasl_initial,
)
from scramp import ScramException
from test_tls import Certs, certs, cluster, der_of, home, verify_full

from pgwire_pubsub import tls
from pgwire_pubsub._blocking.connection import connect_raw
from pgwire_pubsub.errors import OperationalError, ProgrammingError
from pgwire_pubsub.protocol import messages as m
from pgwire_pubsub.protocol.auth import Authenticator
from pgwire_pubsub.testing.pgcluster import Cluster

# Every test here runs on the blocking and on the asyncio client (see conftest.py).
pytestmark = pytest.mark.usefixtures("on_every_client")

__all__ = ["certs", "cluster", "home"]  # fixtures, imported for these tests

BINDING = ("tls-server-end-point", hashlib.sha256(b"the server certificate").digest())


# -- the mechanism and the gs2 header ----------------------------------------------


@pytest.mark.parametrize(
    ("client", "mechanism", "gs2_header"),
    [
        ({"tls_binding": BINDING}, PLUS, b"p=tls-server-end-point,,n="),
        # The older form, without tls_binding: no binding, and no opinion about PLUS without TLS.
        ({}, SCRAM, b"n,,"),
    ],
    ids=["over-tls", "two-argument-form"],
)
def test_mechanism_picked_when_plus_is_offered(
    client: Dict[str, Any], mechanism: str, gs2_header: bytes
) -> None:
    picked, client_first = ScramExchange(**client).start(PLUS, SCRAM)
    assert picked == mechanism
    assert client_first.startswith(gs2_header)


def test_plus_exchange_binds_to_the_certificate_hash() -> None:
    exchange = ScramExchange(server_binding=BINDING, tls_binding=BINDING)
    client_first = exchange.run(PLUS, SCRAM)
    assert client_first.startswith(b"p=tls-server-end-point,,")
    assert exchange.auth.mechanism == PLUS
    assert exchange.auth.channel_bound
    assert exchange.auth.method == "scram-sha-256"


def test_plus_with_other_binding_data_is_refused_by_the_server() -> None:
    # The proof covers the certificate hash: a man in the middle, who shows the client
    # another certificate than the server has, cannot pass the exchange on.
    other = ("tls-server-end-point", hashlib.sha256(b"another certificate").digest())
    exchange = ScramExchange(server_binding=BINDING, tls_binding=other)
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
    ScramExchange(server_binding=scramp_binding(cert), tls_binding=binding).run()


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


@pytest.mark.parametrize(
    ("client", "offered", "gs2_header"),
    [
        # The client could bind but was not offered PLUS: it says so.
        ({"tls_binding": BINDING}, (SCRAM,), b"y,,n="),
        ({"tls_binding": BINDING, "channel_binding": "disable"}, (PLUS, SCRAM), b"n,,n="),
        ({"tls_binding": None}, (SCRAM,), b"n,,n="),
    ],
    ids=["y-plus-not-offered", "n-binding-disabled", "n-without-tls"],
)
def test_scram_without_binding(
    client: Dict[str, Any], offered: Tuple[str, ...], gs2_header: bytes
) -> None:
    exchange = ScramExchange(**client)
    assert exchange.run(*offered).startswith(gs2_header)
    assert exchange.auth.mechanism == SCRAM
    assert not exchange.auth.channel_bound


def test_y_lets_a_binding_server_detect_the_downgrade() -> None:
    # Someone removed PLUS from the server's list: the server, which can bind, refuses "y".
    exchange = ScramExchange(server_binding=BINDING, tls_binding=BINDING)
    _, client_first = exchange.start(SCRAM)
    assert client_first.startswith(b"y,,")
    with pytest.raises(ScramException):
        exchange.server.set_client_first(client_first.decode())


def test_plus_offered_without_tls_is_refused() -> None:
    # Something between client and server removed TLS: libpq refuses to go on.
    auth = Authenticator(USER, PASSWORD, tls_binding=None)
    with pytest.raises(
        OperationalError, match="SCRAM-SHA-256-PLUS authentication over a non-SSL connection"
    ):
        auth.respond(m.AuthenticationSASL((PLUS, SCRAM)))


def test_plus_only_with_binding_disabled() -> None:
    auth = Authenticator(USER, PASSWORD, tls_binding=BINDING, channel_binding="disable")
    with pytest.raises(OperationalError, match=PLUS):
        auth.respond(m.AuthenticationSASL((PLUS,)))


def test_forged_signature_is_still_caught_with_plus() -> None:
    exchange = ScramExchange(server_binding=BINDING, tls_binding=BINDING)
    exchange.to_server_final()
    forged = b"v=" + base64.b64encode(b"\x00" * 32)
    with pytest.raises(OperationalError, match="signature"):
        exchange.auth.respond(m.AuthenticationSASLFinal(forged))
    assert not exchange.auth.channel_bound
    with pytest.raises(OperationalError):
        exchange.auth.respond(OK)


# -- channel_binding=require -----------------------------------------------------------


def require(**kwargs: Any) -> Authenticator:
    kwargs.setdefault("tls_binding", BINDING)
    return Authenticator(USER, PASSWORD, channel_binding="require", **kwargs)


def test_require_completes_with_plus() -> None:
    exchange = ScramExchange(server_binding=BINDING, tls_binding=BINDING, channel_binding="require")
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
        auth.respond(SASL_REQUEST)


def test_require_without_plus_on_offer() -> None:
    with pytest.raises(
        OperationalError,
        match="channel binding is required, but server did "
        "not offer an authentication method that "
        "supports channel binding",
    ):
        require().respond(SASL_REQUEST)


@pytest.mark.parametrize(
    "message", [PASSWORD_REQUEST, MD5_REQUEST, GSS_REQUEST], ids=["password", "md5", "gss"]
)
def test_require_refuses_other_methods_before_the_password(message: m.BackendMessage) -> None:
    refused_before_the_password(
        require(),
        message,
        match="channel binding required but not supported by server's authentication request",
    )


@pytest.mark.parametrize("binding", [BINDING, None])
def test_require_refuses_no_authentication(binding: Optional[Tuple[str, bytes]]) -> None:
    with pytest.raises(
        OperationalError,
        match="channel binding required, but server authenticated client without channel binding",
    ):
        require(tls_binding=binding).respond(OK)


def test_require_refuses_ok_in_the_middle_of_plus() -> None:
    auth = require()
    auth.respond(m.AuthenticationSASL((PLUS, SCRAM)))
    with pytest.raises(OperationalError, match="without channel binding"):
        auth.respond(OK)


@pytest.mark.parametrize("mode", ["disable", "prefer"])
def test_other_modes_accept_what_the_server_chooses(mode: str) -> None:
    for message in (PASSWORD_REQUEST, MD5_REQUEST):
        auth = Authenticator(USER, PASSWORD, channel_binding=mode, tls_binding=BINDING)
        assert auth.respond(message) is not None
    assert Authenticator(USER, None, channel_binding=mode, tls_binding=BINDING).respond(OK) is None


@pytest.mark.parametrize("mode", ["", "required", "Prefer", "allow"])
def test_invalid_channel_binding(mode: str) -> None:
    with pytest.raises(ProgrammingError, match=f'invalid channel_binding value: "{mode}"'):
        Authenticator(USER, PASSWORD, channel_binding=mode)


# -- against a fake server: what reaches it ----------------------------------------

REQUESTS = [WIRE_PASSWORD, WIRE_MD5, WIRE_SASL, WIRE_OK]
REQUEST_IDS = ["password", "md5", "sasl", "trust"]


@pytest.mark.parametrize("request_", REQUESTS, ids=REQUEST_IDS)
def test_require_over_plain_sends_nothing(request_: Tuple[int, bytes]) -> None:
    assert_driver_sends_nothing(request_, "channel binding required", channel_binding="require")


# -- against the test cluster ------------------------------------------------------


def test_real_server_uses_plus_over_tls_by_default(cluster: Cluster, home: Path) -> None:
    with role_session(cluster, "scram_user", verify_full(cluster)) as session:
        assert session.auth is not None
        assert session.auth.mechanism == PLUS and session.auth.channel_bound
        assert session.query("SELECT current_user") == [("scram_user",)]
        # after the startup message: the SASLInitialResponse
        mechanism, client_first = sasl_initial(session.sent[1])
        assert mechanism == PLUS
        assert client_first.startswith(b"p=tls-server-end-point,,")


def test_real_server_accepts_require_over_tls(cluster: Cluster, home: Path) -> None:
    context = tls.make_context("require")  # no verification: binding authenticates the server
    with role_session(cluster, "scram_user", context, channel_binding="require") as session:
        assert session.query("SELECT current_user") == [("scram_user",)]


def test_real_server_accepts_disable_over_tls(cluster: Cluster, home: Path) -> None:
    context = verify_full(cluster)
    with role_session(cluster, "scram_user", context, channel_binding="disable") as session:
        assert session.auth is not None and session.auth.mechanism == SCRAM
        assert sasl_initial(session.sent[1])[1].startswith(b"n,,")


def test_real_server_refuses_a_wrong_binding(cluster: Cluster, home: Path) -> None:
    error, _ = role_refused(cluster, "scram_user", verify_full(cluster), tls_binding=BINDING)
    assert error.sqlstate is not None  # the server's verdict
    assert "channel binding" in str(error)


def test_real_server_require_over_plain(cluster: Cluster) -> None:
    refused = "channel binding required, but SSL not in use"
    _, sent = role_refused(cluster, "scram_user", match=refused, channel_binding="require")
    assert len(sent) == 1  # the startup message, and nothing after


@pytest.mark.parametrize(
    ("role", "words"),
    [
        ("md5_user", "channel binding required but not supported by server's authentication"),
        ("password_user", "channel binding required but not supported by server's authentication"),
        ("trust_user", "server authenticated client without channel binding"),
    ],
)
def test_real_server_require_refuses_methods_without_binding(
    cluster: Cluster, home: Path, role: str, words: str
) -> None:
    context = verify_full(cluster)
    _, sent = role_refused(cluster, role, context, match=words, channel_binding="require")
    assert len(sent) == 1


# -- through the client ------------------------------------------------------------


def test_client_channel_binding_require(cluster: Cluster, home: Path) -> None:
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
    assert_client_sends_nothing(request_, "channel binding required", channel_binding="require")


def test_the_password_stays_secret_with_binding_and_requirements() -> None:
    exchange = ScramExchange(
        server_binding=BINDING,
        tls_binding=BINDING,
        channel_binding="require",
        require_auth="scram-sha-256",
    )
    texts = [repr(exchange.auth), str(exchange.auth)]
    exchange.run(PLUS, SCRAM)
    texts += [repr(exchange.auth), str(exchange.auth)]
    for request in (MD5_REQUEST, OK):
        auth = Authenticator(
            USER, PASSWORD, channel_binding="require", tls_binding=BINDING, require_auth="md5"
        )
        with pytest.raises(OperationalError) as info:
            auth.respond(request)
        texts += [str(info.value), repr(auth)]
    for text in texts:
        assert "correct horse" not in text
    assert USER in texts[0] and "require" in texts[0]
