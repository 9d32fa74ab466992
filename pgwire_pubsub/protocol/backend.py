"""Encoders for backend messages, as a server (or a fake one) sends them: bytes out.

The counterpart of ``frontend.py``.  Strings are UTF-8 and NUL-terminated (a NUL
inside one raises ``ValueError``); integers are big-endian and signed.
"""

from __future__ import annotations

from struct import pack
from typing import Iterable, Mapping, Optional, Sequence, Tuple, Union

from .frontend import _cstring, _message

TEXT_OID = 25
INT4_OID = 23
AUTH_OK, AUTH_CLEARTEXT, AUTH_MD5, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL = (
    0, 3, 5, 10, 11, 12)


def authentication(code: int, data: bytes = b"") -> bytes:
    """An authentication request of any method ``code`` (0 is AuthenticationOk)."""
    return _message(b"R", pack("!i", code) + data)


def authentication_ok() -> bytes:
    return b"R\0\0\0\x08\0\0\0\0"


def authentication_cleartext_password() -> bytes:
    return authentication(AUTH_CLEARTEXT)


def authentication_md5_password(salt: bytes) -> bytes:
    if len(salt) != 4:
        raise ValueError(f"an md5 salt is 4 bytes, not {len(salt)}")
    return authentication(AUTH_MD5, salt)


def authentication_sasl(mechanisms: Iterable[str]) -> bytes:
    names = [_cstring(name) for name in mechanisms]
    if b"\0" in names:
        raise ValueError("a SASL mechanism name cannot be empty")
    return authentication(AUTH_SASL, b"".join(names) + b"\0")


def authentication_sasl_continue(data: bytes) -> bytes:
    return authentication(AUTH_SASL_CONTINUE, data)


def authentication_sasl_final(data: bytes) -> bytes:
    return authentication(AUTH_SASL_FINAL, data)


def parameter_status(name: str, value: str) -> bytes:
    return _message(b"S", _cstring(name) + _cstring(value))


def backend_key_data(pid: int, secret_key: Union[int, bytes]) -> bytes:
    """An int is protocol 3.0's four-byte key; 3.2's keys (bytes) are up to 256 bytes."""
    key = pack("!i", secret_key) if isinstance(secret_key, int) else secret_key
    return _message(b"K", pack("!i", pid) + key)


def ready_for_query(status: str = "I") -> bytes:
    """``status``: "I" idle, "T" in a transaction block, "E" in a failed one."""
    if status not in ("I", "T", "E"):
        raise ValueError(f"transaction status {status!r} is not 'I', 'T' or 'E'")
    return b"Z\0\0\0\x05" + status.encode("ascii")


def column(name: str, type_oid: int = TEXT_OID, format: int = 0) -> bytes:
    """One field of a RowDescription: a column of no table, of type ``type_oid`` sent in
    ``format`` (0 text, 1 binary)."""
    size = 4 if type_oid == INT4_OID else -1  # int4's size; variable for the rest
    # table oid, column number, type oid, type size, type modifier, format code
    return _cstring(name) + pack("!ihIhih", 0, 0, type_oid, size, -1, format)


def row_description(names: Sequence[str], type_oids: Sequence[int] = (),
                    formats: Sequence[int] = ()) -> bytes:
    """Columns of no table; column i of type ``type_oids[i]`` (default text) in
    ``formats[i]`` (default 0, text)."""
    columns = [column(name, type_oids[i] if i < len(type_oids) else TEXT_OID,
                      formats[i] if i < len(formats) else 0) for i, name in enumerate(names)]
    return _message(b"T", pack("!h", len(names)) + b"".join(columns))


def data_row(values: Sequence[Optional[bytes]]) -> bytes:
    """A row; None is SQL NULL."""
    parts = [pack("!h", len(values))]
    for value in values:
        parts.append(b"\xff\xff\xff\xff" if value is None else pack("!i", len(value)) + value)
    return _message(b"D", b"".join(parts))


def command_complete(tag: str) -> bytes:
    return _message(b"C", _cstring(tag))


def empty_query_response() -> bytes:
    return b"I\0\0\0\x04"


def _fields(fields: Mapping[str, str]) -> bytes:
    parts = []
    for code, value in fields.items():
        if len(code) != 1 or not 0 < ord(code) < 256:
            raise ValueError(f"a field code is one character (S, C, M...), not {code!r}")
        parts.append(code.encode("latin-1") + _cstring(value))
    return b"".join(parts) + b"\0"


def error_response(fields: Mapping[str, str]) -> bytes:
    """An ErrorResponse with exactly ``fields`` (code: value), in their order."""
    return _message(b"E", _fields(fields))


def notice_response(fields: Mapping[str, str]) -> bytes:
    return _message(b"N", _fields(fields))


def notification_response(pid: int, channel: str, payload: str = "") -> bytes:
    return _message(b"A", pack("!i", pid) + _cstring(channel) + _cstring(payload))


def negotiate_protocol_version(version: Tuple[int, int],
                               unrecognized: Sequence[str] = ()) -> bytes:
    """The newest version the server offers, as (major, minor), and the options it did not
    recognise."""
    body = pack("!HHi", version[0], version[1], len(unrecognized))
    return _message(b"v", body + b"".join(map(_cstring, unrecognized)))


def parse_complete() -> bytes:
    return b"1\0\0\0\x04"


def bind_complete() -> bytes:
    return b"2\0\0\0\x04"


def close_complete() -> bytes:
    return b"3\0\0\0\x04"


def no_data() -> bytes:
    return b"n\0\0\0\x04"


def parameter_description(type_oids: Sequence[int]) -> bytes:
    return _message(b"t", pack(f"!h{len(type_oids)}I", len(type_oids), *type_oids))


def portal_suspended() -> bytes:
    return b"s\0\0\0\x04"
