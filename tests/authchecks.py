"""What the authentication tests share (test_auth, test_channel_binding, test_require_auth).

The channel_binding and require_auth settings make the client refuse some
authentication requests before the password is used. Both test files check that
one request at a time: on the Authenticator, against a fake server (through the
test's own driver and through ``connect_raw``), and against the test cluster's
roles, which have one pg_hba method each (trust_user, password_user, md5_user,
scram_user). All three files run SCRAM against scramp's server side.
"""

from __future__ import annotations

import ssl
import struct
from typing import Any, List, Optional, Tuple

import pytest
from scramp import ScramMechanism
from test_tls import NOTHING_BUT_GOODBYE, Session, messages_after, open_session, pg_session

from pgwire_pubsub._blocking.connection import connect_raw
from pgwire_pubsub.errors import OperationalError, ProtocolViolation
from pgwire_pubsub.protocol import messages as m
from pgwire_pubsub.protocol.auth import Authenticator
from pgwire_pubsub.testing.pgcluster import ROLES, Cluster

USER = "alice"
PASSWORD = "correct horse battery"
PLUS = "SCRAM-SHA-256-PLUS"
SCRAM = "SCRAM-SHA-256"

# Authentication requests as the Authenticator receives them...
PASSWORD_REQUEST = m.AuthenticationCleartextPassword()
MD5_REQUEST = m.AuthenticationMD5Password(b"salt")
SASL_REQUEST = m.AuthenticationSASL((SCRAM,))
GSS_REQUEST = m.AuthenticationUnsupported(7)
SSPI_REQUEST = m.AuthenticationUnsupported(9)
OK = m.AuthenticationOk()

# ...and as a fake server sends them: (request code, data).
WIRE_PASSWORD = (3, b"")
WIRE_MD5 = (5, b"salt")
WIRE_SASL = (10, b"SCRAM-SHA-256\0\0")
WIRE_OK = (0, b"")


# -- SASL messages as the client sends them ------------------------------------------


def sasl_initial(data: bytes) -> Tuple[str, bytes]:
    """Mechanism and data of a SASLInitialResponse, checking its framing."""
    assert data[:1] == b"p"
    assert struct.unpack("!i", data[1:5]) == (len(data) - 1,)
    nul = data.index(b"\0", 5)
    (size,) = struct.unpack("!i", data[nul + 1 : nul + 5])
    payload = data[nul + 5 :]
    assert len(payload) == size
    return data[5:nul].decode(), payload


def sasl_data(data: bytes) -> bytes:
    """The data of a SASLResponse, checking its framing."""
    assert data[:1] == b"p"
    assert struct.unpack("!i", data[1:5]) == (len(data) - 1,)
    return data[5:]


# -- SCRAM against scramp ------------------------------------------------------------


class ScramExchange:
    """A client Authenticator against scramp's server (PLUS when it has binding data).

    The server knows ``password``, which the client also uses unless given
    ``client_password``. Given ``expect_mechanism``, ``start`` checks that the client
    picks it. Other keywords go to the Authenticator.
    """

    def __init__(
        self,
        server_binding: Optional[Tuple[str, Any]] = None,
        *,
        password: str = PASSWORD,
        client_password: Optional[str] = None,
        expect_mechanism: Optional[str] = None,
        **client: Any,
    ) -> None:
        mechanism = ScramMechanism(PLUS if server_binding is not None else SCRAM)
        auth_info = mechanism.make_auth_info(password, iteration_count=4096)
        self.server = mechanism.make_server(
            lambda username: auth_info, channel_binding=server_binding
        )
        self.auth = Authenticator(
            USER, password if client_password is None else client_password, **client
        )
        self.expect_mechanism = expect_mechanism
        self.client_first = b""

    def start(self, *mechanisms: str) -> Tuple[str, bytes]:
        """The mechanism the client picks from those offered (PLUS and SCRAM by default)
        and its client-first message."""
        answer = self.auth.respond(m.AuthenticationSASL(mechanisms or (PLUS, SCRAM)))
        assert answer is not None
        picked, client_first = sasl_initial(answer)
        if self.expect_mechanism is not None:
            assert picked == self.expect_mechanism
        return picked, client_first

    def to_server_final(self, *mechanisms: str) -> bytes:
        """The exchange up to the server's final message, which is returned, not sent."""
        _, self.client_first = self.start(*mechanisms)
        self.server.set_client_first(self.client_first.decode())
        answer = self.auth.respond(
            m.AuthenticationSASLContinue(self.server.get_server_first().encode())
        )
        assert answer is not None
        self.server.set_client_final(sasl_data(answer).decode())
        return self.server.get_server_final().encode()  # type: ignore[no-any-return]

    def run(self, *mechanisms: str) -> bytes:
        """The whole exchange, through AuthenticationOk; returns the client-first message."""
        final = self.to_server_final(*mechanisms)
        assert self.auth.respond(m.AuthenticationSASLFinal(final)) is None
        assert self.auth.respond(OK) is None
        return self.client_first


# -- refusals --------------------------------------------------------------------------


def refused_before_the_password(
    auth: Authenticator, request: m.BackendMessage, match: Optional[str] = None
) -> OperationalError:
    """``auth``'s refusal of ``request``: an OperationalError (``match`` searched in it),
    not a protocol violation, raised before the password was looked at or shown."""
    with pytest.raises(OperationalError, match=match) as info:
        auth.respond(request)
    assert not isinstance(info.value, ProtocolViolation)
    assert PASSWORD not in str(info.value)
    assert auth.method is None
    return info.value


SECRET = "secret password"


def assert_driver_sends_nothing(request: Tuple[int, bytes], match: str, **auth: Any) -> None:
    """A fake server sends ``request``; the test's driver, logging in with ``auth``,
    refuses it (``match``) having sent the startup message only."""

    def client(host: str, port: int) -> None:
        session = open_session(host, port)
        with session, pytest.raises(OperationalError, match=match) as info:
            session.login("u", SECRET, **auth)
        assert SECRET not in str(info.value)
        assert session.sent[1:] == []  # the startup message only

    assert messages_after([request], client) in NOTHING_BUT_GOODBYE


def assert_client_sends_nothing(request: Tuple[int, bytes], match: str, **conninfo: Any) -> None:
    """A fake server sends ``request``; ``connect_raw`` with ``conninfo`` refuses it
    (``match``) and sends nothing more than a Terminate."""

    def client(host: str, port: int) -> None:
        with pytest.raises(OperationalError, match=match) as info:
            connect_raw(
                host=host,
                port=port,
                user="u",
                password=SECRET,
                dbname="d",
                sslmode="disable",
                **conninfo,
            )
        assert SECRET not in str(info.value)

    assert messages_after([request], client) in NOTHING_BUT_GOODBYE


# -- the test cluster's roles ------------------------------------------------------------


def role_session(
    cluster: Cluster, role: str, context: Optional[ssl.SSLContext] = None, **auth: Any
) -> Session:
    """A session to the test cluster logged in as ``role``, with its password."""
    session = pg_session(cluster, context)
    try:
        session.login(role, ROLES[role], **auth)
    except BaseException:
        session.close()
        raise
    return session


def role_refused(
    cluster: Cluster,
    role: str,
    context: Optional[ssl.SSLContext] = None,
    match: Optional[str] = None,
    **auth: Any,
) -> Tuple[OperationalError, List[bytes]]:
    """A login as ``role`` that fails (``match`` searched in the error): the error,
    and the messages the session sent."""
    session = pg_session(cluster, context)
    with session, pytest.raises(OperationalError, match=match) as info:
        session.login(role, ROLES[role], **auth)
    return info.value, session.sent
