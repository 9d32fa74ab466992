"""Protocol steps written once, as generators that any driver can run.

A step yields ``bytes`` when it wants them sent, and ``None`` when it needs more
input: the driver then feeds what arrives to the step's ``Machine``
(``receive_data``) and resumes the step with None.  Its return value is the
step's result.  Drivers differ only in how they move those bytes and wait.
"""

from __future__ import annotations

from typing import Generator, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ..errors import (
    DatabaseError,
    DataError,
    NotSupportedError,
    OperationalError,
    ProtocolViolation,
    error_from_fields,
)
from . import frontend
from . import messages as m
from .auth import Authenticator
from .machine import Machine, State

T = TypeVar("T")
Step = Generator[Optional[bytes], None, T]

Row = Tuple[Optional[str], ...]


def receive(machine: Machine) -> Step[m.BackendMessage]:
    """The next message queued for a step, waiting for input as long as that takes."""
    while True:
        message = machine.next_message()
        if message is not None:
            return message
        yield None


def negotiate_tls(machine: Machine) -> Step[bool]:
    """SSLRequest: True when the server agrees to TLS, False when it refuses."""
    yield machine.request_tls()
    while machine.tls_answer is None:
        yield None
    return machine.tls_answer


def startup(
    machine: Machine,
    parameters: Mapping[str, str],
    auth: Authenticator,
    max_version: Tuple[int, int] = frontend.PROTOCOL_3_0,
    min_version: Tuple[int, int] = frontend.PROTOCOL_3_0,
) -> Step[None]:
    """StartupMessage, authentication, and the session's parameters up to ReadyForQuery.

    The protocol version asked for is ``max_version``; a server that offers less
    lowers it (``machine.protocol_version``), but not below ``min_version``.
    """
    yield machine.start(parameters, max_version, min_version)
    authenticated = False
    while True:
        message = yield from receive(machine)
        if isinstance(message, (m.ReadyForQuery, m.BackendKeyData)) and not authenticated:
            machine.mark_lost()
            raise ProtocolViolation(
                "the server went on without completing authentication; refusing the connection"
            )
        if isinstance(message, m.ReadyForQuery):
            return
        if isinstance(message, m.ErrorResponse):
            machine.mark_lost()
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
            yield machine.send_auth(answer)


def _collect(machine: Machine) -> Step[List[Row]]:
    """Rows of a command until its ReadyForQuery; a server error is raised after it.
    (``receive`` inlined: every command runs this loop once per reply message.)"""
    rows: List[Row] = []
    error: Optional[DatabaseError] = None
    next_message = machine.next_message
    while True:
        message = next_message()
        if message is None:
            yield None
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


def simple_query(machine: Machine, sql: str) -> Step[List[Row]]:
    """Run SQL with the simple protocol; rows of every result, as text."""
    yield machine.send_command(frontend.query(sql))
    return (yield from _collect(machine))


def extended_query(
    machine: Machine, sql: str, params: Sequence[Optional[str]]
) -> Step[List[Row]]:
    """Run one statement with text parameters: Parse, Bind, Execute, Sync in one write."""
    yield machine.send_command(frontend.run_unnamed(sql, params))
    return (yield from _collect(machine))


def execute(
    machine: Machine, sql: str, params: Optional[Sequence[Optional[str]]] = None
) -> Step[List[Row]]:
    """What ``Connection.execute`` runs: SQL (with ``params``, one statement by the extended
    protocol), and then, if it changed ``client_encoding``, UTF8 put back and
    ``NotSupportedError`` raised."""
    try:
        if params is None:
            rows = yield from simple_query(machine, sql)
        else:
            rows = yield from extended_query(machine, sql, params)
    except DatabaseError:
        if _encoding_changed(machine):
            yield from _restore_utf8(machine)
        raise
    if _encoding_changed(machine):
        yield from _restore_utf8(machine)
    return rows


def _encoding_changed(machine: Machine) -> bool:
    return (
        machine.parameters.get("client_encoding", "UTF8") != "UTF8"
        and machine.state is State.READY
    )


def _restore_utf8(machine: Machine) -> Step[None]:
    changed = machine.parameters.get("client_encoding")
    yield from simple_query(machine, "SET client_encoding TO 'UTF8'")
    raise NotSupportedError(
        f"client_encoding was changed to {changed}; pgwire_pubsub always speaks UTF8 "
        "(every str is sent and received as Unicode), so it has been set back to UTF8"
    )


def _read_only(machine: Machine) -> Step[bool]:
    reported = machine.parameters
    if "in_hot_standby" in reported and "default_transaction_read_only" in reported:
        return "on" in (reported["in_hot_standby"], reported["default_transaction_read_only"])
    rows = yield from simple_query(machine, "SHOW transaction_read_only")
    return bool(rows) and rows[0][0] == "on"


def _standby(machine: Machine) -> Step[bool]:
    if "in_hot_standby" in machine.parameters:
        return machine.parameters["in_hot_standby"] == "on"
    rows = yield from simple_query(machine, "SELECT pg_catalog.pg_is_in_recovery()")
    return bool(rows) and rows[0][0] == "t"


def session_mismatch(machine: Machine, target: str) -> Step[Optional[str]]:
    """Why this session does not meet ``target_session_attrs``, or None when it does.

    As libpq: the values the server reports (PostgreSQL 14+) are used, and a
    query asks older servers.  ``prefer-standby`` is the caller's two passes
    (``standby``, then ``any``).
    """
    if target == "read-write" and (yield from _read_only(machine)):
        return "session is read-only"
    if target == "read-only" and not (yield from _read_only(machine)):
        return "session is not read-only"
    if target == "primary" and (yield from _standby(machine)):
        return "server is in hot standby mode"
    if target == "standby" and not (yield from _standby(machine)):
        return "server is not in hot standby mode"
    return None


def drain(machine: Machine) -> Step[None]:
    """Finish a command that was interrupted: discard its replies up to ReadyForQuery."""
    while machine.state is State.BUSY or machine.has_queued_replies:
        message = yield from receive(machine)
        if isinstance(message, m.ReadyForQuery):
            return


def ping(machine: Machine) -> Step[None]:
    """The cheapest round trip: an empty query."""
    yield from simple_query(machine, "")


def listening_channels(machine: Machine) -> Step[List[str]]:
    rows = yield from simple_query(machine, "SELECT pg_catalog.pg_listening_channels()")
    return [str(row[0]) for row in rows]
