"""Backend message bodies to typed messages, one parser per message type.

Each parser reads ``body[pos:end]`` (exactly one message's fields) and raises
``Malformed`` when the fields do not fill it exactly.
"""

from __future__ import annotations

from struct import unpack_from
from typing import Callable, Dict, List, Optional, Tuple

from . import messages as m


class Malformed(Exception):
    """What is wrong with a message (the decoder turns it into ProtocolViolation)."""


def _cstring(body: bytes, pos: int, end: int) -> Tuple[str, int]:
    nul = body.find(0, pos, end)
    if nul < 0:
        raise Malformed("string without terminating NUL")
    return body[pos:nul].decode("utf-8"), nul + 1


def _fields(body: bytes, pos: int, end: int) -> Dict[str, str]:
    fields: Dict[str, str] = {}
    while True:
        if pos >= end:
            raise Malformed("field list without terminator")
        code = body[pos]
        if code == 0:
            if pos + 1 != end:
                raise Malformed("bytes after the field list")
            return fields
        nul = body.find(0, pos + 1, end)
        if nul < 0:
            raise Malformed("field without terminating NUL")
        # Servers may report startup errors in their own encoding.
        fields[chr(code)] = body[pos + 1 : nul].decode("utf-8", "replace")
        pos = nul + 1


def _expect_end(pos: int, end: int) -> None:
    if pos != end:
        raise Malformed(f"{end - pos} unexpected bytes at the end of the message")


def _authentication(body: bytes, pos: int, end: int) -> m.BackendMessage:
    (code,) = unpack_from("!i", body, pos)
    pos += 4
    if code == 0:
        _expect_end(pos, end)
        return m.AuthenticationOk()
    if code == 3:
        _expect_end(pos, end)
        return m.AuthenticationCleartextPassword()
    if code == 5:
        _expect_end(pos + 4, end)
        return m.AuthenticationMD5Password(body[pos : pos + 4])
    if code == 10:
        mechanisms = []
        while True:
            name, pos = _cstring(body, pos, end)
            if not name:
                break
            mechanisms.append(name)
        _expect_end(pos, end)
        return m.AuthenticationSASL(tuple(mechanisms))
    if code == 11:
        return m.AuthenticationSASLContinue(body[pos:end])
    if code == 12:
        return m.AuthenticationSASLFinal(body[pos:end])
    return m.AuthenticationUnsupported(code)


def _parameter_status(body: bytes, pos: int, end: int) -> m.BackendMessage:
    name, pos = _cstring(body, pos, end)
    value, pos = _cstring(body, pos, end)
    _expect_end(pos, end)
    return m.ParameterStatus(name, value)


MAX_CANCEL_KEY = 256  # protocol 3.2's limit (3.0's key is 4 bytes: the machine checks that)


def _backend_key_data(body: bytes, pos: int, end: int) -> m.BackendMessage:
    (pid,) = unpack_from("!i", body, pos)
    size = end - pos - 4
    if size < 4:
        raise Malformed(f"cancel key of {size} bytes is too short (at least 4)")
    if size > MAX_CANCEL_KEY:
        raise Malformed(f"cancel key of {size} bytes is too long (at most {MAX_CANCEL_KEY})")
    return m.BackendKeyData(pid, body[pos + 4 : end])


def _ready_for_query(body: bytes, pos: int, end: int) -> m.BackendMessage:
    _expect_end(pos + 1, end)
    status = chr(body[pos])
    if status not in "ITE":
        raise Malformed(f"unknown transaction status {status!r}")
    return m.ReadyForQuery(status)


def _row_description(body: bytes, pos: int, end: int) -> m.BackendMessage:
    (count,) = unpack_from("!h", body, pos)
    pos += 2
    if count < 0:
        raise Malformed("negative column count")
    names = []
    for _ in range(count):
        name, pos = _cstring(body, pos, end)
        pos += 18  # table oid, column number, type oid, size, modifier, format
        names.append(name)
    _expect_end(pos, end)
    return m.RowDescription(tuple(names))


def _data_row(body: bytes, pos: int, end: int) -> m.BackendMessage:
    (count,) = unpack_from("!h", body, pos)
    pos += 2
    if count < 0:
        raise Malformed("negative column count")
    values: List[Optional[bytes]] = []
    for _ in range(count):
        (size,) = unpack_from("!i", body, pos)
        pos += 4
        if size == -1:
            values.append(None)
            continue
        if size < 0 or pos + size > end:
            raise Malformed("column value overruns the message")
        values.append(body[pos : pos + size])
        pos += size
    _expect_end(pos, end)
    return m.DataRow(tuple(values))


def _command_complete(body: bytes, pos: int, end: int) -> m.BackendMessage:
    tag, pos = _cstring(body, pos, end)
    _expect_end(pos, end)
    return m.CommandComplete(tag)


def _error(body: bytes, pos: int, end: int) -> m.BackendMessage:
    return m.ErrorResponse(_fields(body, pos, end))


def _notice(body: bytes, pos: int, end: int) -> m.BackendMessage:
    return m.NoticeResponse(_fields(body, pos, end))


def _notification(body: bytes, pos: int, end: int) -> m.BackendMessage:
    (pid,) = unpack_from("!i", body, pos)
    channel, pos = _cstring(body, pos + 4, end)
    payload, pos = _cstring(body, pos, end)
    _expect_end(pos, end)
    return m.Notify(pid, channel, payload)


def _negotiate_protocol_version(body: bytes, pos: int, end: int) -> m.BackendMessage:
    major, minor, count = unpack_from("!HHi", body, pos)
    pos += 8
    if count < 0:
        raise Malformed("negative option count")
    names = []
    for _ in range(count):
        name, pos = _cstring(body, pos, end)
        names.append(name)
    _expect_end(pos, end)
    return m.NegotiateProtocolVersion((major, minor), tuple(names))


def _parameter_description(body: bytes, pos: int, end: int) -> m.BackendMessage:
    (count,) = unpack_from("!h", body, pos)
    pos += 2
    if count < 0 or pos + 4 * count != end:
        raise Malformed("parameter count does not match the message length")
    return m.ParameterDescription(unpack_from(f"!{count}I", body, pos))


def _empty(message: m.BackendMessage) -> Callable[[bytes, int, int], m.BackendMessage]:
    def parse(body: bytes, pos: int, end: int) -> m.BackendMessage:
        _expect_end(pos, end)
        return message

    return parse


PARSERS: Dict[int, Callable[[bytes, int, int], m.BackendMessage]] = {
    ord("R"): _authentication,
    ord("S"): _parameter_status,
    ord("K"): _backend_key_data,
    ord("Z"): _ready_for_query,
    ord("T"): _row_description,
    ord("D"): _data_row,
    ord("C"): _command_complete,
    ord("I"): _empty(m.EmptyQueryResponse()),
    ord("E"): _error,
    ord("N"): _notice,
    ord("A"): _notification,
    ord("v"): _negotiate_protocol_version,
    ord("1"): _empty(m.ParseComplete()),
    ord("2"): _empty(m.BindComplete()),
    ord("3"): _empty(m.CloseComplete()),
    ord("n"): _empty(m.NoData()),
    ord("t"): _parameter_description,
    ord("s"): _empty(m.PortalSuspended()),
}
