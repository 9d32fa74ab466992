"""Frontend message bodies to typed messages, one parser per message type.

Each parser gets exactly one message's body and raises ``Malformed`` unless its
fields fill it exactly, as PostgreSQL's own checks do (``invalid message
format``).
"""

from __future__ import annotations

from struct import unpack_from
from typing import Callable, Dict, List, Optional, Tuple

from . import frontend_messages as f
from ._bodies import Malformed
from .frontend import CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE


class _Reader:
    """Reads fields from the front of one body, refusing to run past its end."""

    __slots__ = ("body", "pos")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.body):
            raise Malformed("a field runs past the end of the message")
        data = self.body[self.pos : self.pos + size]
        self.pos += size
        return data

    def int16(self) -> int:
        value: int = unpack_from("!h", self.take(2))[0]
        return value

    def int32(self) -> int:
        value: int = unpack_from("!i", self.take(4))[0]
        return value

    def rest(self) -> bytes:
        """Everything left of the body."""
        data = self.body[self.pos :]
        self.pos = len(self.body)
        return data

    def count(self) -> int:
        value = self.int16()
        if value < 0:
            raise Malformed(f"a negative count ({value})")
        return value

    def cstring(self) -> str:
        nul = self.body.find(0, self.pos)
        if nul < 0:
            raise Malformed("string without terminating NUL")
        text = self.body[self.pos : nul].decode("utf-8")
        self.pos = nul + 1
        return text

    def formats(self) -> Tuple[int, ...]:
        codes = tuple(self.int16() for _ in range(self.count()))
        if any(code not in (0, 1) for code in codes):
            raise Malformed(f"format codes {codes} are not all 0 (text) or 1 (binary)")
        return codes

    def end(self) -> None:
        if self.pos != len(self.body):
            raise Malformed(f"{len(self.body) - self.pos} unexpected bytes at the end")


def untyped(body: bytes) -> f.FrontendMessage:
    """A packet without a type byte: StartupMessage or one of the requests before it."""
    reader = _Reader(body)
    code = reader.int32()
    if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
        reader.end()
        return f.SSLRequest() if code == SSL_REQUEST_CODE else f.GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        pid = reader.int32()
        key = reader.rest()
        if not 4 <= len(key) <= 256:
            raise Malformed(f"a cancel key of {len(key)} bytes (4 to 256 are allowed)")
        return f.CancelRequest(pid, key)
    if code >> 16 != 3:
        raise Malformed(f"unsupported protocol version {code >> 16}.{code & 0xFFFF}")
    parameters: Dict[str, str] = {}
    while True:
        name = reader.cstring()
        if not name:
            break
        parameters[name] = reader.cstring()
    reader.end()
    return f.StartupMessage(parameters, code)


def _password(reader: _Reader) -> f.FrontendMessage:
    data = reader.take(len(reader.body))
    if data.find(0) != len(data) - 1:
        raise Malformed("a password message must be one NUL-terminated string")
    return f.PasswordMessage(data[:-1])


def _sasl_initial(reader: _Reader) -> f.FrontendMessage:
    mechanism = reader.cstring()
    size = reader.int32()
    data = None if size == -1 else reader.take(size)
    return f.SASLInitialResponse(mechanism, data)


def _sasl(reader: _Reader) -> f.FrontendMessage:
    return f.SASLResponse(reader.take(len(reader.body)))


PASSWORD_PARSERS: Dict[type, Callable[[_Reader], f.FrontendMessage]] = {
    f.PasswordMessage: _password,
    f.SASLInitialResponse: _sasl_initial,
    f.SASLResponse: _sasl,
}


def _query(reader: _Reader) -> f.FrontendMessage:
    return f.Query(reader.cstring())


def _parse(reader: _Reader) -> f.FrontendMessage:
    statement, sql = reader.cstring(), reader.cstring()
    count = reader.count()
    oids: Tuple[int, ...] = unpack_from(f"!{count}I", reader.take(4 * count))
    return f.Parse(statement, sql, oids)


def _bind(reader: _Reader) -> f.FrontendMessage:
    portal, statement = reader.cstring(), reader.cstring()
    param_formats = reader.formats()
    params: List[Optional[bytes]] = []
    for _ in range(reader.count()):
        size = reader.int32()
        params.append(None if size == -1 else reader.take(size))
    if len(param_formats) not in (0, 1, len(params)):
        raise Malformed(f"{len(param_formats)} parameter formats for {len(params)} parameters")
    return f.Bind(portal, statement, tuple(params), param_formats, reader.formats())


def _target(reader: _Reader) -> Tuple[str, str]:
    kind = chr(reader.take(1)[0])
    if kind not in ("S", "P"):
        raise Malformed(f"{kind!r} names neither a statement (S) nor a portal (P)")
    return kind, reader.cstring()


def _describe(reader: _Reader) -> f.FrontendMessage:
    return f.Describe(*_target(reader))


def _close(reader: _Reader) -> f.FrontendMessage:
    return f.Close(*_target(reader))


def _execute(reader: _Reader) -> f.FrontendMessage:
    return f.Execute(reader.cstring(), reader.int32())


def _empty(message: f.FrontendMessage) -> Callable[[_Reader], f.FrontendMessage]:
    def parse(reader: _Reader) -> f.FrontendMessage:
        return message

    return parse


PARSERS: Dict[int, Callable[[_Reader], f.FrontendMessage]] = {
    ord("Q"): _query,
    ord("P"): _parse,
    ord("B"): _bind,
    ord("D"): _describe,
    ord("E"): _execute,
    ord("C"): _close,
    ord("H"): _empty(f.Flush()),
    ord("S"): _empty(f.Sync()),
    ord("X"): _empty(f.Terminate()),
}
PASSWORD_TYPE = ord("p")


def typed(kind: int, body: bytes, password_type: f.PasswordKind) -> f.FrontendMessage:
    """The message of type ``kind`` whose body is ``body``; a ``p`` as ``password_type``."""
    reader = _Reader(body)
    if kind == PASSWORD_TYPE:
        message = PASSWORD_PARSERS[password_type](reader)
    else:
        message = PARSERS[kind](reader)
    reader.end()
    return message
