"""Bytes of backend messages, built by hand for tests that feed the client scripted server
input (test_decoder, test_machine).

Integers are big-endian and signed, as the protocol sends them; strings are UTF-8 and
NUL-terminated.
"""

from __future__ import annotations

import struct
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
