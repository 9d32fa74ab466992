"""Incremental decoder for frontend messages, as a server reads them: bytes in any
chunking in, typed messages (``frontend_messages``) out.

The counterpart of ``decoder.Decoder``, and as strict: a message must be exactly
as long as its fields, strings NUL-terminated and valid UTF-8, lengths within
PostgreSQL's own limits.  Anything wrong raises ``ProtocolViolation``, and
nothing else escapes; messages completed before the bad bytes are handed out
first, and the error is raised on the next call.

A packet without a type byte (StartupMessage, SSLRequest, GSSENCRequest,
CancelRequest) is told apart by its first byte: its length is below 10000, so
that byte is 0, which no message type is.  After the server accepts an
SSLRequest the bytes are TLS records: feed the decoder what TLS decrypts.
"""

from __future__ import annotations

from struct import error as StructError
from struct import unpack_from
from typing import List, Optional

from ..errors import ProtocolViolation
from . import frontend_messages as f
from ._bodies import Malformed
from ._frontend_bodies import PARSERS, PASSWORD_TYPE, typed, untyped

MAX_STARTUP_PACKET = 10000  # PostgreSQL's MAX_STARTUP_PACKET_LENGTH
# postgres.c's limits: these types may be long, any other is at most PQ_SMALL_MESSAGE_LIMIT.
LONG_MESSAGE_TYPES = frozenset(b"QPBp")
MAX_SHORT_MESSAGE = 10000
MAX_LONG_MESSAGE = 0x3FFFFFFF
_KNOWN_TYPES = frozenset(PARSERS) | {PASSWORD_TYPE}


class FrontendDecoder:
    """Feed it the client's bytes as they arrive; it returns every message completed so far.

    ``password_type`` says what a message of type ``p`` is: ``PasswordMessage`` (the
    default, after AuthenticationCleartextPassword or AuthenticationMD5Password),
    ``SASLInitialResponse`` (after AuthenticationSASL) or ``SASLResponse`` (after
    AuthenticationSASLContinue).  Set it before feeding the client's answer.
    """

    def __init__(self, password_type: f.PasswordKind = f.PasswordMessage) -> None:
        self.password_type: f.PasswordKind = password_type
        self._tail = bytearray()
        self._need = 0  # bytes the tail must reach before a message can complete
        self._error: Optional[ProtocolViolation] = None

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole message."""
        return len(self._tail)

    def feed(self, data: bytes) -> List[f.FrontendMessage]:
        """Every message completed by ``data``, in order."""
        self.check()
        self._tail += data  # amortised append: a long message in small chunks stays linear
        if len(self._tail) < self._need:
            return []
        buf = bytes(self._tail)
        out: List[f.FrontendMessage] = []
        pos = 0
        try:
            while True:
                end = self._message_end(buf, pos)
                if end > len(buf):
                    self._need = end - pos
                    break
                if buf[pos] == 0:
                    out.append(untyped(buf[pos + 4 : end]))
                else:
                    out.append(typed(buf[pos], buf[pos + 5 : end], self.password_type))
                pos = end
        except (Malformed, StructError, ValueError) as exc:
            self._error = ProtocolViolation(f"the client sent a malformed message ({exc})")
            self._tail = bytearray()
            if not out:
                raise self._error from exc
            return out
        self._tail = bytearray(buf[pos:])
        return out

    @staticmethod
    def _message_end(buf: bytes, pos: int) -> int:
        """Where the message at ``pos`` ends, once its header is checked (past the end of
        ``buf`` when it is incomplete)."""
        if pos >= len(buf):
            return pos + 1
        kind = buf[pos]
        if kind == 0:
            if len(buf) - pos < 4:
                return pos + 4
            (length,) = unpack_from("!i", buf, pos)
            if not 8 <= length <= MAX_STARTUP_PACKET:
                raise Malformed(f"startup packet length {length} is not within 8-10000")
            return pos + int(length)
        if kind not in _KNOWN_TYPES:
            raise Malformed(f"unknown message type {bytes([kind])!r}")
        if len(buf) - pos < 5:
            return pos + 5
        (length,) = unpack_from("!i", buf, pos + 1)
        limit = MAX_LONG_MESSAGE if kind in LONG_MESSAGE_TYPES else MAX_SHORT_MESSAGE
        if not 4 <= length <= limit:
            raise Malformed(f"message length {length} is not within 4-{limit}")
        return pos + 1 + int(length)

    def check(self) -> None:
        """Raise the protocol violation found by an earlier ``feed``, if any."""
        if self._error is not None:
            raise self._error
