"""Protocol steps written once, as generators that any I/O layer can drive.

A step yields ``bytes`` when it wants them sent (the driver resumes it with
None) and yields ``None`` when it needs to read (the driver resumes it with
the bytes received, ``b""`` at end of stream).  Its return value is the
step's result.  The blocking client and an asyncio client only differ in how
they move those bytes and wait.
"""

from __future__ import annotations

from typing import Generator, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ..errors import (
    DatabaseError,
    DataError,
    OperationalError,
    ProtocolViolation,
    error_from_fields,
)
from . import frontend
from . import messages as m
from .auth import Authenticator
from .machine import Machine, State

T = TypeVar("T")
Step = Generator[Optional[bytes], Optional[bytes], T]

Row = Tuple[Optional[str], ...]


def receive(proto: Machine) -> Step[m.BackendMessage]:
    """The next message queued for a step, reading as much as that takes."""
    while True:
        message = proto.next_message()
        if message is not None:
            return message
        data = yield None
        proto.receive_data(data or b"")


def negotiate_tls() -> Step[bool]:
    """SSLRequest: True when the server agrees to TLS, False when it refuses."""
    yield frontend.ssl_request()
    answer = yield None
    if not answer:
        raise OperationalError(f"the server closed the connection after SSLRequest; {_HINT}")
    if answer[:1] == b"N" and len(answer) == 1:
        return False
    if answer[:1] == b"S":
        if len(answer) > 1:
            # CVE-2021-23222: bytes injected before the handshake must not be
            # taken as if they had come through TLS.
            raise ProtocolViolation(
                "the server sent unencrypted data after agreeing to TLS; refusing the "
                "connection (a man-in-the-middle may be injecting data)"
            )
        return True
    if answer[:1] == b"E":
        raise OperationalError(
            "the server answered the TLS request with an error; it may be too old or "
            "not PostgreSQL: try sslmode=disable"
        )
    raise ProtocolViolation(f"invalid answer to the TLS request: {answer[:16]!r}")


_HINT = "is it a PostgreSQL server?"


def startup(
    proto: Machine,
    parameters: Mapping[str, str],
    auth: Authenticator,
    max_version: Tuple[int, int] = frontend.PROTOCOL_3_0,
    min_version: Tuple[int, int] = frontend.PROTOCOL_3_0,
) -> Step[None]:
    """StartupMessage, authentication, and the session's parameters up to ReadyForQuery.

    The protocol version asked for is ``max_version``; a server that offers less
    lowers it (``proto.protocol_version``), but not below ``min_version``.
    """
    yield proto.start(parameters, max_version, min_version)
    authenticated = False
    while True:
        message = yield from receive(proto)
        if isinstance(message, (m.ReadyForQuery, m.BackendKeyData)) and not authenticated:
            proto.mark_lost()
            raise ProtocolViolation(
                "the server went on without completing authentication; refusing the connection"
            )
        if isinstance(message, m.ReadyForQuery):
            return
        if isinstance(message, m.ErrorResponse):
            proto.mark_lost()
            error = error_from_fields(message.fields)
            if isinstance(error, OperationalError):
                raise error
            raise OperationalError(str(error), message.fields)
        if isinstance(message, (m.BackendKeyData, m.NegotiateProtocolVersion)):
            continue
        answer = auth.respond(message)
        if isinstance(message, m.AuthenticationOk):
            authenticated = True
        if answer is not None:
            yield proto.send_auth(answer)


def _collect(proto: Machine) -> Step[List[Row]]:
    """Rows of a command until its ReadyForQuery; a server error is raised after it.
    (``receive`` inlined: every command runs this loop once per reply message.)"""
    rows: List[Row] = []
    error: Optional[DatabaseError] = None
    next_message = proto.next_message
    while True:
        message = next_message()
        if message is None:
            data = yield None
            proto.receive_data(data or b"")
            continue
        kind = type(message)
        if kind is m.DataRow:
            try:
                rows.append(tuple(None if v is None else v.decode()
                                  for v in message.values))  # type: ignore[union-attr]
            except UnicodeDecodeError as exc:
                error = error or DataError(f"the server sent a value that is not UTF-8: {exc}")
        elif kind is m.ErrorResponse:
            error = error_from_fields(message.fields)  # type: ignore[union-attr]
        elif kind is m.ReadyForQuery:
            if error is not None:
                raise error
            return rows


def simple_query(proto: Machine, sql: str) -> Step[List[Row]]:
    """Run SQL with the simple protocol; rows of every result, as text."""
    yield proto.send_command(frontend.query(sql))
    return (yield from _collect(proto))


def extended_query(proto: Machine, sql: str, params: Sequence[Optional[str]]) -> Step[List[Row]]:
    """Run one statement with text parameters: Parse, Bind, Execute, Sync in one write."""
    yield proto.send_command(frontend.run_unnamed(sql, params))
    return (yield from _collect(proto))


def _read_only(proto: Machine) -> Step[bool]:
    reported = proto.parameters
    if "in_hot_standby" in reported and "default_transaction_read_only" in reported:
        return "on" in (reported["in_hot_standby"], reported["default_transaction_read_only"])
    rows = yield from simple_query(proto, "SHOW transaction_read_only")
    return bool(rows) and rows[0][0] == "on"


def _standby(proto: Machine) -> Step[bool]:
    if "in_hot_standby" in proto.parameters:
        return proto.parameters["in_hot_standby"] == "on"
    rows = yield from simple_query(proto, "SELECT pg_catalog.pg_is_in_recovery()")
    return bool(rows) and rows[0][0] == "t"


def session_mismatch(proto: Machine, target: str) -> Step[Optional[str]]:
    """Why this session does not meet ``target_session_attrs``, or None when it does.

    As libpq: the values the server reports (PostgreSQL 14+) are used, and a
    query asks older servers.  ``prefer-standby`` is the caller's two passes
    (``standby``, then ``any``).
    """
    if target == "read-write" and (yield from _read_only(proto)):
        return "session is read-only"
    if target == "read-only" and not (yield from _read_only(proto)):
        return "session is not read-only"
    if target == "primary" and (yield from _standby(proto)):
        return "server is in hot standby mode"
    if target == "standby" and not (yield from _standby(proto)):
        return "server is not in hot standby mode"
    return None


def drain(proto: Machine) -> Step[None]:
    """Finish a command that was interrupted: discard its replies up to ReadyForQuery."""
    while proto.state is State.BUSY or proto.has_queued_replies:
        message = yield from receive(proto)
        if isinstance(message, m.ReadyForQuery):
            return


def ping(proto: Machine) -> Step[None]:
    """The cheapest round trip: an empty query."""
    yield from simple_query(proto, "")


def listening_channels(proto: Machine) -> Step[List[str]]:
    rows = yield from simple_query(proto, "SELECT pg_catalog.pg_listening_channels()")
    return [str(row[0]) for row in rows]
