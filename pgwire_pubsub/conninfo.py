"""Connection parameters, taken the way libpq (and so psycopg2) takes them.

``parse_dsn`` reads a ``key=value`` connection string or a ``postgresql://``
URI into the raw keywords it names. ``make_params`` merges keyword arguments
over such a string, fills what is still unset from the environment and then
from the built-in defaults, validates, and returns a frozen ``ConnParams``.

As in libpq, an empty value (``host=''``, ``PGPORT=``) counts as "not given"
and falls through to the built-in default.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import string
from dataclasses import dataclass, field, fields
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

from .errors import NotSupportedError, OperationalError, ProgrammingError

__all__ = ["SSLMODES", "ConnParams", "make_params", "parse_dsn"]

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

_URI_PREFIXES = ("postgresql://", "postgres://")
# C isspace() in the "C" locale; str.isspace() would also accept Unicode spaces.
_SPACE = " \t\n\r\f\v"
_INT_RE = re.compile(r"[ \t\n\r\f\v]*([+-]?[0-9]+)[ \t\n\r\f\v]*")
_INT32_MAX = 2**31 - 1


def _invalid(message: str) -> ProgrammingError:
    return ProgrammingError(f"invalid dsn: {message}")


def _default_socket_dir() -> str:
    # Debian's libpq is built with /var/run/postgresql, upstream's with /tmp.
    return "/var/run/postgresql" if os.path.isdir("/var/run/postgresql") else "/tmp"


def _default_user() -> str:
    reason = ""
    try:
        name = getpass.getuser()
    except Exception as exc:  # KeyError or OSError, depending on the Python version
        name, reason = "", f" ({exc})"
    if not name:
        raise OperationalError(
            "could not determine the operating system user name to use as the default"
            f" database user{reason}; pass user=... or set PGUSER"
        )
    return name


_Default = Union[None, str, Callable[[Mapping[str, str]], str]]

# Every accepted keyword: (keyword, environment variable, default). Rows are
# resolved in this order, so a default may read the keywords resolved above
# it. A callable default gets those resolved values.
_KEYWORDS: Tuple[Tuple[str, Optional[str], _Default], ...] = (
    ("hostaddr", None, None),
    ("host", "PGHOST", lambda r: r.get("hostaddr") or _default_socket_dir()),
    ("port", "PGPORT", "5432"),
    ("user", "PGUSER", lambda r: _default_user()),
    ("password", "PGPASSWORD", None),
    ("dbname", "PGDATABASE", lambda r: r["user"]),
    ("connect_timeout", "PGCONNECT_TIMEOUT", None),
    ("application_name", "PGAPPNAME", None),
    ("fallback_application_name", None, None),
    ("options", "PGOPTIONS", None),
    ("sslmode", "PGSSLMODE", "prefer"),
    ("sslrootcert", "PGSSLROOTCERT", None),
    ("client_encoding", None, None),
)
_KNOWN = frozenset(row[0] for row in _KEYWORDS)


def _store(target: Dict[str, str], key: str, value: str) -> None:
    if key not in _KNOWN:
        raise _invalid(f'invalid connection option "{key}"')
    target[key] = value


# -- key=value strings ------------------------------------------------------


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
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
                raise _invalid("unterminated quoted string in connection info string")
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
    while pos < end and text[pos] not in _SPACE:
        if text[pos] == "\\":
            pos += 1
            if pos >= end:
                break
        out.append(text[pos])
        pos += 1
    return "".join(out), pos


def _parse_keyword_value(dsn: str) -> Dict[str, str]:
    result: Dict[str, str] = {}
    pos = _skip_space(dsn, 0)
    while pos < len(dsn):
        start = pos
        while pos < len(dsn) and dsn[pos] != "=" and dsn[pos] not in _SPACE:
            pos += 1
        key = dsn[start:pos]
        pos = _skip_space(dsn, pos)
        if pos >= len(dsn) or dsn[pos] != "=":
            raise _invalid(f'missing "=" after "{key}" in connection info string')
        value, pos = _read_value(dsn, _skip_space(dsn, pos + 1))
        _store(result, key, value)
        pos = _skip_space(dsn, pos)
    return result


# -- URIs -------------------------------------------------------------------


def _percent_decode(text: str) -> str:
    if "%" not in text:
        return text
    out = bytearray()
    pos = 0
    while True:
        found = text.find("%", pos)
        if found < 0:
            out += text[pos:].encode("utf-8", "surrogatepass")
            break
        out += text[pos:found].encode("utf-8", "surrogatepass")
        digits = text[found + 1 : found + 3]
        if len(digits) != 2 or any(c not in string.hexdigits for c in digits):
            raise _invalid(f'invalid percent-encoded token: "{text[found : found + 3]}"')
        byte = int(digits, 16)
        # Error messages leave the value out: it may be the password.
        if byte == 0:
            raise _invalid("forbidden value %00 in percent-encoded value")
        out.append(byte)
        pos = found + 3
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("percent-encoded value is not valid UTF-8") from None


def _find_any(text: str, chars: str, pos: int) -> int:
    """Index of the first of ``chars`` at or after ``pos``, or ``len(text)``."""
    while pos < len(text) and text[pos] not in chars:
        pos += 1
    return pos


def _parse_uri(uri: str, prefix: str) -> Dict[str, str]:
    result: Dict[str, str] = {}
    rest = uri[len(prefix) :]

    # libpq looks for '@' only up to the first '/', not up to '?'.
    at = _find_any(rest, "@/", 0)
    if at < len(rest) and rest[at] == "@":
        user, colon, password = rest[:at].partition(":")
        if user:
            result["user"] = _percent_decode(user)
        if colon and password:
            result["password"] = _percent_decode(password)
        rest = rest[at + 1 :]

    # netloc[:port][,netloc[:port]...]; each netloc may be a bracketed IPv6 address.
    hosts: List[str] = []
    ports: List[str] = []
    pos = 0
    while True:
        if rest.startswith("[", pos):
            close = rest.find("]", pos)
            if close < 0:
                raise _invalid(f'missing "]" after IPv6 host address in URI: "{rest[pos:]}"')
            if close == pos + 1:
                raise _invalid("IPv6 host address may not be empty in URI")
            hosts.append(rest[pos + 1 : close])
            pos = close + 1
            if pos < len(rest) and rest[pos] not in ":/?,":
                raise _invalid(
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
    host_text, port_text = ",".join(hosts), ",".join(ports)
    if host_text:
        result["host"] = _percent_decode(host_text)
    if port_text:
        result["port"] = _percent_decode(port_text)

    if rest.startswith("/", pos):
        end = _find_any(rest, "?", pos + 1)
        dbname = rest[pos + 1 : end]
        # An empty dbname stays unset, so that PGDATABASE still applies.
        if dbname:
            result["dbname"] = _percent_decode(dbname)
        pos = end
    if rest.startswith("?", pos):
        _parse_query(rest[pos + 1 :], result)
    return result


def _parse_query(query: str, result: Dict[str, str]) -> None:
    pos = 0
    while pos < len(query):
        end = _find_any(query, "&", pos)
        key, equals, value = query[pos:end].partition("=")
        if not equals:
            raise _invalid(f'missing key/value separator "=" in URI query parameter: "{key}"')
        if "=" in value:
            raise _invalid(f'extra key/value separator "=" in URI query parameter: "{key}"')
        key, value = _percent_decode(key), _percent_decode(value)
        if key == "ssl" and value == "true":  # JDBC's spelling, which libpq accepts
            key, value = "sslmode", "require"
        _store(result, key, value)
        pos = end + 1


def parse_dsn(dsn: str) -> Dict[str, str]:
    """The keywords a connection string names, as given: no environment, no defaults.

    ``dsn`` is either libpq's ``key=value ...`` form or a ``postgresql://`` /
    ``postgres://`` URI. Raises ``ProgrammingError`` on a malformed string or
    an unknown keyword.
    """
    if "\0" in dsn:
        raise _invalid("connection info string contains a NUL character")
    for prefix in _URI_PREFIXES:
        if dsn.startswith(prefix):
            return _parse_uri(dsn, prefix)
    return _parse_keyword_value(dsn)


# -- resolved parameters ----------------------------------------------------


@dataclass(frozen=True, repr=False)
class ConnParams:
    """Fully resolved, validated connection parameters."""

    host: str  # a host name, an IP address, or a Unix socket directory
    port: int
    user: str
    dbname: str
    password: Optional[str] = field(default=None, repr=False)
    connect_timeout: Optional[float] = None  # seconds; None means no limit
    application_name: Optional[str] = None
    options: Optional[str] = None
    # Kept as given even for a Unix socket, over which TLS is never attempted.
    sslmode: str = "prefer"
    sslrootcert: Optional[str] = None
    hostaddr: Optional[str] = None  # a numeric address; when set, it is what is dialled

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            shown = "'***'" if f.name == "password" and value is not None else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"ConnParams({', '.join(parts)})"

    @property
    def uses_unix_socket(self) -> bool:
        return self.hostaddr is None and self.host.startswith("/")

    @property
    def unix_socket_path(self) -> str:
        return f"{self.host}/.s.PGSQL.{self.port}"

    def startup_parameters(self) -> Dict[str, str]:
        """The parameters for the StartupMessage, in the order libpq sends them."""
        params = {"user": self.user, "database": self.dbname}
        if self.options:
            params["options"] = self.options
        if self.application_name:
            params["application_name"] = self.application_name
        params["client_encoding"] = "UTF8"
        return params


def _parse_int(text: str) -> Optional[int]:
    """An integer as libpq's parse_int_param reads it (spaces around allowed), or None."""
    match = _INT_RE.fullmatch(text)
    return int(match.group(1)) if match else None


def _resolve(given: Mapping[str, str], environ: Mapping[str, str]) -> Dict[str, str]:
    resolved: Dict[str, str] = {}
    for key, envvar, default in _KEYWORDS:
        value = given.get(key)
        if value is None and envvar is not None:
            value = environ.get(envvar)
        if not value:
            value = default(resolved) if callable(default) else default
        if value:
            resolved[key] = value
    return resolved


def _build(raw: Mapping[str, str]) -> ConnParams:
    for key in ("host", "hostaddr", "port"):
        if "," in raw.get(key, ""):
            raise NotSupportedError(
                f"several hosts are not supported yet ({key}={raw[key]!r}); give a single host"
            )

    port = _parse_int(raw["port"])
    if port is None or not 1 <= port <= 65535:
        raise _invalid(f'invalid port number: "{raw["port"]}"')

    sslmode = raw["sslmode"]
    if sslmode not in SSLMODES:
        raise _invalid(f'invalid sslmode value: "{sslmode}"; expected one of {", ".join(SSLMODES)}')

    timeout: Optional[float] = None
    if "connect_timeout" in raw:
        seconds = _parse_int(raw["connect_timeout"])
        if seconds is None or seconds > _INT32_MAX:
            raise _invalid(
                f'invalid integer value "{raw["connect_timeout"]}"'
                ' for connection option "connect_timeout"'
            )
        # libpq: zero or negative waits forever; 1 is raised to its 2-second minimum.
        timeout = float(max(seconds, 2)) if seconds > 0 else None

    encoding = raw.get("client_encoding")
    if encoding is not None and encoding.lower() not in ("utf8", "utf-8"):
        raise _invalid(f'unsupported client_encoding "{encoding}": this client always uses UTF8')

    hostaddr = raw.get("hostaddr")
    if hostaddr is not None:
        try:
            ipaddress.ip_address(hostaddr)
        except ValueError:
            raise _invalid(f'could not parse network address "{hostaddr}"') from None

    return ConnParams(
        host=raw["host"],
        port=port,
        user=raw["user"],
        dbname=raw["dbname"],
        password=raw.get("password"),
        connect_timeout=timeout,
        application_name=raw.get("application_name") or raw.get("fallback_application_name"),
        options=raw.get("options"),
        sslmode=sslmode,
        sslrootcert=raw.get("sslrootcert"),
        hostaddr=hostaddr,
    )


def make_params(dsn: Optional[str] = None, **kwargs: object) -> ConnParams:
    """Resolve connection parameters as ``psycopg2.connect(dsn, **kwargs)`` would.

    Precedence: keyword arguments, then ``dsn``, then the ``PG*`` environment
    variables, then the built-in defaults. ``database`` is an alias of
    ``dbname``; ``None`` values are ignored; other non-strings (such as
    ``port=5432``) are converted with ``str()`` before validation.
    """
    if kwargs.get("database") is not None and kwargs.get("dbname") is not None:
        raise TypeError("you can't specify both 'database' and 'dbname' arguments")
    given = parse_dsn(dsn) if dsn else {}
    for key, value in kwargs.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else str(value)
        if "\0" in text:
            raise _invalid(f'connection option "{key}" contains a NUL character')
        _store(given, "dbname" if key == "database" else key, text)
    return _build(_resolve(given, os.environ))
