"""One client connection of a ``FakeBackend``, as its script sees it.

Reading: ``receive()`` returns the client's next message, typed (see
``pgwire_pubsub.protocol``); ``receive_startup()`` answers SSLRequest and
GSSENCRequest on the way to the StartupMessage; ``read_message()`` and friends
give raw bytes.  Writing: ``send_messages(*messages)`` sends typed backend
messages, ``send(raw)`` any bytes; short helpers cover a session's usual
replies.  Every write goes through the backend's faults (stop answering,
byte-by-byte delivery).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING, Dict, List, Tuple, Union

from ..protocol import backend
from ..protocol import frontend_messages as f
from ..protocol import messages as m
from ..protocol.codec import Message, build
from ..protocol.frontend import CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE
from ..protocol.frontend_decoder import FrontendDecoder
from . import _fakeauth

if TYPE_CHECKING:
    from .fakebackend import FakeBackend

SSL_REQUEST = SSL_REQUEST_CODE
GSSENC_REQUEST = GSSENC_REQUEST_CODE
CANCEL_REQUEST = CANCEL_REQUEST_CODE
PROTOCOL_3_0 = 196608

# What a server reports at startup, as ParameterStatus messages.
STARTUP_PARAMETERS = {
    "server_version": "15.0",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
}


class FakeConn:
    def __init__(self, sock: socket.socket, server: FakeBackend, index: int) -> None:
        self.sock = sock
        self.server = server
        self.index = index  # 0 for the first connection, 1 for the next...
        self.pid = 0  # the backend pid it reports (BackendKeyData), once it has one
        self.closed = False
        self._send_lock = threading.Lock()
        self._held: List[bytes] = []
        # A script waits for its client at most ``timeout``; a pub/sub session for ever.
        sock.settimeout(server.timeout if server.script is not None else None)

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

    def receive(self, password_type: f.PasswordKind = f.PasswordMessage) -> f.FrontendMessage:
        """The client's next message (a ``p`` message as ``password_type``); EOFError when
        the client closed, ProtocolViolation for bytes that are not a message."""
        decoder = FrontendDecoder(password_type)
        first = self.recv_exact(1)
        head = first + self.recv_exact(3 if first == b"\0" else 4)
        messages = decoder.feed(head)  # checks the type and the length first
        if not messages:
            (length,) = struct.unpack("!i", head[-4:])
            messages = decoder.feed(self.recv_exact(length - 4))
        return messages[0]

    def receive_startup(self) -> Union[f.StartupMessage, f.CancelRequest]:
        """The StartupMessage (or a CancelRequest), answering SSLRequest (``ssl_response``,
        then TLS with ``ssl_context`` on ``b"S"``) and GSSENCRequest (``N``) on the way."""
        while True:
            message = self.receive()
            if isinstance(message, f.SSLRequest):
                if self.server.expect_ssl_request is False:
                    raise AssertionError("unexpected SSLRequest")
                self.send(self.server.ssl_response)
                if self.server.ssl_response == b"S":
                    assert self.server.ssl_context is not None, "b'S' needs ssl_context"
                    self.sock = self.server.ssl_context.wrap_socket(self.sock, server_side=True)
            elif isinstance(message, f.GSSENCRequest):
                self.send(b"N")
            elif isinstance(message, (f.StartupMessage, f.CancelRequest)):
                return message
            else:
                raise AssertionError(f"expected a startup packet, got {message!r}")

    def read_startup(self) -> Tuple[int, Dict[str, str]]:
        """``receive_startup()`` as (protocol version, parameters); for a CancelRequest,
        (CANCEL_REQUEST, {'pid': ..., 'key': ...})."""
        message = self.receive_startup()
        if isinstance(message, f.CancelRequest):
            return CANCEL_REQUEST, {"pid": str(message.pid), "key": str(message.secret_key)}
        return message.protocol_version, message.parameters

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
        """Send ``raw`` as it is, unless the backend stopped answering (then it is held)."""
        with self._send_lock:
            if self.server.answering:
                self._write(raw)
            else:
                self._held.append(raw)

    @property
    def held(self) -> int:
        """Bytes held back while the backend does not answer."""
        with self._send_lock:
            return sum(map(len, self._held))

    def release(self) -> None:
        """Send what was held while the backend did not answer."""
        with self._send_lock:
            held, self._held = b"".join(self._held), []
            if held:
                self._write(held)

    def _write(self, raw: bytes) -> None:
        pause = self.server.trickle_pause
        if pause is None:
            self.sock.sendall(raw)
            return
        for i in range(len(raw)):
            self.sock.sendall(raw[i : i + 1])
            if pause:
                time.sleep(pause)  # the fault itself: bytes delivered slowly

    def send_messages(self, *messages: Message) -> None:
        """Send typed messages (``pgwire_pubsub.protocol``), in one write."""
        self.send(b"".join(map(build, messages)))

    def send_message(self, kind: bytes, body: bytes = b"") -> None:
        self.send(kind + struct.pack("!i", len(body) + 4) + body)

    def auth_request(self, code: int, data: bytes = b"") -> None:
        self.send(backend.authentication(code, data))

    def auth_ok(self) -> None:
        self.send(backend.authentication_ok())

    def parameter_status(self, key: str, value: str) -> None:
        self.send(backend.parameter_status(key, value))

    def backend_key(self, pid: int, key: int) -> None:
        self.send(backend.backend_key_data(pid, key))

    def ready(self, status: str = "I") -> None:
        self.send(backend.ready_for_query(status))

    def command_complete(self, tag: str) -> None:
        self.send(backend.command_complete(tag))

    def notification(self, pid: int, channel: str, payload: str) -> None:
        self.send(backend.notification_response(pid, channel, payload))

    def error(self, fields: Dict[str, str], kind: bytes = b"E") -> None:
        """ErrorResponse (or NoticeResponse with kind=b'N'); keys are field codes: S, C, M..."""
        if kind == b"N":
            self.send(backend.notice_response(fields))
        else:
            self.send(backend.error_response(fields))

    def fatal(self, code: str, message: str) -> None:
        """A FATAL ErrorResponse with SQLSTATE ``code``: what a server says before it
        closes the connection."""
        self.send_messages(m.ErrorResponse({"S": "FATAL", "V": "FATAL", "C": code,
                                            "M": message}))

    def authenticate(self, user: str) -> bool:
        """Authenticate ``user`` by the backend's method (``auth``, ``password``): True once
        AuthenticationOk is sent; False after a FATAL error (wrong password, or the backend
        was told to reject authentication)."""
        return _fakeauth.authenticate(self, user)

    def handshake(self, pid: int = 4242, key: int = 1234) -> Dict[str, str]:
        """Accept the startup as the backend's ``auth`` says (trust by default), report the
        usual parameters, the key and ReadyForQuery; return the startup parameters.
        Raises EOFError once authentication has failed (the client was told why)."""
        _, params = self.read_startup()
        if not self.authenticate(params.get("user", "")):
            raise EOFError("authentication failed")
        self.pid = pid
        self.send_messages(*(m.ParameterStatus(k, v) for k, v in STARTUP_PARAMETERS.items()),
                           m.BackendKeyData(pid, key.to_bytes(4, "big", signed=True)),
                           m.ReadyForQuery("I"))
        return params

    def close(self) -> None:
        """Close the connection now (both directions; a blocked read wakes up)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


def split_messages(data: bytes) -> List[Tuple[bytes, bytes]]:
    """Frontend messages as (type, body) pairs."""
    out = []
    while data:
        (length,) = struct.unpack("!i", data[1:5])
        out.append((data[:1], data[5 : 1 + length]))
        data = data[1 + length :]
    return out


__all__ = ["CANCEL_REQUEST", "GSSENC_REQUEST", "PROTOCOL_3_0", "SSL_REQUEST", "STARTUP_PARAMETERS",
           "FakeConn", "split_messages"]
