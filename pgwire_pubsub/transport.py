"""A connected socket (plain or TLS) and the blocking driver that runs protocol steps on it."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from typing import Optional, TypeVar

from .errors import OperationalError
from .protocol import flows
from .protocol.machine import Protocol

T = TypeVar("T")

RECV_SIZE = 1 << 18


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until ``deadline`` (a ``time.monotonic`` value); None for no deadline."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timeout expired")
    return left


def socket_error(exc: BaseException) -> OperationalError:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return OperationalError("timeout expired while talking to the server")
    return OperationalError(f"connection to the server was lost: {exc}")


class Transport:
    """Moves bytes for protocol steps; waits with ``select`` (minding TLS-buffered bytes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @property
    def uses_tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def run(self, step: flows.Step[T], proto: Protocol, deadline: Optional[float] = None) -> T:
        """Drive ``step`` to its end.  Socket failures mark ``proto`` lost and raise
        ``OperationalError``."""
        try:
            out = next(step)
            while True:
                if out is None:
                    out = step.send(self.recv(deadline))
                else:
                    self.sendall(out, deadline)
                    out = step.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except (OSError, TimeoutError) as exc:
            proto.mark_lost()
            raise socket_error(exc) from None

    def sendall(self, data: bytes, deadline: Optional[float] = None) -> None:
        self.sock.settimeout(remaining(deadline))
        self.sock.sendall(data)

    def recv(self, deadline: Optional[float] = None) -> bytes:
        """The next bytes received (``b""`` at end of stream), waiting until ``deadline``."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return sock.recv(sock.pending())
        if not self.wait_readable(remaining(deadline)):
            raise TimeoutError("timeout expired")
        sock.settimeout(remaining(deadline))
        return sock.recv(RECV_SIZE)

    def wait_readable(self, timeout: Optional[float]) -> bool:
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], timeout)
        return bool(readable)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
