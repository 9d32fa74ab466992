"""Encoders for the frontend messages this client sends: pure functions, bytes out."""

from __future__ import annotations

from struct import pack
from typing import Mapping, Optional, Sequence

PROTOCOL_VERSION = 3 << 16  # 3.0
SSL_REQUEST_CODE = 80877103
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


def cancel_request(pid: int, secret_key: int) -> bytes:
    return pack("!iiii", 16, CANCEL_REQUEST_CODE, pid, secret_key)


def startup_message(parameters: Mapping[str, str]) -> bytes:
    body = pack("!i", PROTOCOL_VERSION)
    if "" in parameters:
        raise ValueError("a startup parameter name cannot be empty")
    body += b"".join(_cstring(k) + _cstring(v) for k, v in parameters.items()) + b"\0"
    return pack("!i", len(body) + 4) + body


def password_message(password: bytes) -> bytes:
    if b"\0" in password:
        raise ValueError("a password cannot contain a NUL character")
    return _message(b"p", password + b"\0")


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return _message(b"p", _cstring(mechanism) + pack("!i", len(data)) + data)


def sasl_response(data: bytes) -> bytes:
    return _message(b"p", data)


def query(sql: str) -> bytes:
    return _message(b"Q", _cstring(sql))


def parse(statement: str, sql: str, type_oids: Sequence[int] = ()) -> bytes:
    types = pack(f"!h{len(type_oids)}I", len(type_oids), *type_oids)
    body = _cstring(statement) + _cstring(sql) + types
    return _message(b"P", body)


def bind(portal: str, statement: str, params: Sequence[Optional[str]]) -> bytes:
    """Bind with every parameter and result in text format."""
    parts = [_cstring(portal), _cstring(statement), pack("!hh", 0, len(params))]
    for value in params:
        if value is None:
            parts.append(pack("!i", -1))
        else:
            data = value.encode("utf-8")
            if b"\0" in data:
                raise ValueError("a NUL character cannot be sent to PostgreSQL in a text value")
            parts.append(pack("!i", len(data)))
            parts.append(data)
    parts.append(pack("!h", 0))
    return _message(b"B", b"".join(parts))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return _message(b"E", _cstring(portal) + pack("!i", max_rows))


def sync() -> bytes:
    return b"S\0\0\0\x04"


def terminate() -> bytes:
    return b"X\0\0\0\x04"
