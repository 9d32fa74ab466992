"""Typed frontend messages: what a client sends, as a server parses it.

NamedTuples, like the backend messages in ``messages.py``: immutable, equal by
value, with a stable repr (a password never shows in one).  ``codec.build``
turns them into bytes and ``FrontendDecoder`` (or ``codec.parse_frontend``)
turns bytes back into them.

The three messages of type ``p`` (PasswordMessage, SASLInitialResponse,
SASLResponse) look alike on the wire; only the authentication request the
server sent tells them apart, so the parser is told which one to expect.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple, Type, Union

PROTOCOL_3_0 = 3 << 16  # 196608


class StartupMessage(NamedTuple):
    """The session's first message: protocol version and parameters (user, database...)."""

    parameters: Dict[str, str]
    protocol_version: int = PROTOCOL_3_0


class SSLRequest(NamedTuple):
    """Asks the server to switch to TLS before the startup; it answers ``S`` or ``N``."""


class GSSENCRequest(NamedTuple):
    """Asks the server for GSSAPI encryption; it answers ``G`` or ``N``."""


class CancelRequest(NamedTuple):
    """Sent on a new connection to cancel the command in progress of another session."""

    pid: int
    secret_key: bytes  # 4 bytes in protocol 3.0, up to 256 in 3.2


class PasswordMessage(NamedTuple):
    """The password, in clear or md5-hashed; its repr hides it."""

    password: bytes

    def __repr__(self) -> str:
        return f"PasswordMessage(<{len(self.password)} bytes hidden>)"


class SASLInitialResponse(NamedTuple):
    """The chosen SASL mechanism and its first message (None: no initial response)."""

    mechanism: str
    data: Optional[bytes]


class SASLResponse(NamedTuple):
    data: bytes


class Query(NamedTuple):
    """A simple query: one string of SQL, maybe several statements."""

    sql: str


class Parse(NamedTuple):
    statement: str
    sql: str
    type_oids: Tuple[int, ...] = ()


class Bind(NamedTuple):
    """Binds parameter values (None: NULL) to a statement, making a portal.

    A format code is 0 (text) or 1 (binary); none means all text, one applies to all.
    """

    portal: str
    statement: str
    params: Tuple[Optional[bytes], ...] = ()
    param_formats: Tuple[int, ...] = ()
    result_formats: Tuple[int, ...] = ()


class Describe(NamedTuple):
    """Asks for a statement's (``kind`` "S") or a portal's ("P") description."""

    kind: str
    name: str = ""


class Execute(NamedTuple):
    portal: str = ""
    max_rows: int = 0  # 0: all


class Close(NamedTuple):
    """Closes a statement (``kind`` "S") or a portal ("P")."""

    kind: str
    name: str = ""


class Flush(NamedTuple):
    pass


class Sync(NamedTuple):
    pass


class Terminate(NamedTuple):
    pass


FrontendMessage = Union[
    StartupMessage,
    SSLRequest,
    GSSENCRequest,
    CancelRequest,
    PasswordMessage,
    SASLInitialResponse,
    SASLResponse,
    Query,
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Flush,
    Sync,
    Terminate,
]

PasswordKind = Union[Type[PasswordMessage], Type[SASLInitialResponse], Type[SASLResponse]]
