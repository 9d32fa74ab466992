"""Bytes of backend messages, built by hand: for the scripted fake server (fakeserver.py)
and the tests that feed the client server input themselves (test_decoder, test_machine,
test_events_unit, test_pending, test_fake_server); and counted, for tests that wait until a
real server's notifications sit unread in a socket (test_threads, test_backpressure).

Integers are big-endian and signed, as the protocol sends them; strings are UTF-8 and
NUL-terminated.  Malformed messages are built in the tests themselves, from ``msg``,
``i16``, ``i32`` and ``cstr``.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from typing import Dict, List, Optional, Union


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


# -- start-up --------------------------------------------------------------------


def auth(code: int, data: bytes = b"") -> bytes:
    """An authentication request (or AuthenticationOk, code 0): code, then ``data``."""
    return msg(b"R", i32(code) + data)


def auth_ok() -> bytes:
    return auth(0)


def auth_cleartext() -> bytes:
    return auth(3)


def auth_md5(salt: bytes) -> bytes:
    return auth(5, salt)


def auth_sasl(*mechanisms: str) -> bytes:
    """AuthenticationSASL: the mechanisms the server offers, then an empty name."""
    return auth(10, b"".join(cstr(name) for name in mechanisms) + b"\0")


def parameter_status(name: str, value: str) -> bytes:
    return msg(b"S", cstr(name) + cstr(value))


def backend_key(pid: int = 4242, key: Union[int, bytes] = 1234) -> bytes:
    """BackendKeyData: the server process id and the cancellation key (an int is sent as
    protocol 3.0's four bytes; protocol 3.2's keys are longer)."""
    return msg(b"K", i32(pid) + (i32(key) if isinstance(key, int) else key))


def ready(status: str = "I") -> bytes:
    """ReadyForQuery; ``status`` is one character, valid ("I", "T", "E") or not."""
    return msg(b"Z", status.encode("ascii"))


# -- query results ---------------------------------------------------------------


def column(name: str) -> bytes:
    """One column of a RowDescription: a text column of no table, in text format."""
    # table oid, column number, type oid, type size, type modifier, format code
    return cstr(name) + i32(0) + i16(0) + i32(25) + i16(-1) + i32(-1) + i16(0)


def row_description(*names: str) -> bytes:
    return msg(b"T", i16(len(names)) + b"".join(column(name) for name in names))


def data_row(*values: Optional[bytes]) -> bytes:
    """A DataRow; None is SQL NULL (length -1)."""
    body = i16(len(values))
    for value in values:
        body += i32(-1) if value is None else i32(len(value)) + value
    return msg(b"D", body)


def command_complete(tag: str) -> bytes:
    return msg(b"C", cstr(tag))


def error_response(items: Dict[str, str]) -> bytes:
    """An ErrorResponse with exactly the fields ``items``, in their order."""
    return msg(b"E", fields(items))


def error(code: str, message: str, severity: str = "ERROR") -> bytes:
    """An ErrorResponse with the fields a server always sends: severity (S, V), SQLSTATE,
    message."""
    return error_response({"S": severity, "V": severity, "C": code, "M": message})


def notice(message: str, severity: str = "NOTICE") -> bytes:
    """A NoticeResponse with the fields a server always sends, SQLSTATE 00000."""
    return msg(b"N", fields({"S": severity, "V": severity, "C": "00000", "M": message}))


# -- notifications ---------------------------------------------------------------


def notify(pid: int, channel: str, payload: str = "") -> bytes:
    """A NotificationResponse."""
    return msg(b"A", i32(pid) + cstr(channel) + cstr(payload))


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
