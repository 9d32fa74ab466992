"""The blocking connection: the session's API over a ``SocketIO`` and the protocol core.

Opening the session (hosts, TLS, authentication) is the shared procedure that
``opener`` runs; all protocol decisions live in ``protocol``.  This module runs
commands one call at a time (any thread, with ``close()`` from anywhere), waits
for notifications, and turns failures into a connection marked lost.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Dict, Generator, List, Optional, Sequence, Tuple, TypeVar

from .._shared.requests import Execute
from .._shared.session import SessionView, socket_error
from ..conninfo import ConnParams, make_params
from ..errors import InterfaceError, OperationalError
from ..protocol import steps
from ..protocol.machine import State
from .opener import Opener
from .socketio import CLOSE, NUDGE, SocketIO, Woken

T = TypeVar("T")

TERMINATE_TIMEOUT = 2.0


class Connection(SessionView):
    """One PostgreSQL session over TCP, a Unix socket or TLS.

    ``closed`` is 0 while open, 1 after ``close()``, 2 once the connection is
    lost or broken (as in psycopg2).  Only ``close()`` may be called from
    another thread (or a signal handler) while a call is in progress: it wakes
    the waiting call, which then raises ``InterfaceError``.
    """

    def __init__(self, params: ConnParams) -> None:
        self.params = params
        self._lost: Optional[OperationalError] = None
        self.closed = 0
        self._transport: Optional[SocketIO] = None
        self.owner: Any = None  # the reader thread that runs every call, while it runs
        self._claim: Dict[int, Tuple[int, object]] = {}  # key 0: the call in progress
        self._closing = threading.Lock()
        self._close_requested = False
        self._wake_reader, self._wake_writer = socket.socketpair()
        try:
            self._transport, self.opened = Opener().open(params)
            self.machine = self.opened.machine
        except BaseException:
            self._wake_reader.close()
            self._wake_writer.close()
            raise
        self._transport.wakeup = self._wake_reader

    # -- the driver ------------------------------------------------------

    def _run(self, step: steps.Step[T], deadline: Optional[float] = None) -> T:
        return self._call(lambda transport: transport.run(step, deadline), deadline)

    def _call(self, body: Callable[[SocketIO], T], deadline: Optional[float] = None) -> T:
        """``body(transport)``, one call at a time; failures leave the connection marked.

        Plain try/finally rather than a context manager generator: an interrupt landing
        in a generator's machinery (PyPy finalizes it late) could keep the connection
        taken for good.
        """
        transport = self._check_open()
        claim = self._take()
        if claim is None:
            raise self._refusal()
        try:
            if self.machine.state is State.BUSY or self.machine.has_queued_replies:
                transport.run(steps.drain(self.machine), deadline)  # after an interrupt
            return body(transport)
        except Woken:
            self._finish_close()
            raise InterfaceError("the connection was closed while a call was waiting") from None
        except OperationalError as exc:
            if self.machine.state is State.CLOSED:
                self._fail(exc)
            raise
        except BaseException:
            # Interrupted (Ctrl-C): a half-written message breaks the stream; an
            # unfinished reply is drained before the next command (what was received is
            # never lost: see protocol/_receiving.py, and _read_tls for TLS).
            if transport.sending:
                self._fail(OperationalError("a message was interrupted while being sent"))
            elif transport.receiving:
                self._fail(OperationalError(
                    "received bytes were interrupted while being decrypted (TLS), so the "
                    "stream can no longer be trusted; reconnect"))
            else:
                self.machine.withdraw_unsent()  # handed out, not a byte of it sent
            raise
        finally:
            if transport.held is not None:  # an interrupt skipped _read_tls's own release
                transport.release_interrupts()
            self._give_back(claim)
            if self._close_requested and self.closed != 1:
                self._finish_close()

    def _take(self) -> Optional[Tuple[int, object]]:
        """Claim the connection for one call; None while a call is in progress (in
        another thread, or in this one when a signal handler calls in).

        ``setdefault`` and ``pop`` are single steps: an interrupt between them and the
        ``try`` can at worst leave a claim of this very thread with no call running,
        which is then taken over (a lock would stay taken for good).
        """
        me = threading.get_ident()
        claim = (me, object())
        held = self._claim.setdefault(0, claim)
        if held is claim:
            return claim
        if held[0] != me or self._call_in_progress():
            return None
        self._claim[0] = claim
        return claim

    def _refusal(self) -> InterfaceError:
        held = self._claim.get(0)
        if held is not None and held[0] == threading.get_ident():
            return InterfaceError(
                "a call on this connection is in progress in this very thread (this one "
                "came from a signal handler or a callback inside it); only close() may be "
                "called there"
            )
        return InterfaceError(
            "another thread is using this connection; only close() may be called "
            "from another thread"
        )

    def _give_back(self, claim: Tuple[int, object]) -> None:
        if self._claim.get(0) is claim:
            self._claim.pop(0, None)

    def _call_in_progress(self) -> bool:
        """Whether this thread's stack, below the ``_call`` or ``close`` that asks through
        ``_take``, holds a ``_call`` of this connection."""
        frame: Optional[FrameType] = sys._getframe(3)
        while frame is not None:
            if frame.f_code is _CALL_CODE and frame.f_locals.get("self") is self:
                return True
            frame = frame.f_back
        return False

    def _fail(self, exc: BaseException) -> OperationalError:
        """Mark the connection lost; the error to raise now and on every later call."""
        error = exc if isinstance(exc, OperationalError) else socket_error(exc)
        self._lost = error
        self.machine.mark_lost()
        self._drop()
        self.closed = 2
        return error

    def _drop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _check_open(self) -> SocketIO:
        if self.closed == 1 or self._close_requested:
            raise InterfaceError("connection already closed")
        if self._lost is not None:
            raise self._lost
        assert self._transport is not None
        return self._transport

    # -- what the PubSub layer uses --------------------------------------

    def execute(self, sql: str, params: Optional[Sequence[Optional[str]]] = None) -> List[Any]:
        """Run SQL; with ``params`` ($1, $2... as text), one statement by the extended protocol.
        While a ``PubSub``'s reader thread owns the connection, it runs there."""
        owner = self.owner
        if owner is not None and not owner.here:
            return owner.run(_request(Execute(sql, params, conn=self)))  # type: ignore[no-any-return]
        return self._run(steps.execute(self.machine, sql, params))

    def run_within(self, sql: str, params: Optional[Sequence[Optional[str]]],
                   timeout: Optional[float]) -> List[Any]:
        """``execute`` within ``timeout`` seconds: past it the connection is closed and
        ``OperationalError`` raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._run(steps.execute(self.machine, sql, params), deadline)

    def cancel(self) -> None:
        """Ask the server to cancel the command this connection is running (from any
        thread), over a separate connection as libpq does; the command then raises
        ``QueryCanceled``.  Nothing happens when no command runs by then."""
        if self.closed:
            raise InterfaceError("connection already closed")
        Opener().cancel(self.params, self.opened)

    def nudge(self) -> None:
        """End the current wait for input early (from any thread), without closing."""
        with contextlib.suppress(OSError):
            self._wake_writer.send(NUDGE)

    def mark_broken(self, reason: str) -> OperationalError:
        """Declare the connection unusable (e.g. a failed health check); the error to raise."""
        return self._fail(OperationalError(reason))

    def ping(self, timeout: Optional[float] = None) -> None:
        """A round trip to the server; a lost connection (or no answer within ``timeout``
        seconds, which closes the connection) raises ``OperationalError``."""
        self.run_within("", None, timeout)

    @property
    def idle_seconds(self) -> float:
        """Seconds since anything was sent or received."""
        transport = self._transport
        return 0.0 if transport is None else time.monotonic() - transport.last_activity

    def wait(self, timeout: Optional[float], more: bool = False) -> None:
        """Wait up to ``timeout`` seconds (None: forever) for data, and take in what came;
        at once when notifications are waiting, unless ``more`` (for one that has not come
        yet).  A lost connection raises."""
        if self.machine.notifications.items and not more:
            return
        try:
            self._call(lambda transport: self._take_in(transport, timeout))
        except (OSError, OperationalError) as exc:
            raise self._fail(exc) from None

    def wait_notifications(self, timeout: Optional[float]) -> None:
        """``wait``, except that a lost connection raises only once every notification
        received before the loss has been taken."""
        try:
            self.wait(timeout)
        except OperationalError:
            if not self.machine.notifications.items:
                raise

    def _take_in(self, transport: SocketIO, timeout: Optional[float]) -> None:
        if self.machine.take_in():
            return  # what an interrupt left half taken in: no need to wait
        if transport.wait_readable(timeout):
            transport.take_in()

    def poll(self) -> None:
        """Take in whatever has arrived, without waiting (psycopg2's ``poll``)."""
        self.wait_notifications(0)

    def fileno(self) -> int:
        return self._check_open().fileno()

    @property
    def uses_tls(self) -> bool:
        return self._transport is not None and self._transport.uses_tls

    def close(self) -> None:
        """Send Terminate and close the socket.  Safe to call more than once, and from
        another thread or a signal handler while a call waits: that call wakes at once."""
        if self.closed == 1:
            return
        self._close_requested = True
        claim = self._take()
        if claim is None:
            with contextlib.suppress(OSError):
                self._wake_writer.send(CLOSE)  # the busy call finishes the close
            return
        try:
            self._finish_close()
        finally:
            self._give_back(claim)

    def _finish_close(self) -> None:
        with self._closing:
            if self.closed == 1:
                return
            self._terminate()

    def _terminate(self) -> None:
        goodbye = self.machine.terminate()
        if self._transport is not None and goodbye:
            with contextlib.suppress(OSError, TimeoutError):
                self._transport.sendall(goodbye, time.monotonic() + TERMINATE_TIMEOUT)
        self._drop()
        self.closed = 1
        for sock in (self._wake_reader, self._wake_writer):
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = {0: "open", 1: "closed", 2: "broken"}[self.closed]
        return f"<pgwire_pubsub.Connection {state} {self.params!r}>"

    def __del__(self) -> None:
        if getattr(self, "_transport", None) is not None:
            self._drop()


_CALL_CODE = Connection._call.__code__


def _request(request: Any) -> Generator[Any, Any, Any]:
    """A procedure of one request."""
    return (yield request)


def connect_raw(dsn: Optional[str] = None, **kwargs: Any) -> Connection:
    """A plain ``Connection`` (the PubSub wrapper is ``pgwire_pubsub.connect``)."""
    return Connection(make_params(dsn, **kwargs))
