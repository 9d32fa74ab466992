"""Bytes of backend messages, for the scripted fake backend (fakebackend.py) and for tests
that feed a client server input themselves; and counted, for tests that wait until a real
server's notifications sit unread in a socket.

Well-formed messages come from ``pgwire_pubsub.protocol.backend`` (the short names here
are its functions, with defaults that suit tests).  Malformed ones are built by hand from
``msg``, ``i16``, ``i32`` and ``cstr``, which check nothing.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from typing import Dict, List, Optional, Union

from ..protocol import backend
from ..protocol.backend import authentication as auth
from ..protocol.backend import authentication_cleartext_password as auth_cleartext
from ..protocol.backend import authentication_md5_password as auth_md5
from ..protocol.backend import authentication_ok as auth_ok
from ..protocol.backend import column as column
from ..protocol.backend import command_complete as command_complete
from ..protocol.backend import error_response as error_response
from ..protocol.backend import notification_response as notify
from ..protocol.backend import parameter_status as parameter_status

__all__ = [
    "auth", "auth_cleartext", "auth_md5", "auth_ok", "auth_sasl", "backend_key", "column",
    "command_complete", "cstr", "data_row", "error", "error_response", "fields", "i16", "i32",
    "msg", "notice", "notification_size", "notify", "parameter_status", "ready",
    "row_description", "split", "unread_bytes",
]


def i16(value: int) -> bytes:
    return struct.pack("!h", value)


def i32(value: int) -> bytes:
    return struct.pack("!i", value)


def cstr(text: str) -> bytes:
    return text.encode("utf-8") + b"\0"


def msg(kind: bytes, body: bytes = b"") -> bytes:
    """A whole message: type byte, length (counting itself), body."""
    return kind + i32(len(body) + 4) + body


def fields(items: Dict[str, str]) -> bytes:
    """The field list of an ErrorResponse or NoticeResponse: code, value, ..., NUL."""
    return b"".join(code.encode("ascii") + cstr(value) for code, value in items.items()) + b"\0"


def auth_sasl(*mechanisms: str) -> bytes:
    """AuthenticationSASL: the mechanisms the server offers, then an empty name."""
    return backend.authentication_sasl(mechanisms)


def backend_key(pid: int = 4242, key: Union[int, bytes] = 1234) -> bytes:
    """BackendKeyData: the server process id and the cancellation key (an int is sent as
    protocol 3.0's four bytes; protocol 3.2's keys are longer)."""
    return backend.backend_key_data(pid, key)


def ready(status: str = "I") -> bytes:
    """ReadyForQuery; ``status`` is one character, valid ("I", "T", "E") or not."""
    return msg(b"Z", status.encode("ascii"))


def row_description(*names: str) -> bytes:
    return backend.row_description(names)


def data_row(*values: Optional[bytes]) -> bytes:
    """A DataRow; None is SQL NULL (length -1)."""
    return backend.data_row(values)


def error(code: str, message: str, severity: str = "ERROR") -> bytes:
    """An ErrorResponse with the fields a server always sends: severity (S, V), SQLSTATE,
    message."""
    return error_response({"S": severity, "V": severity, "C": code, "M": message})


def notice(message: str, severity: str = "NOTICE") -> bytes:
    """A NoticeResponse with the fields a server always sends, SQLSTATE 00000."""
    return backend.notice_response({"S": severity, "V": severity, "C": "00000", "M": message})


def notification_size(channel: str, payload: str) -> int:
    """Bytes of the NotificationResponse that carries ``payload`` on ``channel``."""
    return len(notify(0, channel, payload))


def unread_bytes(fileno: int) -> int:
    """Bytes the kernel has received on the socket ``fileno`` and nobody has read yet."""
    raw = fcntl.ioctl(fileno, termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


def split(data: bytes, cuts: List[int]) -> List[bytes]:
    """``data`` cut at every offset in ``cuts`` (past the end: at the end), in order."""
    points = sorted({min(c, len(data)) for c in cuts})
    chunks, start = [], 0
    for point in [*points, len(data)]:
        chunks.append(data[start:point])
        start = point
    return chunks
