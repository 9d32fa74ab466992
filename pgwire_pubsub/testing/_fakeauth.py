"""The fake backend's side of authentication: trust, password, md5 and SCRAM-SHA-256.

SCRAM's server side is scramp's (an implementation independent of this
client's), installed with the ``testing`` extra.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..protocol import frontend_messages as f
from ..protocol import messages as m
from ..protocol.auth import md5_password

if TYPE_CHECKING:
    from .fakeconn import FakeConn

METHODS = ("trust", "password", "md5", "scram-sha-256")
SCRAM = "SCRAM-SHA-256"


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"auth is {method!r}; the fake backend speaks {', '.join(METHODS)}")
    if method == "scram-sha-256":
        _scramp()  # fail now, not in the connection's thread
    return method


def authenticate(conn: FakeConn, user: str) -> bool:
    """Run the backend's method with the client; True once AuthenticationOk is sent."""
    server = conn.server
    if not server.rejecting_authentication:
        method, password = server.auth, server.password or ""
        if method == "trust":
            ok = True
        elif method == "password":
            conn.send_messages(m.AuthenticationCleartextPassword())
            ok = _password(conn) == password.encode("utf-8")
        elif method == "md5":
            salt = os.urandom(4)
            conn.send_messages(m.AuthenticationMD5Password(salt))
            ok = _password(conn) == md5_password(server.user, password, salt)
        else:
            ok = _scram(conn, password)
        if ok and (method == "trust" or user == server.user):
            conn.send_messages(m.AuthenticationOk())
            return True
    conn.fatal("28P01", f'password authentication failed for user "{user}"')
    return False


def _password(conn: FakeConn) -> bytes:
    message = conn.receive(f.PasswordMessage)
    if not isinstance(message, f.PasswordMessage):
        raise AssertionError(f"expected a PasswordMessage, got {message!r}")
    return message.password


def _scramp() -> Any:
    try:
        import scramp
    except ImportError:
        raise RuntimeError("the fake backend's SCRAM-SHA-256 needs scramp: "
                           "pip install 'pgwire-pubsub[testing]'") from None
    return scramp


def _scram(conn: FakeConn, password: str) -> bool:
    scramp = _scramp()
    mechanism = scramp.ScramMechanism(SCRAM)
    auth_info = mechanism.make_auth_info(password, iteration_count=4096)
    server = mechanism.make_server(lambda username: auth_info)
    conn.send_messages(m.AuthenticationSASL((SCRAM,)))
    first = conn.receive(f.SASLInitialResponse)
    if not isinstance(first, f.SASLInitialResponse) or first.mechanism != SCRAM:
        return False
    try:
        _set_client_first(server, (first.data or b"").decode("utf-8"), conn.server.user)
        conn.send_messages(m.AuthenticationSASLContinue(server.get_server_first().encode()))
        final = conn.receive(f.SASLResponse)
        if not isinstance(final, f.SASLResponse):
            return False
        server.set_client_final(final.data.decode("utf-8"))
    except (scramp.ScramException, UnicodeDecodeError, ValueError):
        return False
    conn.send_messages(m.AuthenticationSASLFinal(server.get_server_final().encode()))
    return True


def _set_client_first(server: Any, client_first: str, user: str) -> None:
    """Hand scramp the client-first-message.  libpq leaves its user name empty (PostgreSQL
    takes the user from the startup message), which scramp refuses: it gets the message
    with the startup user in, and then the bare message as sent, which the proof covers."""
    header_end = client_first.index(",", client_first.index(",") + 1) + 1
    bare = client_first[header_end:]
    if not bare.startswith("n=,"):
        server.set_client_first(client_first)
        return
    name = (user or "*").replace("=", "=3D").replace(",", "=2C")
    server.set_client_first(client_first[:header_end] + "n=" + name + bare[2:])
    server.client_first_bare = bare
