"""Connection parameters, taken and resolved the way libpq (and so psycopg2) does.

``parse_dsn`` reads a ``key=value`` connection string or a ``postgresql://``
URI into the keywords it names (see ``dsnparse``). ``make_params`` resolves
them as libpq does, in this order of precedence:

1. keyword arguments, then the connection string;
2. the connection service (``service`` / ``PGSERVICE``, see ``servicefile``),
   for the keywords still unset;
3. the ``PG*`` environment variables, for the keywords still unset
   (and the deprecated ``PGREQUIRESSL=1`` for ``sslmode``);
4. the built-in defaults.

It then validates every value, as libpq's connectOptions2 and connect code
do, splits the host lists into ``HostSpec`` entries, and looks up the
password file (see ``passfile``) for each host when no password was given.

As in libpq, an empty value (``host=''``, ``PGPORT=``) counts as given: it
stops the service and the environment, and then means "the default" for
host, hostaddr, port, user, dbname, password and the file names, while for a
keyword with a fixed set of values it is simply invalid.

Deliberate differences from libpq:

- Keywords this client cannot honour (GSSAPI, Kerberos, requirepeer,
  replication, TLS compression, ``sslcertmode=require``, OAuth, SCRAM keys,
  ``sslkeylogfile``) raise ``NotSupportedError``
  instead of changing what the connection does.
- Only the UTF8 client encoding is spoken. Another encoding given as a keyword,
  in the string or in the service is refused; ``PGCLIENTENCODING`` naming
  another encoding is ignored, since the encoding on the wire never shows in
  the ``str`` values this client returns.
- Integer options (``keepalives*``, ``tcp_user_timeout``, ``connect_timeout``,
  ``port``) and ``hostaddr`` are checked here for every host, where libpq
  checks them only when it gets to connecting to a TCP host. Keepalive
  settings below 1, which libpq hands to setsockopt() to fail there, are
  refused here.
- Percent-decoded URI parts must be valid UTF-8.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import OperationalError
from ..protocol.auth import RequireAuth
from ..protocol.frontend import PROTOCOL_3_0, PROTOCOL_LATEST
from . import _dsn as dsnparse
from . import _passfile as passfile
from . import _servicefile as servicefile
from ._dsn import invalid_dsn
from ._options import (
    KNOWN,
    OPTIONS,
    SSLMODES,
    TLS_VERSIONS,
    integer,
    is_utf8,
)

__all__ = ["SSLMODES", "ConnParams", "HostSpec", "RequireAuth", "make_params", "parse_dsn"]

_KEEPALIVE_SETTINGS = ("keepalives_idle", "keepalives_interval", "keepalives_count")
_READ_WITH_KEEPALIVES = (*_KEEPALIVE_SETTINGS, "tcp_user_timeout")  # as libpq 18 reads them
# Environment variables libpq sends as settings in the startup packet.
_ENV_SETTINGS = (("PGDATESTYLE", "datestyle"), ("PGTZ", "timezone"), ("PGGEQO", "geqo"))


def parse_dsn(dsn: str) -> Dict[str, str]:
    """The keywords a connection string names, as given: no service, environment or defaults.

    ``dsn`` is either libpq's ``key=value ...`` form or a ``postgresql://`` /
    ``postgres://`` URI. Raises ``ProgrammingError`` on a malformed string or
    an unknown keyword. Values are not checked here (libpq does not either).
    """
    return dsnparse.parse(dsn, KNOWN)


# -- resolved parameters -----------------------------------------------------


@dataclass(frozen=True)
class HostSpec:
    """One server to try: a host name, an IP address or a Unix socket directory."""

    host: str  # as given; the hostaddr when only that was given
    hostaddr: Optional[str] = None  # a numeric address; when set, it is what is dialled
    port: int = 5432

    @property
    def uses_unix_socket(self) -> bool:
        return self.hostaddr is None and self.host.startswith(("/", "@"))

    @property
    def unix_socket_path(self) -> str:
        """The address to connect to; a leading "@" names Linux's abstract namespace."""
        path = f"{self.host}/.s.PGSQL.{self.port}"
        return "\0" + path[1:] if path.startswith("@") else path


_SECRET_FIELDS = ("password", "sslpassword", "host_passwords")


@dataclass(frozen=True, repr=False)
class ConnParams:
    """Fully resolved, validated connection parameters."""

    hosts: Tuple[HostSpec, ...]
    user: str
    dbname: str
    password: Optional[str] = None  # the explicit one; see password_for()
    passfile: Optional[str] = None
    service: Optional[str] = None
    connect_timeout: Optional[float] = None  # seconds; None means no limit
    application_name: Optional[str] = None  # application_name, else the fallback
    options: Optional[str] = None
    settings: Tuple[Tuple[str, str], ...] = ()  # from PGDATESTYLE, PGTZ and PGGEQO
    # Kept as given even for a Unix socket, over which TLS is never attempted.
    sslmode: str = "prefer"
    sslnegotiation: str = "postgres"
    sslrootcert: Optional[str] = None  # a file, or "system" for the system's CA store
    sslcert: Optional[str] = None
    sslkey: Optional[str] = None
    sslpassword: Optional[str] = None
    sslcrl: Optional[str] = None
    sslcrldir: Optional[str] = None
    sslsni: bool = True
    ssl_min_protocol_version: Optional[str] = "TLSv1.2"
    ssl_max_protocol_version: Optional[str] = None
    channel_binding: str = "prefer"
    require_auth: Optional[RequireAuth] = None
    target_session_attrs: str = "any"
    # (major, minor): the version asked for, and the lowest the server may offer instead.
    max_protocol_version: Tuple[int, int] = PROTOCOL_3_0
    min_protocol_version: Tuple[int, int] = PROTOCOL_3_0
    load_balance_hosts: str = "disable"
    keepalives: bool = True
    keepalives_idle: Optional[int] = None
    keepalives_interval: Optional[int] = None
    keepalives_count: Optional[int] = None
    tcp_user_timeout: Optional[int] = None  # milliseconds
    host_passwords: Tuple[Optional[str], ...] = ()  # from the password file, per host

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                value = "***" if isinstance(value, str) else tuple(v and "***" for v in value)
            parts.append(f"{f.name}={value!r}")
        return f"ConnParams({', '.join(parts)})"

    @property
    def host(self) -> str:
        return self.hosts[0].host

    @property
    def port(self) -> int:
        return self.hosts[0].port

    @property
    def hostaddr(self) -> Optional[str]:
        return self.hosts[0].hostaddr

    @property
    def uses_unix_socket(self) -> bool:
        return self.hosts[0].uses_unix_socket

    @property
    def unix_socket_path(self) -> str:
        return self.hosts[0].unix_socket_path

    def password_for(self, host: HostSpec) -> Optional[str]:
        """The password for ``host``: the explicit one, else its password-file entry."""
        if self.password is not None:
            return self.password
        if host not in self.hosts:
            raise ValueError(f"{host!r} is not one of these parameters' hosts")
        index = self.hosts.index(host)
        return self.host_passwords[index] if index < len(self.host_passwords) else None

    def startup_parameters(self) -> Dict[str, str]:
        """The parameters for the StartupMessage, in the order libpq sends them."""
        params = {"user": self.user, "database": self.dbname}
        if self.options:
            params["options"] = self.options
        if self.application_name:
            params["application_name"] = self.application_name
        params["client_encoding"] = "UTF8"
        params.update(self.settings)
        return params


_FIELDS = frozenset(f.name for f in fields(ConnParams))


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


def _resolve(given: Mapping[str, str], environ: Mapping[str, str]) -> Dict[str, str]:
    """Fill what ``given`` leaves unset: service, then environment, then defaults."""
    resolved = dict(given)
    service = resolved.get("service", environ.get("PGSERVICE"))
    if service is not None:
        for key, text in servicefile.find_service(service, environ, KNOWN).items():
            resolved.setdefault(key, text)
    sslmode_defaulted = False
    for keyword, envvar, default, _ in OPTIONS:
        if keyword in resolved:
            continue
        value: Optional[str] = environ.get(envvar) if envvar else None
        if keyword == "client_encoding" and value is not None and not is_utf8(value):
            value = None  # see the module docstring
        if value is None and keyword == "sslmode" and environ.get("PGREQUIRESSL", "")[:1] == "1":
            value = "require"
        if value is None and default is not None:
            value, sslmode_defaulted = default, sslmode_defaulted or keyword == "sslmode"
        if value is not None:
            resolved[keyword] = value
    if sslmode_defaulted and resolved.get("sslrootcert") == "system":
        resolved["sslmode"] = "verify-full"  # libpq's stronger default for the system CAs
    return resolved


def _check_combinations(values: Dict[str, Any]) -> None:
    for key in _KEEPALIVE_SETTINGS:
        if values.get(key, 1) < 1:  # libpq passes it on (as 0 if negative) and fails
            raise invalid_dsn(
                f'invalid {key} value: "{values[key]}"; expected 1 or more (or keepalives=0)'
            )
    sslmode = values["sslmode"]
    if values["sslnegotiation"] == "direct" and sslmode not in SSLMODES[3:]:
        raise invalid_dsn(
            f'weak sslmode "{sslmode}" may not be used with sslnegotiation=direct'
            ' (use "require", "verify-ca", or "verify-full")'
        )
    if values.get("sslrootcert") == "system" and sslmode != "verify-full":
        raise invalid_dsn(
            f'weak sslmode "{sslmode}" may not be used with sslrootcert=system (use "verify-full")'
        )
    low, high = values.get("ssl_min_protocol_version"), values.get("ssl_max_protocol_version")
    if low and high and TLS_VERSIONS.index(low) > TLS_VERSIONS.index(high):
        raise invalid_dsn(
            f'invalid SSL protocol version range: ssl_min_protocol_version "{low}"'
            f' is above ssl_max_protocol_version "{high}"'
        )
    low = values["min_protocol_version"]
    # As libpq 18: 3.0 by default, for the servers and poolers that do not answer a
    # higher version with NegotiateProtocolVersion; the latest when the minimum is higher.
    high = values.setdefault(
        "max_protocol_version", PROTOCOL_LATEST if low > PROTOCOL_3_0 else PROTOCOL_3_0
    )
    if low > high:
        raise invalid_dsn('"min_protocol_version" is greater than "max_protocol_version"')


def _split_hosts(raw: Mapping[str, str]) -> List[Tuple[str, str, str]]:
    """(host, hostaddr, port) text for each server, as libpq's connectOptions2 pairs them."""
    host, hostaddr, port = raw.get("host", ""), raw.get("hostaddr", ""), raw.get("port", "")
    names = host.split(",") if host else None
    addrs = hostaddr.split(",") if hostaddr else None
    count = len(addrs) if addrs else len(names) if names else 1
    if names is not None and len(names) != count:
        raise invalid_dsn(f"could not match {len(names)} host names to {count} hostaddr values")
    ports = port.split(",") if port else [""]
    if len(ports) == 1:
        ports *= count
    elif len(ports) != count:
        raise invalid_dsn(f"could not match {len(ports)} port numbers to {count} hosts")
    return [(names[i] if names else "", addrs[i] if addrs else "", ports[i]) for i in range(count)]


def _host_spec(name: str, addr: str, port_text: str, default_dir: str) -> HostSpec:
    port = 5432
    if port_text:
        port = integer("port", port_text)
        if not 1 <= port <= 65535:
            raise invalid_dsn(f'invalid port number: "{port_text}"')
    if addr:
        try:
            socket.getaddrinfo(addr, None, flags=socket.AI_NUMERICHOST)
        except (OSError, UnicodeError, ValueError) as exc:
            raise invalid_dsn(f'could not parse network address "{addr}": {exc}') from None
        return HostSpec(name or addr, addr, port)
    return HostSpec(name or default_dir, None, port)


def _build(raw: Mapping[str, str], environ: Mapping[str, str]) -> ConnParams:
    values: Dict[str, Any] = {}
    for keyword, _, _, check in OPTIONS:
        if keyword in _READ_WITH_KEEPALIVES and values.get("keepalives") is False:
            continue  # libpq reads them only with keepalives on
        if check is not None and keyword in raw:
            values[keyword] = check(keyword, raw[keyword])
    _check_combinations(values)

    default_dir = _default_socket_dir()
    triples = _split_hosts(raw)
    hosts = tuple(_host_spec(*triple, default_dir) for triple in triples)
    user = values.get("user") or _default_user()
    dbname = values.get("dbname") or user
    values.update(
        hosts=hosts,
        user=user,
        dbname=dbname,
        passfile=values.get("passfile") or passfile.default_path(environ),
        application_name=values.get("application_name") or values.get("fallback_application_name"),
        settings=tuple(
            (name, environ[var])
            for var, name in _ENV_SETTINGS
            if var in environ and environ[var].lower() != "default"
        ),
    )
    if values.get("password") is None and values["passfile"]:
        values["host_passwords"] = tuple(
            passfile.lookup(
                values["passfile"], name or addr or default_dir, port, dbname, user, default_dir
            )
            for name, addr, port in triples
        )
    return ConnParams(**{key: value for key, value in values.items() if key in _FIELDS})


def make_params(dsn: Optional[str] = None, **kwargs: object) -> ConnParams:
    """Resolve connection parameters as ``psycopg2.connect(dsn, **kwargs)`` would.

    Precedence: keyword arguments, then ``dsn``, then the service file, then
    the ``PG*`` environment variables, then the built-in defaults.
    ``database`` is an alias of ``dbname``; ``None`` values are ignored;
    other non-strings (such as ``port=5432``) are converted with ``str()``.
    Raises ``ProgrammingError`` for an invalid value and ``NotSupportedError``
    for a valid one that this client cannot honour.
    """
    if kwargs.get("database") is not None and kwargs.get("dbname") is not None:
        raise TypeError("you can't specify both 'database' and 'dbname' arguments")
    given = parse_dsn(dsn) if dsn else {}
    for key, value in kwargs.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else str(value)
        if "\0" in text:
            raise invalid_dsn(f'connection option "{key}" contains a NUL character')
        dsnparse.store(given, KNOWN, "dbname" if key == "database" else key, text)
    environ = dict(os.environ)
    return _build(_resolve(given, environ), environ)
