"""A connected socket (plain or TLS) and its session's ``Machine``: the blocking driver's
byte mover, which runs protocol steps and feeds what arrives to the machine."""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import ssl
import threading
import time
from typing import Any, Callable, Optional, TypeVar

from .._shared.session import socket_error
from ..protocol import steps
from ..protocol.machine import Machine

T = TypeVar("T")
R = TypeVar("R")

# Reads of at most 32 KiB: a burst's bytes, their pieces and the strings made of them
# then stay in the CPU's caches (256 KiB reads took 30% more CPU per notification).
RECV_SIZE = 1 << 15


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until ``deadline`` (a ``time.monotonic`` value); None for no deadline."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timeout expired")
    return left


_INTERRUPTS = {int(signal.SIGINT), int(signal.SIGTERM)}

# The C function: signal.pthread_sigmask wraps it to turn every number into an enum,
# which costs more than the system call on this path.
_sigmask: Any = getattr(getattr(signal, "_signal", signal), "pthread_sigmask", None)
_CAN_MASK = _sigmask is not None
_MAIN_THREAD = threading.main_thread().ident


CLOSE = b"\0"  # written to the wakeup socket by close()
NUDGE = b"\1"  # written to end one wait early (a command waits for the reader thread)


class Woken(Exception):
    """Another thread (or a signal handler) asked the waiting one to stop."""


class SocketIO:
    """Moves bytes for protocol steps; waits with ``select`` (minding TLS-buffered bytes).

    ``wakeup`` is the reading end of a socket pair: a byte written to the
    other end makes every wait raise ``Woken`` at once.
    """

    def __init__(self, sock: socket.socket, machine: Machine) -> None:
        self.sock = sock
        self.machine = machine
        self.wakeup: Optional[socket.socket] = None
        self.last_activity = time.monotonic()
        self.sending = False  # True while a message may be half written
        # True while received bytes may be half taken in: deferring interrupts cannot
        # hold back a handler whose signal another thread took, so one may still land here.
        self.receiving = False
        self.held: Optional[Any] = None  # the signal mask to put back, while one is changed
        self._buffer = memoryview(bytearray(RECV_SIZE))

    @property
    def uses_tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def run(self, step: steps.Step[T], deadline: Optional[float] = None) -> T:
        """Drive ``step`` to its end.  Socket failures mark the machine lost and raise
        ``OperationalError``."""
        try:
            out = next(step)
            while True:
                if out is None:
                    self.feed(deadline)
                else:
                    self.sending = True
                    self.sendall(out, deadline)
                    self.sending = False
                out = step.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except (OSError, TimeoutError) as exc:
            self.machine.mark_lost()
            raise socket_error(exc) from None

    def feed(self, deadline: Optional[float]) -> None:
        """Wait for input until ``deadline`` (``TimeoutError`` then) and feed it to the
        machine."""
        while not self.wait_readable(remaining(deadline)):
            pass  # nudged (the wait is not over) or the deadline passed (remaining raises)
        self.take_in(self.machine.receive_data)

    def take_in(self, consume: Callable[[bytes], R]) -> Optional[R]:
        """``consume`` what has arrived, with Ctrl-C and SIGTERM held meanwhile; None when
        nothing complete had arrived.

        An interrupt raised half-way through would lose bytes and break the stream; held,
        it is raised right after, at a clean point.  The hold works when the main thread
        takes the signal: when another thread does, Python still runs the handler here,
        and ``receiving`` is left set, for the caller to mark the stream untrustworthy.
        """
        # pthread_sigmask runs the handlers of signals already due right after changing
        # the mask, and a handler may run at any point of this method, even in the finally
        # before the mask is put back.  So the mask as it was is read before anything
        # changes and kept in ``held`` until it is put back: if an interrupt skips that,
        # the caller's own cleanup, or the next take_in, puts it back.
        masking = self._can_mask()
        if masking:
            if self.held is not None:
                self.release_interrupts()
            saved = _sigmask(signal.SIG_BLOCK, ())
        try:
            if masking:
                self.held = saved
                _sigmask(signal.SIG_BLOCK, _INTERRUPTS)
            self.receiving = True
            data = self.read_available()
            result = None if data is None else consume(data)
            self.receiving = False
        except Exception:
            self.receiving = False
            raise
        finally:
            if masking:
                self.release_interrupts()
        return result

    def release_interrupts(self) -> None:
        """Put back the signal mask ``take_in`` changed, if an interrupt kept it from
        doing so; nothing otherwise."""
        held = self.held
        if held is not None:
            _sigmask(signal.SIG_SETMASK, held)  # due handlers run here, once it is back
            self.held = None

    @staticmethod
    def _can_mask() -> bool:
        """Signals reach Python code only in the main thread."""
        return _CAN_MASK and threading.get_ident() == _MAIN_THREAD

    def _nonblocking(self) -> socket.socket:
        """The socket, in non-blocking mode: every wait is our own select, with its deadline
        (switched once, so that no call pays a system call for it)."""
        sock = self.sock
        if sock.gettimeout() != 0.0:
            sock.settimeout(0.0)
        return sock

    def sendall(self, data: bytes, deadline: Optional[float] = None) -> None:
        sock = self._nonblocking()
        view = memoryview(data)
        while view:
            try:
                view = view[sock.send(view) :]
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                _, writable, _ = select.select([], [sock], [], remaining(deadline))
                if not writable:
                    raise TimeoutError("timeout expired") from None
        self.last_activity = time.monotonic()

    def read_available(self) -> Optional[bytes]:
        """What has arrived, without waiting: bytes, ``b""`` at end of stream, or None when
        nothing is complete yet (e.g. part of a TLS record).  Call it once select said
        readable, with interrupts deferred, so that nothing read can be lost."""
        sock = self._nonblocking()
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return sock.recv(sock.pending())
        try:
            size = sock.recv_into(self._buffer)
        except (BlockingIOError, ssl.SSLWantReadError):
            return None
        self.last_activity = time.monotonic()
        # One reused buffer: no allocation per read, only the copy of what came.
        return self._buffer[:size].tobytes()

    def wait_readable(self, timeout: Optional[float]) -> bool:
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        wakeup = self.wakeup
        waiting = [sock] if wakeup is None else [sock, wakeup]
        readable, _, _ = select.select(waiting, [], [], timeout)
        if wakeup is not None and wakeup in readable:
            # NUDGE only ends this wait (it is taken); CLOSE ends every wait (it stays).
            seen = wakeup.recv(64, socket.MSG_PEEK)
            if CLOSE in seen:
                raise Woken()
            wakeup.recv(len(seen))
            return sock in readable
        return bool(readable)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
