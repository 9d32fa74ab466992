"""Bytes of backend messages, built by hand for tests that feed the client scripted server
input (test_decoder, test_machine), and counted for tests that wait until a real server's
notifications sit unread in a socket (test_threads, test_backpressure).

Integers are big-endian and signed, as the protocol sends them; strings are UTF-8 and
NUL-terminated.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from typing import Dict


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
