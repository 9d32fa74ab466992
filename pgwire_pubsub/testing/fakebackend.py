"""A scripted fake PostgreSQL server, for behaviour a real server cannot be made to show.

    def script(conn: FakeConn) -> None:
        version, params = conn.read_startup()
        conn.auth_ok()
        conn.ready()
        assert conn.read_message()[0] == b"X"  # Terminate

    with FakeServer(script) as srv:
        connect(host=srv.host, port=srv.port, ...)

The script runs in a thread for each accepted connection (``connections``, default 1).
An exception in the script is kept in ``.error`` and re-raised by ``__exit__`` unless
``check=False`` (for tests where the client is expected to break the conversation).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from . import wirebytes

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3_0 = 196608


class FakeConn:
    def __init__(self, sock: socket.socket, server: FakeServer, index: int) -> None:
        self.sock = sock
        self.server = server
        self.index = index  # 0 for the first connection, 1 for the next...
        sock.settimeout(server.timeout)

    # -- reading -------------------------------------------------------------
    def recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError(f"client closed the connection ({len(buf)}/{n} bytes read)")
            buf += chunk
        return buf

    def read_until_eof(self) -> bytes:
        """Every byte the client sends until it closes (or resets) the connection."""
        data = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except ConnectionResetError:
            return data

    def read_startup(self) -> Tuple[int, Dict[str, str]]:
        """Read the startup packet, answering SSL/GSS encryption requests on the way.

        For a CancelRequest, returns (CANCEL_REQUEST, {'pid': ..., 'key': ...}).
        """
        while True:
            (length,) = struct.unpack("!i", self.recv_exact(4))
            body = self.recv_exact(length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code == SSL_REQUEST:
                if not self.server.expect_ssl_request:
                    raise AssertionError("unexpected SSLRequest")
                self.send(self.server.ssl_response)
                if self.server.ssl_response == b"S":
                    assert self.server.ssl_context is not None, "b'S' needs ssl_context"
                    self.sock = self.server.ssl_context.wrap_socket(self.sock, server_side=True)
                continue
            if code == GSSENC_REQUEST:
                self.send(b"N")
                continue
            if code == CANCEL_REQUEST:
                pid, key = struct.unpack("!ii", body[4:12])
                return code, {"pid": str(pid), "key": str(key)}
            parts = body[4:].split(b"\0")
            params = {k.decode(): v.decode() for k, v in zip(parts[0:-2:2], parts[1:-1:2])}
            return code, params

    def read_message(self) -> Tuple[bytes, bytes]:
        """One frontend message as (type byte, body); EOFError when the client closed."""
        header = self.recv_exact(5)
        (length,) = struct.unpack("!i", header[1:])
        return header[:1], self.recv_exact(length - 4)

    def read_query(self) -> str:
        """Read a simple Query ('Q') message and return its SQL text."""
        kind, body = self.read_message()
        assert kind == b"Q", f"expected Query, got {kind!r}"
        return body.rstrip(b"\0").decode()

    # -- writing -------------------------------------------------------------
    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def send_message(self, kind: bytes, body: bytes = b"") -> None:
        self.send(wirebytes.msg(kind, body))

    def auth_request(self, code: int, data: bytes = b"") -> None:
        self.send(wirebytes.auth(code, data))

    def auth_ok(self) -> None:
        self.send(wirebytes.auth_ok())

    def parameter_status(self, key: str, value: str) -> None:
        self.send(wirebytes.parameter_status(key, value))

    def backend_key(self, pid: int, key: int) -> None:
        self.send(wirebytes.backend_key(pid, key))

    def ready(self, status: str = "I") -> None:
        self.send(wirebytes.ready(status))

    def command_complete(self, tag: str) -> None:
        self.send(wirebytes.command_complete(tag))

    def notification(self, pid: int, channel: str, payload: str) -> None:
        self.send(wirebytes.notify(pid, channel, payload))

    def error(self, fields: Dict[str, str], kind: bytes = b"E") -> None:
        """ErrorResponse (or NoticeResponse with kind=b'N'); keys are field codes: S, C, M..."""
        self.send(wirebytes.msg(kind, wirebytes.fields(fields)))

    def handshake(self, pid: int = 4242, key: int = 1234) -> Dict[str, str]:
        """Accept the startup without a password, as a trust server would; return its params."""
        _, params = self.read_startup()
        self.auth_ok()
        for k, v in (("server_version", "15.0"), ("server_encoding", "UTF8"),
                     ("client_encoding", "UTF8"), ("integer_datetimes", "on"),
                     ("standard_conforming_strings", "on")):
            self.parameter_status(k, v)
        self.backend_key(pid, key)
        self.ready()
        return params

    def close(self) -> None:
        self.sock.close()


class FakeServer:
    host = "127.0.0.1"

    def __init__(self, script: Callable[[FakeConn], None], *, connections: int = 1,
                 expect_ssl_request: bool = False, ssl_response: bytes = b"N",
                 ssl_context: Optional[ssl.SSLContext] = None, timeout: float = 10.0,
                 check: bool = True) -> None:
        self.script = script
        self.connections = connections
        self.expect_ssl_request = expect_ssl_request
        self.ssl_response = ssl_response
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.check = check
        self.error: Optional[BaseException] = None
        self.accepted = 0
        self.conns: List[FakeConn] = []
        self._stop = threading.Event()
        self._listener = socket.create_server((self.host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="fakeserver", daemon=True)

    def _serve(self) -> None:
        self._listener.settimeout(0.05)
        try:
            while self.accepted < self.connections:
                try:
                    sock, _ = self._listener.accept()
                except socket.timeout:
                    if self._stop.is_set():  # only once no connection is waiting
                        break
                    continue
                conn = FakeConn(sock, self, self.accepted)
                self.accepted += 1
                self.conns.append(conn)
                try:
                    self.script(conn)
                finally:
                    conn.close()
        except BaseException as e:
            self.error = e
        finally:
            self._listener.close()

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._stop.set()  # stops waiting for connections that never came
        deadline = time.monotonic() + self.timeout + 2
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            for conn in self.conns:
                conn.close()
            self._thread.join(2)
            self.error = self.error or TimeoutError("fake server script did not finish")
        if self.check and exc_type is None and self.error is not None:
            raise self.error


def split_messages(data: bytes) -> List[Tuple[bytes, bytes]]:
    """Frontend messages as (type, body) pairs."""
    out = []
    while data:
        (length,) = struct.unpack("!i", data[1:5])
        out.append((data[:1], data[5 : 1 + length]))
        data = data[1 + length :]
    return out
