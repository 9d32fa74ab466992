"""Encoders for the frontend messages this client sends: pure functions, bytes out."""

from __future__ import annotations

from struct import pack
from typing import Dict, Mapping, Optional, Sequence, Tuple

PROTOCOL_3_0 = (3, 0)
PROTOCOL_3_2 = (3, 2)  # PostgreSQL 18: cancel keys of up to 256 bytes
PROTOCOL_LATEST = PROTOCOL_3_2
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

TEXT_OID = 25


def _cstring(value: str) -> bytes:
    data = value.encode("utf-8")
    if b"\0" in data:
        raise ValueError(f"a NUL character cannot be sent to PostgreSQL: {value[:40]!r}")
    return data + b"\0"


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + pack("!i", len(body) + 4) + body


def ssl_request() -> bytes:
    return pack("!ii", 8, SSL_REQUEST_CODE)


def gssenc_request() -> bytes:
    return pack("!ii", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid: int, secret_key: bytes) -> bytes:
    """CancelRequest with the key BackendKeyData gave: 4 bytes in 3.0, up to 256 in 3.2."""
    return pack("!iii", 12 + len(secret_key), CANCEL_REQUEST_CODE, pid) + secret_key


def startup_message(
    parameters: Mapping[str, str], version: Tuple[int, int] = PROTOCOL_3_0
) -> bytes:
    major, minor = version
    body = pack("!HH", major, minor)
    if "" in parameters:
        raise ValueError("a startup parameter name cannot be empty")
    body += b"".join(_cstring(k) + _cstring(v) for k, v in parameters.items()) + b"\0"
    return pack("!i", len(body) + 4) + body


def password_message(password: bytes) -> bytes:
    if b"\0" in password:
        raise ValueError("a password cannot contain a NUL character")
    return _message(b"p", password + b"\0")


def sasl_initial_response(mechanism: str, data: Optional[bytes]) -> bytes:
    """``data`` None: no initial response (length -1)."""
    if data is None:
        return _message(b"p", _cstring(mechanism) + b"\xff\xff\xff\xff")
    return _message(b"p", _cstring(mechanism) + pack("!i", len(data)) + data)


def sasl_response(data: bytes) -> bytes:
    return _message(b"p", data)


def query(sql: str) -> bytes:
    return _message(b"Q", _cstring(sql))


def parse(statement: str, sql: str, type_oids: Sequence[int] = ()) -> bytes:
    types = pack(f"!h{len(type_oids)}I", len(type_oids), *type_oids)
    body = _cstring(statement) + _cstring(sql) + types
    return _message(b"P", body)


_EXECUTE_SYNC = b"E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04"  # unnamed portal, all rows; Sync
_PARSED: Dict[Tuple[str, int], bytes] = {}  # (sql, parameter count): its Parse message
_PARSED_LIMIT = 64


def run_unnamed(sql: str, params: Sequence[Optional[str]]) -> bytes:
    """Parse (unnamed statement, text parameters), Bind, Execute, Sync: one command.

    The unnamed statement works through every pooler; its Parse message is built once
    per SQL text, as a command repeated in a loop pays for the rest only.
    """
    key = (sql, len(params))
    parsed = _PARSED.get(key)
    if parsed is None:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        parsed = _PARSED[key] = parse("", sql, [TEXT_OID] * len(params))
    return b"".join((parsed, bind("", "", params), _EXECUTE_SYNC))


def bind(portal: str, statement: str, params: Sequence[Optional[str]]) -> bytes:
    """Bind with every parameter and result in text format."""
    head = b"\0\0" if not portal and not statement else _cstring(portal) + _cstring(statement)
    parts = [head + pack("!hh", 0, len(params))]
    append = parts.append
    for value in params:
        if value is None:
            append(b"\xff\xff\xff\xff")  # NULL
            continue
        data = value.encode("utf-8")
        if b"\0" in data:
            raise ValueError("a NUL character cannot be sent to PostgreSQL in a text value")
        append(pack("!i", len(data)))
        append(data)
    append(b"\0\0")  # no result format codes: all text
    body = b"".join(parts)
    return b"B" + pack("!i", len(body) + 4) + body


def bind_values(portal: str, statement: str, values: Sequence[Optional[bytes]],
                param_formats: Sequence[int] = (), result_formats: Sequence[int] = ()) -> bytes:
    """Bind with values already encoded (None: NULL) and any format codes (0 text, 1 binary)."""
    parts = [_cstring(portal), _cstring(statement),
             pack(f"!h{len(param_formats)}h", len(param_formats), *param_formats),
             pack("!h", len(values))]
    for value in values:
        parts.append(b"\xff\xff\xff\xff" if value is None else pack("!i", len(value)) + value)
    parts.append(pack(f"!h{len(result_formats)}h", len(result_formats), *result_formats))
    return _message(b"B", b"".join(parts))


def describe(kind: str, name: str = "") -> bytes:
    """Describe a statement (``kind`` "S") or a portal ("P")."""
    return _message(b"D", _target(kind) + _cstring(name))


def close(kind: str, name: str = "") -> bytes:
    """Close a statement (``kind`` "S") or a portal ("P")."""
    return _message(b"C", _target(kind) + _cstring(name))


def _target(kind: str) -> bytes:
    if kind not in ("S", "P"):
        raise ValueError(f"kind is {kind!r}; it must be 'S' (statement) or 'P' (portal)")
    return kind.encode("ascii")


def flush() -> bytes:
    return b"H\0\0\0\x04"


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return _message(b"E", _cstring(portal) + pack("!i", max_rows))


def sync() -> bytes:
    return b"S\0\0\0\x04"


def terminate() -> bytes:
    return b"X\0\0\0\x04"
