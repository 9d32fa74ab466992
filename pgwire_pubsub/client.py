"""The blocking connection: a thin driver that moves bytes for the protocol core.

All protocol decisions live in ``protocol`` (the state machine and the
steps); this module opens sockets, performs the TLS handshake, enforces
deadlines and turns socket failures into ``OperationalError``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from typing import Any, Deque, Dict, List, Optional, Sequence, TypeVar

from . import tls
from .auth import Authenticator
from .conninfo import ConnParams, make_params
from .errors import InterfaceError, NotSupportedError, OperationalError
from .protocol import flows
from .protocol.machine import Protocol, State
from .protocol.messages import Notify

T = TypeVar("T")

RECV_SIZE = 1 << 18
TERMINATE_TIMEOUT = 2.0


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timeout expired")
    return left


class Connection:
    """One PostgreSQL session over TCP, a Unix socket or TLS.

    ``closed`` is 0 while open, 1 after ``close()``, 2 once the connection is
    lost or broken (as in psycopg2).
    """

    def __init__(self, params: ConnParams) -> None:
        self.params = params
        self._proto = Protocol()
        self._sock: Optional[socket.socket] = None
        self._lost: Optional[OperationalError] = None
        self.closed = 0
        deadline = None
        if params.connect_timeout is not None:
            deadline = time.monotonic() + params.connect_timeout
        try:
            self._establish(deadline)
        except BaseException:
            self._drop()
            self.closed = 2
            raise

    # -- start-up --------------------------------------------------------

    def _establish(self, deadline: Optional[float]) -> None:
        plan = tls.attempts(self.params.sslmode, self.params.uses_unix_socket)
        for number, want_tls in enumerate(plan, 1):
            try:
                self._attempt(want_tls, deadline)
                return
            except OperationalError:
                if number == len(plan):
                    raise
                self._drop()
                self._proto = Protocol()
                self._lost = None
                self.closed = 0

    def _attempt(self, want_tls: bool, deadline: Optional[float]) -> None:
        params = self.params
        self._sock = self._open_socket(deadline)
        if want_tls:
            context = tls.make_context(params.sslmode, params.sslrootcert)
            if self._run(flows.negotiate_tls(), deadline):
                self._sock = self._wrap_tls(self._sock, context, deadline)
            elif tls.tls_required(params.sslmode):
                raise OperationalError(
                    f"the server does not support TLS, but sslmode={params.sslmode} "
                    "requires it"
                )
        auth = Authenticator(params.user, params.password)
        self._run(flows.startup(self._proto, params.startup_parameters(), auth), deadline)

    def _describe_target(self) -> str:
        if self.params.uses_unix_socket:
            return f'connection to server on socket "{self.params.unix_socket_path}" failed'
        return f'connection to server at "{self.params.host}", port {self.params.port} failed'

    def _open_socket(self, deadline: Optional[float]) -> socket.socket:
        params = self.params
        try:
            if params.uses_unix_socket:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(_remaining(deadline))
                    sock.connect(params.unix_socket_path)
                except BaseException:
                    sock.close()
                    raise
            else:
                address = params.hostaddr or params.host
                sock = socket.create_connection((address, params.port), _remaining(deadline))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except (OSError, TimeoutError) as exc:
            hint = "Is the server running and accepting connections?"
            reason = "timeout expired" if isinstance(exc, (TimeoutError, socket.timeout)) else exc
            raise OperationalError(f"{self._describe_target()}: {reason}. {hint}") from None
        return sock

    def _wrap_tls(
        self, sock: socket.socket, context: ssl.SSLContext, deadline: Optional[float]
    ) -> socket.socket:
        server_hostname = None if self.params.uses_unix_socket else self.params.host
        try:
            sock.settimeout(_remaining(deadline))
            return context.wrap_socket(sock, server_hostname=server_hostname)
        except ssl.SSLCertVerificationError as exc:
            raise OperationalError(
                f"{self._describe_target()}: the server's TLS certificate failed "
                f"verification (sslmode={self.params.sslmode}): {exc.verify_message}"
            ) from None
        except (OSError, TimeoutError) as exc:
            target = self._describe_target()
            reason = "timeout expired" if isinstance(exc, (TimeoutError, socket.timeout)) else exc
            raise OperationalError(f"{target}: TLS handshake failed: {reason}") from None

    # -- the driver ------------------------------------------------------

    def _run(self, step: flows.Step[T], deadline: Optional[float] = None) -> T:
        """Drive a protocol step to its end, sending and reading as it asks."""
        sock = self._sock
        assert sock is not None
        try:
            out = next(step)
            while True:
                if out is None:
                    out = step.send(self._recv(sock, deadline))
                else:
                    sock.settimeout(_remaining(deadline))
                    sock.sendall(out)
                    out = step.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except (OSError, TimeoutError) as exc:
            raise self._fail(exc) from None
        except OperationalError as exc:
            if self._proto.state is State.CLOSED:
                self._fail(exc)
            raise

    def _recv(self, sock: socket.socket, timeout_at: Optional[float]) -> bytes:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return sock.recv(sock.pending())
        if not self._wait_readable(sock, _remaining(timeout_at)):
            raise TimeoutError("timeout expired")
        sock.settimeout(_remaining(timeout_at))
        return sock.recv(RECV_SIZE)

    @staticmethod
    def _wait_readable(sock: socket.socket, timeout: Optional[float]) -> bool:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        readable, _, _ = select.select([sock], [], [], timeout)
        return bool(readable)

    def _fail(self, exc: BaseException) -> OperationalError:
        """Mark the connection lost; the error to raise now and on every later call."""
        if isinstance(exc, OperationalError):
            error = exc
        elif isinstance(exc, (TimeoutError, socket.timeout)):
            error = OperationalError("timeout expired while talking to the server")
        else:
            error = OperationalError(f"connection to the server was lost: {exc}")
        self._lost = error
        self._proto.mark_lost()
        self._drop()
        self.closed = 2
        return error

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _check_open(self) -> socket.socket:
        if self.closed == 1:
            raise InterfaceError("connection already closed")
        if self._lost is not None:
            raise self._lost
        assert self._sock is not None
        return self._sock

    # -- what the PubSub layer uses --------------------------------------

    def execute(self, sql: str, params: Optional[Sequence[Optional[str]]] = None) -> List[Any]:
        """Run SQL; with ``params`` ($1, $2... as text), one statement by the extended protocol."""
        self._check_open()
        try:
            if params is None:
                return self._run(flows.simple_query(self._proto, sql))
            return self._run(flows.extended_query(self._proto, sql, params))
        finally:
            if self._proto.parameters.get("client_encoding", "UTF8") != "UTF8" and not self.closed:
                self._restore_utf8()

    def _restore_utf8(self) -> None:
        changed = self._proto.parameters.get("client_encoding")
        self._run(flows.simple_query(self._proto, "SET client_encoding TO 'UTF8'"))
        raise NotSupportedError(
            f"client_encoding was changed to {changed}; pgwire_pubsub always speaks UTF8 "
            "(every str is sent and received as Unicode), so it has been set back to UTF8"
        )

    @property
    def notifications(self) -> Deque[Notify]:
        """Notifications received and not yet taken, oldest first."""
        return self._proto.notifications

    def wait_notifications(self, timeout: Optional[float]) -> None:
        """Wait up to ``timeout`` seconds (None: forever) for data, and take in what came.

        Returns at once when notifications are already waiting.  When the
        connection is lost, raises only once every notification received
        before the loss has been taken.
        """
        if self._proto.notifications:
            return
        sock = self._check_open()
        try:
            if not self._wait_readable(sock, timeout):
                return
            sock.settimeout(None)
            data = self._recv(sock, None)
            self._proto.receive_data(data)
        except (OSError, OperationalError) as exc:
            error = self._fail(exc)
            if not self._proto.notifications:
                raise error from None

    def poll(self) -> None:
        """Take in whatever has arrived, without waiting (psycopg2's ``poll``)."""
        self.wait_notifications(0)

    # -- psycopg2-style attributes ---------------------------------------

    def fileno(self) -> int:
        return self._check_open().fileno()

    def get_backend_pid(self) -> int:
        return self._proto.backend_pid or 0

    def get_parameter_status(self, name: str) -> Optional[str]:
        return self._proto.parameters.get(name)

    @property
    def parameters(self) -> Dict[str, str]:
        """Run-time parameters the server reported (server_version, TimeZone...)."""
        return dict(self._proto.parameters)

    @property
    def server_version(self) -> int:
        """As psycopg2 reports it: 15.4 is 150004, 9.6.3 is 90603."""
        text = self._proto.parameters.get("server_version", "0").split()[0]
        parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")]
        if parts[0] >= 10:
            return parts[0] * 10000 + (parts[1] if len(parts) > 1 else 0)
        parts += [0, 0]
        return parts[0] * 10000 + parts[1] * 100 + parts[2]

    @property
    def notices(self) -> List[str]:
        """The server's last notices and warnings (at most 50), oldest first."""
        return self._proto.notices

    @property
    def transaction_status(self) -> Optional[str]:
        return self._proto.transaction_status

    def close(self) -> None:
        """Send Terminate and close the socket.  Safe to call more than once."""
        if self.closed == 1:
            return
        goodbye = self._proto.terminate()
        if self._sock is not None and goodbye:
            try:
                self._sock.settimeout(TERMINATE_TIMEOUT)
                self._sock.sendall(goodbye)
            except OSError:
                pass
        self._drop()
        self.closed = 1

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = {0: "open", 1: "closed", 2: "broken"}[self.closed]
        return f"<pgwire_pubsub.Connection {state} {self.params!r}>"

    def __del__(self) -> None:
        if getattr(self, "_sock", None) is not None:
            self._drop()


def connect_raw(dsn: Optional[str] = None, **kwargs: Any) -> Connection:
    """A plain ``Connection`` (the PubSub wrapper is ``pgwire_pubsub.connect``)."""
    return Connection(make_params(dsn, **kwargs))
