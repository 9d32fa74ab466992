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


_SIZES = (RECV_SIZE,)  # one read of at most this many bytes (see _read_into); to read
# less (tests, benchmarks), set this, not RECV_SIZE

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
        # TLS only (see _read_tls): True while decrypted bytes may be dropped by an
        # interrupt, and the signal mask to put back while one is changed.
        self.receiving = False
        self.held: Optional[Any] = None

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
                    # ``sending`` is set before the first byte and cleared after the
                    # machine's ``unsent``: an interrupt leaves one of them set (see
                    # Connection._call).
                    self.sending = True
                    self.sendall(out, deadline)
                    self.machine.unsent = False
                    self.sending = False
                out = step.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except (OSError, TimeoutError) as exc:
            self.machine.mark_lost()
            raise socket_error(exc) from None

    def feed(self, deadline: Optional[float]) -> None:
        """Wait for input until ``deadline`` (``TimeoutError`` then) and feed it to the
        machine; at once when it has bytes an interrupt left half taken in."""
        if self.machine.take_in():
            return
        while not self.wait_readable(remaining(deadline)):
            pass  # nudged (the wait is not over) or the deadline passed (remaining raises)
        self.take_in()

    def take_in(self) -> None:
        """Read what has arrived (call it once select said readable) and feed it to the
        machine.  The bytes land in the machine's own buffer, which it takes in as one
        commit (see protocol/_receiving.py): Ctrl-C or SIGTERM at any point loses
        nothing, and the next ``feed`` (or ``Machine.take_in``) finishes the rest."""
        machine = self.machine
        buffer = machine.inbound
        before = len(buffer)
        if not self._read_into(buffer):
            return  # nothing complete yet (part of a TLS record)
        if len(buffer) == before:
            machine.receive_data(b"")  # the end of the stream: raises why
        self.last_activity = time.monotonic()
        machine.take_in()

    def _read_into(self, buffer: bytearray) -> bool:
        """Append what has arrived to ``buffer`` (nothing at the end of the stream); False
        when nothing complete had arrived."""
        sock = self._nonblocking()
        try:
            if type(sock) is socket.socket:
                # buffer += sock.recv(RECV_SIZE) in one C call: no Python code runs
                # between the system call returning the bytes and their landing in the
                # buffer, so no signal handler can raise in between and lose them.
                any(map(buffer.extend, map(sock.recv, _SIZES)))
            else:
                self._read_tls(buffer, _tls_reader(sock))
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        except ssl.SSLEOFError:
            pass  # the peer closed without TLS's goodbye: the end of the stream
        return True

    def _read_tls(self, buffer: bytearray, read: Callable[[int], bytes]) -> None:
        """``read`` (a TLS socket's) into ``buffer``, with Ctrl-C and SIGTERM held.

        CPython's ssl module runs signal handlers inside its read, after the bytes were
        decrypted, and drops them when one raises; held, the interrupt is raised right
        after, at a clean point.  The hold works when the main thread takes the signal:
        when another thread does, Python may still run the handler in the read, and
        ``receiving`` is left set, for the caller to mark the stream untrustworthy.

        pthread_sigmask runs the handlers of signals already due right after changing
        the mask, and a handler may run at any point here, even in the finally before
        the mask is put back.  So the mask as it was is read before anything changes and
        kept in ``held`` until it is put back: if an interrupt skips that, the caller's
        own cleanup, or the next read, puts it back.
        """
        masking = _CAN_MASK and threading.get_ident() == _MAIN_THREAD
        if masking:
            if self.held is not None:
                self.release_interrupts()
            saved = _sigmask(signal.SIG_BLOCK, ())
        try:
            if masking:
                self.held = saved
                _sigmask(signal.SIG_BLOCK, _INTERRUPTS)
            self.receiving = True
            any(map(buffer.extend, map(read, _SIZES)))  # (see _read_into)
            self.receiving = False
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLEOFError):
            self.receiving = False
            raise
        finally:
            if masking:
                self.release_interrupts()

    def release_interrupts(self) -> None:
        """Put back the signal mask ``_read_tls`` changed, if an interrupt kept it from
        doing so; nothing otherwise."""
        held = self.held
        if held is not None:
            _sigmask(signal.SIG_SETMASK, held)  # due handlers run here, once it is back
            self.held = None

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


def _tls_reader(sock: socket.socket) -> Callable[[int], bytes]:
    """The read of a TLS socket: the C object's own when the interpreter has one (the
    wrapper's, in Python, could be interrupted between getting the bytes and returning
    them)."""
    own: Any = getattr(sock, "_sslobj", None)
    if own is not None and type(own).__module__ == "_ssl":
        return own.read  # type: ignore[no-any-return]
    return sock.recv
