"""Typed backend messages, as the decoder produces them.

They are NamedTuples: cheap to build, immutable, and equal by value, which
keeps the tests' byte vectors readable.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple, Union


class Notify(NamedTuple):
    """A notification, shaped like psycopg2's ``Notify`` (and its repr)."""

    pid: int
    channel: str
    payload: str = ""

    def __repr__(self) -> str:
        return f"Notify({self.pid!r}, {self.channel!r}, {self.payload!r})"


class AuthenticationOk(NamedTuple):
    pass


class AuthenticationCleartextPassword(NamedTuple):
    pass


class AuthenticationMD5Password(NamedTuple):
    salt: bytes


class AuthenticationSASL(NamedTuple):
    mechanisms: Tuple[str, ...]


class AuthenticationSASLContinue(NamedTuple):
    data: bytes


class AuthenticationSASLFinal(NamedTuple):
    data: bytes


class AuthenticationUnsupported(NamedTuple):
    """A method this client does not speak (Kerberos, GSS, SSPI, SCM...)."""

    code: int

    @property
    def method_name(self) -> str:
        return _AUTH_NAMES.get(self.code, f"unknown method (code {self.code})")


_AUTH_NAMES = {
    2: "Kerberos V5",
    6: "SCM credentials",
    7: "GSSAPI",
    8: "GSSAPI (continue)",
    9: "SSPI",
}


class ParameterStatus(NamedTuple):
    name: str
    value: str


class BackendKeyData(NamedTuple):
    pid: int
    secret_key: bytes  # 4 bytes in protocol 3.0; up to 256 in 3.2 (PostgreSQL 18 sends 32)


class ReadyForQuery(NamedTuple):
    status: str  # 'I' idle, 'T' in a transaction, 'E' in a failed transaction


class RowDescription(NamedTuple):
    names: Tuple[str, ...]


class DataRow(NamedTuple):
    values: Tuple[Optional[bytes], ...]


class CommandComplete(NamedTuple):
    tag: str


class EmptyQueryResponse(NamedTuple):
    pass


class ErrorResponse(NamedTuple):
    fields: Dict[str, str]


class NoticeResponse(NamedTuple):
    fields: Dict[str, str]


class NegotiateProtocolVersion(NamedTuple):
    """The server's newest version for the requested major one (sent as a whole version
    number, major in the high 16 bits), and the ``_pq_.`` options it did not recognise."""

    version: Tuple[int, int]
    unrecognized: Tuple[str, ...]


class ParseComplete(NamedTuple):
    pass


class BindComplete(NamedTuple):
    pass


class CloseComplete(NamedTuple):
    pass


class NoData(NamedTuple):
    pass


class ParameterDescription(NamedTuple):
    type_oids: Tuple[int, ...]


class PortalSuspended(NamedTuple):
    pass


BackendMessage = Union[
    Notify,
    AuthenticationOk,
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    AuthenticationUnsupported,
    ParameterStatus,
    BackendKeyData,
    ReadyForQuery,
    RowDescription,
    DataRow,
    CommandComplete,
    EmptyQueryResponse,
    ErrorResponse,
    NoticeResponse,
    NegotiateProtocolVersion,
    ParseComplete,
    BindComplete,
    CloseComplete,
    NoData,
    ParameterDescription,
    PortalSuspended,
]
