"""The connection's protocol state machine: what may be sent when, and where each message goes.

No sockets, clocks or threads here.  The driver sends the bytes that the
``start``/``send_*`` methods (and the steps) return, and hands every received
chunk to ``receive_data``.  Asynchronous messages (NotificationResponse,
NoticeResponse, ParameterStatus) are taken care of here, in any state,
before the per-state rules apply; everything else is queued for the
protocol step that waits for it (see ``steps``).  The answer to an
SSLRequest, a single byte, is taken here too (``request_tls``).
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import Deque, Dict, FrozenSet, List, Mapping, Optional, Tuple

from ..errors import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    ProtocolViolation,
    error_from_fields,
)
from . import frontend
from . import messages as m
from .decoder import Decoder
from .events import Bound
from .pending import Pending

logger = logging.getLogger("pgwire_pubsub")

MAX_NOTICES = 50  # as psycopg2 keeps them

_NOTICE_LEVELS = {
    "WARNING": logging.WARNING,
    "NOTICE": logging.INFO,
    "INFO": logging.INFO,
    "LOG": logging.INFO,
    "DEBUG": logging.DEBUG,
}

_HINT = "is it a PostgreSQL server?"

CONNECTION_LOST = (
    "server closed the connection unexpectedly; this probably means the server "
    "terminated abnormally before or while processing the request"
)


class State(enum.Enum):
    NEW = "new"  # nothing sent yet (or TLS just agreed on)
    TLS_REQUESTED = "waiting for the answer to SSLRequest"
    STARTUP = "startup"  # StartupMessage sent, until the first ReadyForQuery
    READY = "ready"  # idle: a command may be sent
    BUSY = "busy"  # a command is in flight, until its ReadyForQuery
    CLOSED = "closed"  # terminated, lost or broken: nothing more is sent or accepted


_STARTUP_MESSAGES = (
    m.AuthenticationOk,
    m.AuthenticationCleartextPassword,
    m.AuthenticationMD5Password,
    m.AuthenticationSASL,
    m.AuthenticationSASLContinue,
    m.AuthenticationSASLFinal,
    m.AuthenticationUnsupported,
    m.BackendKeyData,
    m.NegotiateProtocolVersion,
    m.ErrorResponse,
    m.ReadyForQuery,
)

_COMMAND_MESSAGES = (
    m.RowDescription,
    m.DataRow,
    m.CommandComplete,
    m.EmptyQueryResponse,
    m.ErrorResponse,
    m.ParseComplete,
    m.BindComplete,
    m.CloseComplete,
    m.NoData,
    m.ParameterDescription,
    m.PortalSuspended,
    m.ReadyForQuery,
)


# Replies to a command in progress that change nothing in the state.
_ROUTINE_REPLIES = frozenset(
    (m.RowDescription, m.DataRow, m.CommandComplete, m.EmptyQueryResponse, m.ParseComplete,
     m.BindComplete, m.CloseComplete, m.NoData, m.ParameterDescription, m.PortalSuspended)
)


def _dotted(version: Tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def format_notice(fields: Mapping[str, str]) -> str:
    severity = fields.get("V") or fields.get("S") or "NOTICE"
    return f"{severity}:  {fields.get('M', '')}\n"


class Machine:
    """One PostgreSQL session's protocol state, fed bytes from any I/O layer."""

    def __init__(self) -> None:
        self.state = State.NEW
        self._decoder = Decoder()
        self._inbox: Deque[m.BackendMessage] = deque()
        # Notifications (and gap markers) waiting to be taken; may be shared
        # across connections so that a stream survives a reconnection.
        self.notifications = Pending()
        self.bound: Optional[Bound] = None
        self.notices: List[str] = []
        self.parameters: Dict[str, str] = {}
        self.backend_pid: Optional[int] = None
        self.secret_key: Optional[bytes] = None  # for a CancelRequest: 4 bytes, or up to 256
        # Requested at start, then lowered by the server's NegotiateProtocolVersion.
        self.protocol_version: Tuple[int, int] = frontend.PROTOCOL_3_0
        self._min_version = frontend.PROTOCOL_3_0
        self._requested_options: FrozenSet[str] = frozenset()
        self._negotiated = False
        self.transaction_status: Optional[str] = None
        # A FATAL error the server announced before closing (e.g. the backend
        # was terminated): it explains the end of the stream that follows.
        self.fatal_error: Optional[DatabaseError] = None
        self.tls_answer: Optional[bool] = None  # the server's answer to SSLRequest

    # -- sending ---------------------------------------------------------

    def request_tls(self) -> bytes:
        """SSLRequest; the answer (one byte) sets ``tls_answer``."""
        self._require(State.NEW, "ask for TLS")
        self.state = State.TLS_REQUESTED
        self.tls_answer = None
        return frontend.ssl_request()

    def _tls_answer(self, answer: bytes) -> None:
        if not answer:
            raise OperationalError(f"the server closed the connection after SSLRequest; {_HINT}")
        if answer == b"N":
            self.tls_answer = False
        elif answer == b"S":
            self.tls_answer = True
        elif answer[:1] == b"S":
            # CVE-2021-23222: bytes injected before the handshake must not be
            # taken as if they had come through TLS.
            raise ProtocolViolation(
                "the server sent unencrypted data after agreeing to TLS; refusing the "
                "connection (a man-in-the-middle may be injecting data)"
            )
        elif answer[:1] == b"E":
            raise OperationalError(
                "the server answered the TLS request with an error; it may be too old or "
                "not PostgreSQL: try sslmode=disable"
            )
        else:
            raise ProtocolViolation(f"invalid answer to the TLS request: {answer[:16]!r}")
        self.state = State.NEW

    def start(
        self,
        parameters: Mapping[str, str],
        version: Tuple[int, int] = frontend.PROTOCOL_3_0,
        min_version: Tuple[int, int] = frontend.PROTOCOL_3_0,
    ) -> bytes:
        """The StartupMessage asking for ``version``; the server may lower it as far as
        ``min_version`` (libpq's max_protocol_version and min_protocol_version)."""
        self._require(State.NEW, "start up")
        if not frontend.PROTOCOL_3_0 <= min_version <= version <= frontend.PROTOCOL_LATEST:
            raise ValueError(f"no protocol versions from {min_version} to {version} are spoken")
        message = frontend.startup_message(parameters, version)
        self.state = State.STARTUP
        self.protocol_version, self._min_version = version, min_version
        self._requested_options = frozenset(k for k in parameters if k.startswith("_pq_."))
        return message

    def send_auth(self, message: bytes) -> bytes:
        self._require(State.STARTUP, "answer an authentication request")
        return message

    def send_command(self, message: bytes) -> bytes:
        """A Query, or a Parse/Bind/Execute.../Sync group: one ReadyForQuery ends it."""
        self._require(State.READY, "send a command")
        self.state = State.BUSY
        return message

    def terminate(self) -> bytes:
        """The Terminate message, or nothing when the session is already over."""
        was = self.state
        self.state = State.CLOSED
        self.notifications.halt()  # an events() loop over it ends
        if was in (State.READY, State.BUSY, State.STARTUP):
            return frontend.terminate()
        return b""

    def _require(self, state: State, action: str) -> None:
        if self.state is state:
            return
        if self.state is State.CLOSED:
            raise InterfaceError(f"cannot {action}: the connection is closed")
        if self.state is State.BUSY:
            raise InterfaceError(
                f"cannot {action}: another command is in progress on this connection"
            )
        raise InterfaceError(f"cannot {action} while the connection is {self.state.value}")

    # -- receiving -------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Take a chunk from the server; ``b""`` means the server closed the stream."""
        if self.state is State.CLOSED:
            return
        if self.state is State.TLS_REQUESTED:
            try:
                self._tls_answer(data)
            except OperationalError:
                self.state = State.CLOSED
                raise
            return
        if not data:
            self.state = State.CLOSED
            raise self.lost_error()
        if self.state is State.NEW:
            self.state = State.CLOSED
            raise ProtocolViolation(
                "the server sent data before the client started up; closing the connection"
            )
        queue = self.notifications
        try:
            received = self._decoder.feed(data, queue)
        except ProtocolViolation:
            self.state = State.CLOSED
            raise
        inbox = self._inbox
        for message in received:
            kind = type(message)
            if kind in _ROUTINE_REPLIES and self.state is State.BUSY:
                inbox.append(message)  # the common case, without the general rules
            elif kind is m.ReadyForQuery and self.state is State.BUSY:
                self.state = State.READY  # the command's end, as _dispatch would do it
                self.transaction_status = message.status  # type: ignore[union-attr]
                inbox.append(message)
            elif kind is m.NoticeResponse:
                self._notice(message.fields)  # type: ignore[union-attr]
            elif kind is m.ParameterStatus:
                self.parameters[message.name] = message.value  # type: ignore[union-attr]
            else:
                self._dispatch(message)
        if self.bound is not None:
            self.bound.enforce(queue)
        try:
            self._decoder.check()
        except ProtocolViolation:
            self.state = State.CLOSED
            raise

    def _dispatch(self, message: m.BackendMessage) -> None:
        state = self.state
        if isinstance(message, m.ErrorResponse) and message.fields.get(
            "V", message.fields.get("S")
        ) in ("FATAL", "PANIC"):
            # The server closes right after: keep the reason for the end of stream.
            self.fatal_error = error_from_fields(message.fields)
        if state is State.STARTUP and isinstance(message, _STARTUP_MESSAGES):
            if isinstance(message, m.BackendKeyData):
                self._keep_cancel_key(message)
            elif isinstance(message, m.NegotiateProtocolVersion):
                self._negotiate(message)
        elif state is State.BUSY and isinstance(message, _COMMAND_MESSAGES):
            pass
        elif isinstance(message, m.ErrorResponse) and state is State.READY:
            # Only a FATAL error can come unasked (kept above); nobody waits for it.
            if self.fatal_error is None:
                self.fatal_error = error_from_fields(message.fields)
            return
        else:
            self.state = State.CLOSED
            name = type(message).__name__
            raise ProtocolViolation(
                f"the server sent {name} while the connection was {state.value}; "
                "closing the connection"
            )
        if isinstance(message, m.ReadyForQuery):
            self.state = State.READY
            self.transaction_status = message.status
        self._inbox.append(message)

    def _keep_cancel_key(self, message: m.BackendKeyData) -> None:
        size = len(message.secret_key)
        if size != 4 and self.protocol_version == frontend.PROTOCOL_3_0:
            self._violation(f"the server sent a cancel key of {size} bytes in protocol 3.0, "
                            "whose keys are 4 bytes")
        self.backend_pid, self.secret_key = message.pid, message.secret_key

    def _negotiate(self, message: m.NegotiateProtocolVersion) -> None:
        """The server offers less than was asked: accept a version within range, as libpq."""
        offered, requested = message.version, self.protocol_version
        if self._negotiated:
            self._violation("the server sent NegotiateProtocolVersion twice")
        self._negotiated = True
        if offered > requested:
            self._violation(f"the server asked to downgrade to protocol {_dotted(offered)}, "
                            f"above the {_dotted(requested)} requested")
        if offered < frontend.PROTOCOL_3_0 or offered == (3, 1):
            self._violation(f"the server asked to downgrade to protocol {_dotted(offered)}, "
                            "which does not exist or is not spoken here")
        if offered == requested and not message.unrecognized:
            self._violation("the server sent NegotiateProtocolVersion asking for no change")
        for name in message.unrecognized:
            if name not in self._requested_options:
                self._violation(f"the server reported an unsupported option {name!r} "
                                "that was not requested")
        if offered < self._min_version:
            self.state = State.CLOSED
            raise OperationalError(
                f"server only supports protocol version {_dotted(offered)}, but "
                f'"min_protocol_version" was set to {_dotted(self._min_version)}'
            )
        self.protocol_version = offered

    def _violation(self, what: str) -> None:
        self.state = State.CLOSED
        raise ProtocolViolation(f"{what}; closing the connection")

    @property
    def has_queued_replies(self) -> bool:
        return bool(self._inbox)

    def next_message(self) -> Optional[m.BackendMessage]:
        """The next message a protocol step waits for, or None when it must read more."""
        return self._inbox.popleft() if self._inbox else None

    def lost_error(self) -> OperationalError:
        """The error that explains why the stream ended."""
        fatal = self.fatal_error
        if isinstance(fatal, OperationalError):
            return fatal
        if fatal is not None:
            return OperationalError(str(fatal), fatal.fields)
        if self._decoder.buffered:
            return ProtocolViolation(
                f"the connection ended inside a message ({self._decoder.buffered} bytes "
                f"of it received); {CONNECTION_LOST}"
            )
        return OperationalError(CONNECTION_LOST)

    def mark_lost(self) -> None:
        self.state = State.CLOSED

    def adopt_queue(self, queue: Pending, bound: Optional[Bound]) -> None:
        """Deliver into ``queue`` from now on, after what this session already holds (a
        stream that goes on across a reconnection), within ``bound``."""
        queue.extend(self.notifications)
        self.notifications = queue
        self.bound = bound
        if bound is not None:
            bound.enforce(queue)

    @property
    def server_version(self) -> int:
        """As psycopg2 reports it: 15.4 is 150004, 9.6.3 is 90603; 0 when not reported."""
        text = self.parameters.get("server_version", "0").split()[0]
        parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")]
        if parts[0] >= 10:
            return parts[0] * 10000 + (parts[1] if len(parts) > 1 else 0)
        parts += [0, 0]
        return parts[0] * 10000 + parts[1] * 100 + parts[2]

    def _notice(self, fields: Mapping[str, str]) -> None:
        text = format_notice(fields)
        self.notices.append(text)
        if len(self.notices) > MAX_NOTICES:
            del self.notices[: len(self.notices) - MAX_NOTICES]
        severity = fields.get("V") or fields.get("S") or "NOTICE"
        logger.log(_NOTICE_LEVELS.get(severity, logging.INFO), "server %s", text.rstrip())
