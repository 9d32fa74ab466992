"""libpq's two connection string syntaxes: ``key=value ...`` and ``postgresql://`` URIs.

This module only splits a string into the keywords it names, following
fe-connect.c (``conninfo_parse``, ``conninfo_uri_parse_options``,
``conninfo_uri_decode``) as of libpq 18. Which keywords exist, and what their
values mean, is decided by the caller (``conninfo``).
"""

from __future__ import annotations

import string
from typing import Collection, Dict, List, Tuple

from ..errors import ProgrammingError

__all__ = ["invalid_dsn", "parse", "store"]

URI_PREFIXES = ("postgresql://", "postgres://")
# C isspace() in the "C" locale; str.isspace() would also accept Unicode spaces.
SPACE = " \t\n\r\f\v"


def invalid_dsn(message: str) -> ProgrammingError:
    return ProgrammingError(f"invalid dsn: {message}")


def store(target: Dict[str, str], known: Collection[str], key: str, value: str) -> None:
    """Set ``key``, as libpq's conninfo_storeval does (with its ``requiressl`` alias).

    Percent-decoding leaves bytes that are not UTF-8 as lone surrogates; ``parse``
    refuses them in the values that remain, as a later one may replace an earlier
    one (``postgresql://h/%F0?dbname=db``), as in libpq.
    """
    if key == "requiressl":  # deprecated: "1..." means require, anything else prefer
        key, value = "sslmode", "require" if value.startswith("1") else "prefer"
    if key not in known:
        shown = key.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise invalid_dsn(f'invalid connection option "{shown}"')
    target[key] = value


def _check_utf8(values: Dict[str, str]) -> Dict[str, str]:
    for key, value in values.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # The message leaves the value out: it may be the password.
            raise invalid_dsn(f'the value of "{key}" is not valid UTF-8') from None
    return values


def parse(dsn: str, known: Collection[str]) -> Dict[str, str]:
    """The keywords ``dsn`` names, as given; an unknown keyword is an error."""
    if "\0" in dsn:
        raise invalid_dsn("connection info string contains a NUL character")
    for prefix in URI_PREFIXES:
        if dsn.startswith(prefix):
            return _check_utf8(_parse_uri(dsn[len(prefix) :], known))
    return _check_utf8(_parse_keyword_value(dsn, known))


# -- key=value strings ------------------------------------------------------


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in SPACE:
        pos += 1
    return pos


def _read_value(text: str, pos: int) -> Tuple[str, int]:
    """One value starting at ``pos``: bare or single-quoted, with backslash escapes."""
    out: List[str] = []
    end = len(text)
    if pos < end and text[pos] == "'":
        pos += 1
        while True:
            if pos >= end:
                raise invalid_dsn("unterminated quoted string in connection info string")
            char = text[pos]
            if char == "'":
                return "".join(out), pos + 1
            if char == "\\":
                pos += 1
                if pos >= end:
                    continue
                char = text[pos]
            out.append(char)
            pos += 1
    while pos < end and text[pos] not in SPACE:
        if text[pos] == "\\":
            pos += 1
            if pos >= end:
                break
        out.append(text[pos])
        pos += 1
    return "".join(out), pos


def _parse_keyword_value(dsn: str, known: Collection[str]) -> Dict[str, str]:
    result: Dict[str, str] = {}
    pos = _skip_space(dsn, 0)
    while pos < len(dsn):
        start = pos
        while pos < len(dsn) and dsn[pos] != "=" and dsn[pos] not in SPACE:
            pos += 1
        key = dsn[start:pos]
        pos = _skip_space(dsn, pos)
        if pos >= len(dsn) or dsn[pos] != "=":
            raise invalid_dsn(f'missing "=" after "{key}" in connection info string')
        value, pos = _read_value(dsn, _skip_space(dsn, pos + 1))
        store(result, known, key, value)
        pos = _skip_space(dsn, pos)
    return result


# -- URIs -------------------------------------------------------------------


def _percent_decode(text: str) -> str:
    """conninfo_uri_decode: trims literal spaces around, rejects them inside.

    Error messages leave the text out: it may be the password.
    """
    start = 0
    while start < len(text) and text[start] == " ":
        start += 1
    end = text.find(" ", start)
    if end < 0:
        end = len(text)
    out = bytearray()
    pos = start
    while pos < end:
        found = text.find("%", pos, end)
        if found < 0:
            out += text[pos:end].encode("utf-8", "surrogatepass")
            break
        out += text[pos:found].encode("utf-8", "surrogatepass")
        digits = text[found + 1 : min(found + 3, end)]
        if len(digits) != 2 or any(c not in string.hexdigits for c in digits):
            token = text[found : min(found + 3, end)]
            raise invalid_dsn(f'invalid percent-encoded token: "{token}"')
        byte = int(digits, 16)
        if byte == 0:
            raise invalid_dsn("forbidden value %00 in percent-encoded value")
        out.append(byte)
        pos = found + 3
    if text[end:].strip(" "):
        raise invalid_dsn("unexpected spaces found in URI: use percent-encoded spaces (%20)")
    return out.decode("utf-8", "surrogateescape")  # checked by store()


def _find_any(text: str, chars: str, pos: int) -> int:
    """Index of the first of ``chars`` at or after ``pos``, or ``len(text)``."""
    while pos < len(text) and text[pos] not in chars:
        pos += 1
    return pos


def _parse_uri(rest: str, known: Collection[str]) -> Dict[str, str]:
    result: Dict[str, str] = {}

    # libpq looks for '@' only up to the first '/', not up to '?'.
    at = _find_any(rest, "@/", 0)
    if at < len(rest) and rest[at] == "@":
        user, colon, password = rest[:at].partition(":")
        if user:
            store(result, known, "user", _percent_decode(user))
        if colon and password:
            store(result, known, "password", _percent_decode(password))
        rest = rest[at + 1 :]

    # netloc[:port][,netloc[:port]...]; each netloc may be a bracketed IPv6 address.
    hosts: List[str] = []
    ports: List[str] = []
    pos = 0
    while True:
        if rest.startswith("[", pos):
            close = rest.find("]", pos)
            if close < 0:
                raise invalid_dsn(f'missing "]" after IPv6 host address in URI: "{rest[pos:]}"')
            if close == pos + 1:
                raise invalid_dsn("IPv6 host address may not be empty in URI")
            hosts.append(rest[pos + 1 : close])
            pos = close + 1
            if pos < len(rest) and rest[pos] not in ":/?,":
                raise invalid_dsn(
                    f'unexpected character "{rest[pos]}" after IPv6 host address in URI'
                    ' (expected ":" or "/")'
                )
        else:
            end = _find_any(rest, ":/?,", pos)
            hosts.append(rest[pos:end])
            pos = end
        port = ""
        if rest.startswith(":", pos):
            end = _find_any(rest, "/?,", pos + 1)
            port = rest[pos + 1 : end]
            pos = end
        ports.append(port)
        if not rest.startswith(",", pos):
            break
        pos += 1
    # libpq decodes the joined lists, so "%2C" inside a host name separates hosts.
    host_text, port_text = ",".join(hosts), ",".join(ports)
    if host_text:
        store(result, known, "host", _percent_decode(host_text))
    if port_text:
        store(result, known, "port", _percent_decode(port_text))

    if rest.startswith("/", pos):
        end = _find_any(rest, "?", pos + 1)
        dbname = rest[pos + 1 : end]
        # An empty dbname stays unset, so that PGDATABASE still applies.
        if dbname:
            store(result, known, "dbname", _percent_decode(dbname))
        pos = end
    if rest.startswith("?", pos):
        _parse_query(rest[pos + 1 :], result, known)
    return result


def _parse_query(query: str, result: Dict[str, str], known: Collection[str]) -> None:
    pos = 0
    while pos < len(query):
        end = _find_any(query, "&", pos)
        key, equals, value = query[pos:end].partition("=")
        if not equals:
            raise invalid_dsn(f'missing key/value separator "=" in URI query parameter: "{key}"')
        if "=" in value:
            raise invalid_dsn(f'extra key/value separator "=" in URI query parameter: "{key}"')
        key, value = _percent_decode(key), _percent_decode(value)
        if key == "ssl" and value == "true":  # JDBC's spelling, which libpq accepts
            key, value = "sslmode", "require"
        store(result, known, key, value)
        pos = end + 1
