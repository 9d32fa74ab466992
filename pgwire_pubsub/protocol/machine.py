"""The connection's protocol state machine: what may be sent when, and where each message goes.

No sockets, clocks or threads here.  The driver sends the bytes that the
``start``/``send_*`` methods (and the steps) return, and hands every received
chunk to ``receive_data`` (or reads into ``inbound`` and calls ``take_in``: see
``_receiving``, which takes it in).  Asynchronous messages (NotificationResponse,
NoticeResponse, ParameterStatus) are taken care of here, in any state,
before the per-state rules apply; everything else is queued for the
protocol step that waits for it (see ``steps``).  The answer to an
SSLRequest, a single byte, is taken here too (``request_tls``).
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Dict, FrozenSet, List, Mapping, Optional, Tuple

from ..errors import DatabaseError, InterfaceError, OperationalError, ProtocolViolation
from . import frontend
from . import messages as m
from ._receiving import MAX_NOTICES, Receiving, format_notice
from ._state import State
from .decoder import Decoder
from .events import Bound
from .pending import Pending

__all__ = ["MAX_NOTICES", "Machine", "State", "format_notice"]

_HINT = "is it a PostgreSQL server?"


class Machine(Receiving):
    """One PostgreSQL session's protocol state, fed bytes from any I/O layer."""

    def __init__(self) -> None:
        self.state = State.NEW
        self._decoder = Decoder()
        self._rx = (bytearray(), 0, None)  # see _receiving
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
        # True from the moment send_command hands a command out until the driver has
        # written every byte of it (the driver clears it): see withdraw_unsent.
        self.unsent = False

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
        # A read whose taking in an interrupt cut short is finished first: finished later,
        # it would set the state its replies left (READY) on top of this command's BUSY.
        self.finish_taking_in()
        self._require(State.READY, "send a command")
        self.unsent = True  # before BUSY: an interrupt between the two then leaves READY
        self.state = State.BUSY
        return message

    def withdraw_unsent(self) -> None:
        """The driver was interrupted (Ctrl-C) after a command was handed out and before it
        wrote any byte of it: the command never happened, and no reply will come.  Left
        BUSY, the next call would wait for that reply for ever."""
        if self.unsent:
            if self.state is State.BUSY:
                self.state = State.READY
            self.unsent = False

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

    @property
    def has_queued_replies(self) -> bool:
        return bool(self._inbox)

    def next_message(self) -> Optional[m.BackendMessage]:
        """The next message a protocol step waits for, or None when it must read more."""
        return self._inbox.popleft() if self._inbox else None

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
