"""libpq's connection keywords: one table of (keyword, environment variable, default,
check), and the check of each value, as libpq parses it (see ``conninfo`` for how the
values are resolved)."""

from __future__ import annotations

import locale
import re
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

from ..errors import NotSupportedError, ProgrammingError
from ..protocol.auth import RequireAuth, parse_require_auth
from ..protocol.frontend import PROTOCOL_3_0, PROTOCOL_3_2, PROTOCOL_LATEST
from ._dsn import invalid_dsn

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
SSLNEGOTIATIONS = ("postgres", "direct")
CHANNEL_BINDINGS = ("disable", "prefer", "require")
TARGET_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
LOAD_BALANCE_HOSTS = ("disable", "random")
TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
PROTOCOL_VERSIONS = {"3.0": PROTOCOL_3_0, "3.2": PROTOCOL_3_2, "latest": PROTOCOL_LATEST}

_INT_RE = re.compile(r"[ \t\n\r\f\v]*([+-]?[0-9]+)[ \t\n\r\f\v]*")
_INT32 = range(-(2**31), 2**31)


# -- value checks: each takes (keyword, value) and returns the value to keep --

Check = Callable[[str, str], Any]


def not_supported(key: str, value: Optional[str], reason: str) -> NotSupportedError:
    shown = f'{key}="{value}"' if value is not None else key
    return NotSupportedError(f"{shown} is not supported by pgwire_pubsub: {reason}")


def _invalid_value(key: str, value: str, accepted: Tuple[str, ...]) -> ProgrammingError:
    return invalid_dsn(f'invalid {key} value: "{value}"; expected one of {", ".join(accepted)}')


def _text(key: str, value: str) -> Optional[str]:
    return value or None


def _choice(*accepted: str, unsupported: Optional[Mapping[str, str]] = None) -> Check:
    def check(key: str, value: str) -> str:
        if value not in accepted:
            raise _invalid_value(key, value, accepted)
        if unsupported and value in unsupported:
            raise not_supported(key, value, unsupported[value])
        return value

    return check


def integer(key: str, value: str) -> int:
    """libpq's pqParseIntParam: a C int, white space around allowed."""
    match = _INT_RE.fullmatch(value)
    if match is None or int(match.group(1)) not in _INT32:
        raise invalid_dsn(f'invalid integer value "{value}" for connection option "{key}"')
    return int(match.group(1))


def _non_negative(key: str, value: str) -> int:
    return max(integer(key, value), 0)  # libpq sets a negative value as 0


def _connect_timeout(key: str, value: str) -> Optional[float]:
    seconds = integer(key, value)
    # libpq: zero or negative waits forever; 1 is raised to its 2-second minimum.
    return float(max(seconds, 2)) if seconds > 0 else None


def _tls_version(key: str, value: str) -> Optional[str]:
    for version in TLS_VERSIONS:  # libpq compares these without regard to case
        if value.lower() == version.lower():
            return version
    if value:
        raise _invalid_value(key, value, TLS_VERSIONS)
    return None


def _starts_with_one(reason: str) -> Check:
    """A switch libpq reads as on when its value starts with "1" and off otherwise."""

    def check(key: str, value: str) -> None:
        if value.startswith("1"):
            raise not_supported(key, value, reason)

    return check


def _unset_only(reason: str, secret: bool = False) -> Check:
    def check(key: str, value: str) -> None:
        if value:
            raise not_supported(key, None if secret else value, reason)

    return check


def _client_encoding(key: str, value: str) -> None:
    if value and not is_utf8(value):
        raise invalid_dsn(
            f'unsupported {key} "{value}": pgwire_pubsub always uses UTF8'
            " (accepted: UTF8 and its spellings, or auto in a UTF-8 locale)"
        )


def is_utf8(name: str) -> bool:
    if name == "auto":  # libpq takes the encoding of the LC_CTYPE locale
        try:
            name = locale.nl_langinfo(locale.CODESET)
        except (AttributeError, ValueError):
            name = locale.getpreferredencoding(False)
    # The server's clean_encoding_name: case and punctuation do not count.
    return re.sub("[^0-9a-z]", "", name.lower()) in ("utf8", "unicode")


def _server_bool(text: str) -> Optional[bool]:
    """The server's parse_bool: a prefix of true/false/yes/no, on, of(f), 1 or 0, any case."""
    lowered = text.lower()
    for word, meaning in (("true", True), ("false", False), ("yes", True), ("no", False)):
        if lowered and word.startswith(lowered):
            return meaning
    if lowered in ("on", "1"):
        return True
    if lowered in ("of", "off", "0"):
        return False
    return None


def _replication(key: str, value: str) -> None:
    """libpq passes it on; the server reads "database" or a boolean."""
    meaning = _server_bool(value)
    if not value or meaning is False:
        return
    if value == "database" or meaning:
        raise not_supported(key, value, "replication connections are not implemented")
    raise _invalid_value(key, value, ("database", "true", "false"))


def _protocol_version(key: str, value: str) -> Tuple[int, int]:
    if value not in PROTOCOL_VERSIONS:
        raise _invalid_value(key, value, tuple(PROTOCOL_VERSIONS))
    return PROTOCOL_VERSIONS[value]


def _require_auth(key: str, value: str) -> Optional[RequireAuth]:
    return parse_require_auth(value)


# -- the table ---------------------------------------------------------------


class Option(NamedTuple):
    keyword: str
    envvar: Optional[str]
    default: Optional[str]
    check: Optional[Check]  # None: handled when the hosts are built


_NO_GSS = "GSSAPI and Kerberos are not implemented"
_NO_OAUTH = "OAuth authentication is not implemented"
_NO_CERT_REQUIRE = "checking that the server asked for a certificate is not implemented"

# Every keyword libpq 18 knows, in libpq's order: (keyword, environment
# variable, default, check). Checks that return a value feed the ConnParams
# field of the same name.
OPTIONS: Tuple[Option, ...] = (
    Option("service", "PGSERVICE", None, _text),
    Option("user", "PGUSER", None, _text),
    Option("password", "PGPASSWORD", None, _text),
    Option("passfile", "PGPASSFILE", None, _text),
    Option("channel_binding", "PGCHANNELBINDING", "prefer", _choice(*CHANNEL_BINDINGS)),
    Option("connect_timeout", "PGCONNECT_TIMEOUT", None, _connect_timeout),
    Option("dbname", "PGDATABASE", None, _text),
    Option("host", "PGHOST", None, None),
    Option("hostaddr", "PGHOSTADDR", None, None),
    Option("port", "PGPORT", "5432", None),
    Option("client_encoding", "PGCLIENTENCODING", None, _client_encoding),
    Option("options", "PGOPTIONS", "", _text),
    Option("application_name", "PGAPPNAME", None, _text),
    Option("fallback_application_name", None, None, _text),
    Option("keepalives", None, None, lambda k, v: integer(k, v) != 0),
    Option("keepalives_idle", None, None, integer),
    Option("keepalives_interval", None, None, integer),
    Option("keepalives_count", None, None, integer),
    Option("tcp_user_timeout", None, None, _non_negative),
    Option("sslmode", "PGSSLMODE", "prefer", _choice(*SSLMODES)),
    Option("sslnegotiation", "PGSSLNEGOTIATION", "postgres", _choice(*SSLNEGOTIATIONS)),
    Option("sslcompression", "PGSSLCOMPRESSION", "0", _starts_with_one("TLS compression")),
    Option("sslcert", "PGSSLCERT", None, _text),
    Option("sslkey", "PGSSLKEY", None, _text),
    Option(
        "sslcertmode",
        "PGSSLCERTMODE",
        "allow",
        _choice("disable", "allow", "require", unsupported={"require": _NO_CERT_REQUIRE}),
    ),
    Option("sslpassword", None, None, _text),
    Option("sslrootcert", "PGSSLROOTCERT", None, _text),
    Option("sslcrl", "PGSSLCRL", None, _text),
    Option("sslcrldir", "PGSSLCRLDIR", None, _text),
    Option("sslsni", "PGSSLSNI", "1", lambda k, v: v.startswith("1")),
    Option("requirepeer", "PGREQUIREPEER", None, _unset_only("peer checks are not implemented")),
    Option("require_auth", "PGREQUIREAUTH", None, _require_auth),
    Option("min_protocol_version", "PGMINPROTOCOLVERSION", "3.0", _protocol_version),
    Option("max_protocol_version", "PGMAXPROTOCOLVERSION", None, _protocol_version),
    Option("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION", "TLSv1.2", _tls_version),
    Option("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION", None, _tls_version),
    Option(
        "gssencmode",
        "PGGSSENCMODE",
        "disable",
        _choice("disable", "prefer", "require", unsupported={"require": _NO_GSS}),
    ),
    Option("krbsrvname", "PGKRBSRVNAME", None, _unset_only(_NO_GSS)),
    Option("gsslib", "PGGSSLIB", None, _unset_only(_NO_GSS)),
    Option("gssdelegation", "PGGSSDELEGATION", "0", _starts_with_one(_NO_GSS)),
    Option("replication", None, None, _replication),
    Option("target_session_attrs", "PGTARGETSESSIONATTRS", "any", _choice(*TARGET_SESSION_ATTRS)),
    Option("load_balance_hosts", "PGLOADBALANCEHOSTS", "disable", _choice(*LOAD_BALANCE_HOSTS)),
    Option("scram_client_key", None, None, _unset_only("SCRAM keys are not implemented", True)),
    Option("scram_server_key", None, None, _unset_only("SCRAM keys are not implemented", True)),
    Option("oauth_issuer", None, None, _unset_only(_NO_OAUTH)),
    Option("oauth_client_id", None, None, _unset_only(_NO_OAUTH)),
    Option("oauth_client_secret", None, None, _unset_only(_NO_OAUTH, secret=True)),
    Option("oauth_scope", None, None, _unset_only(_NO_OAUTH)),
    Option("sslkeylogfile", None, None, _unset_only("TLS key logging is not implemented")),
)
KNOWN = frozenset(option.keyword for option in OPTIONS)
