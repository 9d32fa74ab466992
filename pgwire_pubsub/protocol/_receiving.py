"""Taking in what the server sends, so that an interrupt at any point loses nothing.

Ctrl-C, or a SIGTERM handler that raises, can land between any two steps of Python
code, in whatever thread took the signal.  Nothing a read brought may then be lost,
taken twice, or leave the stream out of step, and that without a system call per read
(blocking the signals meanwhile took three).  So:

1. The driver reads into ``inbound``, a buffer the machine owns, in one C call (see
   ``_blocking.socketio``): bytes that left the kernel are kept before any Python code
   runs that a signal handler could interrupt.
2. ``take_in`` decodes the buffer and works out what its messages change
   (``Decoder.decode``, ``_plan``), changing nothing: an interrupt there leaves the
   bytes where they were, to be taken in again.
3. One store commits it (``_rx``): the bytes left over, and the ``_Batch`` of changes.
4. ``_publish`` applies the batch; every step of it can be done again: the queues are
   extended from iterators the batch keeps (one C call each, so that an item leaves the
   iterator and enters the queue at once), states are set, not toggled.  When an
   interrupt cuts it short, the next ``take_in``, which drivers call before they wait,
   finishes it.

The messages a session can get while it starts up (authentication, the cancel key,
protocol negotiation) are planned the same way; only the answer to SSLRequest, a single
byte before the session starts, is taken as it comes.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ..errors import DatabaseError, OperationalError, ProtocolViolation, error_from_fields
from . import frontend
from . import messages as m
from ._state import State
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

CONNECTION_LOST = (
    "server closed the connection unexpectedly; this probably means the server "
    "terminated abnormally before or while processing the request"
)

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


def format_notice(fields: Mapping[str, str]) -> str:
    severity = fields.get("V") or fields.get("S") or "NOTICE"
    return f"{severity}:  {fields.get('M', '')}\n"


def _dotted(version: Tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


class _Batch:
    """What taking in one read changes (see the module's docstring).  Only what a read
    changes is set; the rest is the class's None."""

    notes: Optional[Iterator[Any]] = None  # notifications, as Pending keeps them
    extra = 0  # payloads in the runs of notes beyond one each
    replies: Optional[Iterator[m.BackendMessage]] = None  # for the protocol steps
    start = State.NEW  # the state the batch was planned in...
    state = State.NEW  # ...and the one it leaves
    status: Optional[str] = None  # the transaction status of its last ReadyForQuery
    sets: Optional[Dict[str, Any]] = None  # other attributes of the session it sets
    params: Optional[Dict[str, str]] = None  # ParameterStatus
    notices: Optional[Iterator[str]] = None  # NoticeResponse, as text...
    logs: Optional[Iterator[str]] = None  # ...and as the log lines still to write
    error: Optional[OperationalError] = None  # raised once it is published
    started = False
    done = False


class Receiving:
    """The receiving half of ``Machine``."""

    state: State
    notifications: Pending
    bound: Optional[Bound]
    notices: List[str]
    parameters: Dict[str, str]
    protocol_version: Tuple[int, int]
    fatal_error: Optional[DatabaseError]
    tls_answer: Optional[bool]
    transaction_status: Optional[str]
    _decoder: Decoder
    _inbox: Any
    _min_version: Tuple[int, int]
    _negotiated: bool
    _requested_options: Any

    def _tls_answer(self, answer: bytes) -> None:
        raise NotImplementedError  # Machine's

    # (bytes received and not yet taken in, how many it must hold before decoding can
    # make progress, the batch being published): replaced whole, by one store.
    _rx: Tuple[bytearray, int, Optional[_Batch]]

    @property
    def inbound(self) -> bytearray:
        """Bytes received and not yet taken in: a driver may read into it, then call
        ``take_in``."""
        return self._rx[0]

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._rx[0])

    def receive_data(self, data: bytes) -> None:
        """Take a chunk from the server; ``b""`` means the server closed the stream."""
        state = self.state
        if state is State.CLOSED:
            return
        if state is State.TLS_REQUESTED:
            self._take_tls_answer(data)
            return
        if not data:
            self.take_in()  # what an interrupt left half taken in, first
            self.state = State.CLOSED
            raise self.lost_error()
        buffer, _, batch = self._rx
        if buffer or (batch is not None and not batch.done) or state is State.NEW:
            buffer += data
            self.take_in()
        else:
            self._take_in_bytes(data if type(data) is bytes else bytes(data))

    def take_in(self) -> bool:
        """Take in what ``inbound`` holds, after finishing what an interrupt cut short;
        whether anything was taken in (a driver about to wait for input need not then).
        Raises what the server's messages call for, as ``receive_data`` does."""
        buffer, need, batch = self._rx
        settled = batch is not None and not batch.done
        if settled:
            self._publish(batch)  # type: ignore[arg-type]
            buffer, need, batch = self._rx
        if not buffer or len(buffer) < need or self.state is State.CLOSED:
            return settled
        if self.state is State.TLS_REQUESTED:
            self._take_tls_answer(b"")
            return True
        if self.state is State.NEW:
            self.state = State.CLOSED
            raise ProtocolViolation(
                "the server sent data before the client started up; closing the connection"
            )
        self._take_in_bytes(bytes(buffer))
        return True

    def finish_taking_in(self) -> None:
        """Finish what an interrupt cut short of taking a read in (nothing otherwise)."""
        batch = self._rx[2]
        if batch is not None and not batch.done:
            self._publish(batch)

    def _take_in_bytes(self, buf: bytes) -> None:
        messages, notes, extra, end, need, error = self._decoder.decode(buf, True)
        batch = self._plan(messages, notes, extra, error)
        rest = bytearray(memoryview(buf)[end:]) if end < len(buf) else bytearray()
        self._rx = (rest, need, batch)  # the commit
        self._publish(batch)

    def _take_tls_answer(self, data: bytes) -> None:
        answer = bytes(self._rx[0]) + data
        self._rx = (bytearray(), 0, None)  # a session that starts again: nothing kept
        try:
            self._tls_answer(answer)
        except OperationalError:
            self.state = State.CLOSED
            raise

    # -- planning: what the messages change, changing nothing -------------------------

    def _plan(self, messages: List[m.BackendMessage], notes: List[Any], extra: int,
              error: Optional[ProtocolViolation]) -> _Batch:
        batch = _Batch()
        if notes:
            batch.notes, batch.extra = iter(notes), extra
        batch.start = state = self.state
        replies: List[m.BackendMessage] = []
        notices: List[str] = []
        for message in messages:
            kind = type(message)
            if kind in _ROUTINE_REPLIES and state is State.BUSY:
                replies.append(message)  # the common case, without the general rules
            elif kind is m.ReadyForQuery and state is State.BUSY:
                state = State.READY  # the command's end, as _plan_other would plan it
                batch.status = message.status  # type: ignore[union-attr]
                replies.append(message)
            elif kind is m.NoticeResponse:
                notices.append(format_notice(message.fields))  # type: ignore[union-attr]
            elif kind is m.ParameterStatus:
                if batch.params is None:
                    batch.params = {}
                batch.params[message.name] = message.value  # type: ignore[union-attr]
            else:
                try:
                    state = self._plan_other(message, state, batch, replies)
                except OperationalError as exc:  # ProtocolViolation is one
                    error = exc  # type: ignore[assignment]
                    break
        if replies:
            batch.replies = iter(replies)
        if notices:
            batch.notices = iter(notices)
            batch.logs = iter(notices)
        batch.state = State.CLOSED if error is not None else state
        batch.error = error
        return batch

    def _plan_other(self, message: m.BackendMessage, state: State, batch: _Batch,
                    replies: List[m.BackendMessage]) -> State:
        """The state after ``message`` (whatever the common cases of ``_plan`` leave),
        with what it changes noted in ``batch``; raises the violations."""
        sets = batch.sets
        if sets is None:
            sets = batch.sets = {}
        if isinstance(message, m.ErrorResponse) and message.fields.get(
            "V", message.fields.get("S")
        ) in ("FATAL", "PANIC"):
            # The server closes right after: keep the reason for the end of stream.
            sets["fatal_error"] = error_from_fields(message.fields)
        if state is State.STARTUP and isinstance(message, _STARTUP_MESSAGES):
            if isinstance(message, m.BackendKeyData):
                self._check_cancel_key(message, sets.get("protocol_version",
                                                         self.protocol_version))
                sets["backend_pid"], sets["secret_key"] = message.pid, message.secret_key
            elif isinstance(message, m.NegotiateProtocolVersion):
                sets["protocol_version"] = self._negotiate(
                    message, sets.get("protocol_version", self.protocol_version),
                    sets.get("_negotiated", self._negotiated))
                sets["_negotiated"] = True
        elif state is State.BUSY and isinstance(message, _COMMAND_MESSAGES):
            pass
        elif isinstance(message, m.ErrorResponse) and state is State.READY:
            # Only a FATAL error can come unasked (kept above); nobody waits for it.
            if sets.get("fatal_error", self.fatal_error) is None:
                sets["fatal_error"] = error_from_fields(message.fields)
            return state
        else:
            name = type(message).__name__
            raise ProtocolViolation(
                f"the server sent {name} while the connection was {state.value}; "
                "closing the connection"
            )
        if isinstance(message, m.ReadyForQuery):
            state = State.READY
            batch.status = message.status
        replies.append(message)
        return state

    @staticmethod
    def _check_cancel_key(message: m.BackendKeyData, version: Tuple[int, int]) -> None:
        size = len(message.secret_key)
        if size != 4 and version == frontend.PROTOCOL_3_0:
            _violation(f"the server sent a cancel key of {size} bytes in protocol 3.0, "
                       "whose keys are 4 bytes")

    def _negotiate(self, message: m.NegotiateProtocolVersion, requested: Tuple[int, int],
                   negotiated: bool) -> Tuple[int, int]:
        """The version to speak when the server offers less than was asked: one within
        range, as libpq accepts."""
        offered = message.version
        if negotiated:
            _violation("the server sent NegotiateProtocolVersion twice")
        if offered > requested:
            _violation(f"the server asked to downgrade to protocol {_dotted(offered)}, "
                       f"above the {_dotted(requested)} requested")
        if offered < frontend.PROTOCOL_3_0 or offered == (3, 1):
            _violation(f"the server asked to downgrade to protocol {_dotted(offered)}, "
                       "which does not exist or is not spoken here")
        if offered == requested and not message.unrecognized:
            _violation("the server sent NegotiateProtocolVersion asking for no change")
        for name in message.unrecognized:
            if name not in self._requested_options:
                _violation(f"the server reported an unsupported option {name!r} "
                           "that was not requested")
        if offered < self._min_version:
            raise OperationalError(
                f"server only supports protocol version {_dotted(offered)}, but "
                f'"min_protocol_version" was set to {_dotted(self._min_version)}'
            )
        return offered

    # -- publishing: what can be done again ---------------------------------------------

    def _publish(self, batch: _Batch) -> None:
        again = batch.started  # an interrupt cut the last try short
        batch.started = True
        if batch.notes is not None:
            if again:
                self.notifications.added_again(batch.notes)
            else:
                self.notifications.add(batch.notes, batch.extra)
        if batch.replies is not None:
            self._inbox.extend(batch.replies)
        if batch.state is not batch.start and self.state is batch.start:
            if batch.status is not None:
                self.transaction_status = batch.status
            self.state = batch.state
        if batch.sets:
            for name, value in batch.sets.items():
                setattr(self, name, value)
        if batch.params:
            self.parameters.update(batch.params)
        if batch.notices is not None:
            self.notices.extend(batch.notices)
            if len(self.notices) > MAX_NOTICES:
                del self.notices[: len(self.notices) - MAX_NOTICES]
            for text in batch.logs:  # type: ignore[union-attr]
                level = _NOTICE_LEVELS.get(text.split(":", 1)[0], logging.INFO)
                logger.log(level, "server %s", text.rstrip())
        if self.bound is not None:
            self.bound.enforce(self.notifications)
        if batch.error is not None:
            self.state = State.CLOSED
        batch.done = True
        if batch.error is not None:
            raise batch.error

    # -- the end -------------------------------------------------------------------

    def lost_error(self) -> OperationalError:
        """The error that explains why the stream ended."""
        fatal = self.fatal_error
        if isinstance(fatal, OperationalError):
            return fatal
        if fatal is not None:
            return OperationalError(str(fatal), fatal.fields)
        if self.buffered:
            return ProtocolViolation(
                f"the connection ended inside a message ({self.buffered} bytes "
                f"of it received); {CONNECTION_LOST}"
            )
        return OperationalError(CONNECTION_LOST)

    def mark_lost(self) -> None:
        """The connection is gone: what it received is taken in first (what an interrupt
        may have left half taken in), then nothing more."""
        if self.state is not State.CLOSED:
            with contextlib.suppress(OperationalError):
                self.take_in()
        self.state = State.CLOSED


def _violation(what: str) -> None:
    raise ProtocolViolation(f"{what}; closing the connection")
