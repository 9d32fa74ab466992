"""TLS policy as libpq applies it: when to ask for TLS, and how to check the server.

Shared by every I/O layer: this module builds an ``ssl.SSLContext`` and checks
an established TLS connection, and never opens a socket itself.  A driver:

1. ``make_context(...)`` for the attempt (root certificates per ``sslmode``,
   client certificate, CRLs, all read by ``tlsfiles``; protocol versions,
   ALPN ``postgresql``);
2. wraps its socket with ``server_hostname=server_hostname(host, sslsni)``;
3. after the handshake: ``check_hostname(sslsock, host)`` for verify-full
   (required when ``context.check_hostname`` is off, as it is when no SNI is
   sent, and harmless otherwise), and ``check_direct_alpn(sslsock)`` for
   direct TLS;
4. hands ``channel_binding_data(sslsock)`` to the ``Authenticator``.
"""

from __future__ import annotations

import ssl
import warnings
from typing import Optional, Tuple

from ..errors import OperationalError, ProgrammingError

# Read from the server certificate (certs), and part of this module's interface too.
from ._certs import CHANNEL_BINDING_TYPE as CHANNEL_BINDING_TYPE
from ._certs import SSLSocketLike as SSLSocketLike
from ._certs import certificate_hash as certificate_hash
from ._certs import channel_binding_data as channel_binding_data
from ._certs import check_hostname as check_hostname
from ._certs import match_hostname as match_hostname

# The files libpq reads (tlsfiles), and part of this module's interface too.
from ._files import SYSTEM_ROOTS as SYSTEM_ROOTS
from ._files import check_key_file_permissions as check_key_file_permissions
from ._files import default_client_cert as default_client_cert
from ._files import default_client_key as default_client_key
from ._files import default_crl as default_crl
from ._files import default_root_cert as default_root_cert
from ._files import load_client_cert, load_root_certs

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_VERIFYING = ("verify-ca", "verify-full")
_STRONG = ("require", *_VERIFYING)  # the modes direct TLS may be used with

ALPN_PROTOCOL = "postgresql"  # what libpq 17 offers, and direct TLS requires
DEFAULT_MIN_PROTOCOL_VERSION = "TLSv1.2"  # libpq's default ssl_min_protocol_version

_TLS_VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


def attempts(sslmode: str, unix_socket: bool) -> Tuple[bool, ...]:
    """Whether each connection attempt asks for TLS, in order.

    ``allow`` tries without TLS first and with TLS only when that fails;
    ``prefer`` asks for TLS and carries on without it when the server
    refuses (that happens inside one attempt).  Unix sockets never use TLS,
    as in libpq.
    """
    if sslmode not in SSLMODES:
        raise OperationalError(f"invalid sslmode value: {sslmode!r}")
    if unix_socket or sslmode == "disable":
        return (False,)
    if sslmode == "allow":
        return (False, True)
    return (True,)


def tls_required(sslmode: str) -> bool:
    """Whether a server that refuses TLS must fail the connection."""
    return sslmode in _STRONG


# -- protocol versions -------------------------------------------------------


def parse_protocol_version(value: Optional[str], keyword: str) -> Optional[ssl.TLSVersion]:
    """``TLSv1`` ... ``TLSv1.3`` (any case) as libpq accepts them; None or '' for no bound.

    Raises ``ProgrammingError`` for anything else, naming ``keyword``.
    """
    if not value:
        return None
    version = _TLS_VERSIONS.get(value.lower())
    if version is None:
        raise ProgrammingError(
            f'invalid "{keyword}" value: "{value}" (use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)'
        )
    return version


def protocol_version_range(
    min_version: Optional[str], max_version: Optional[str]
) -> Tuple[Optional[ssl.TLSVersion], Optional[ssl.TLSVersion]]:
    """The (minimum, maximum) TLS versions; a minimum of None means libpq's TLSv1.2.

    An empty minimum means no minimum at all, as in libpq.  Raises
    ``ProgrammingError`` for an unknown version or a minimum above the maximum.
    """
    if min_version is None:
        min_version = DEFAULT_MIN_PROTOCOL_VERSION
    low = parse_protocol_version(min_version, "ssl_min_protocol_version")
    high = parse_protocol_version(max_version, "ssl_max_protocol_version")
    if low is not None and high is not None and low > high:
        raise ProgrammingError(
            f"invalid SSL protocol version range: ssl_min_protocol_version={min_version} is "
            f"above ssl_max_protocol_version={max_version}"
        )
    return low, high


# -- the context -------------------------------------------------------------


def make_context(
    sslmode: str,
    sslrootcert: Optional[str] = None,
    *,
    sslcert: Optional[str] = None,
    sslkey: Optional[str] = None,
    sslpassword: Optional[str] = None,
    sslcrl: Optional[str] = None,
    sslcrldir: Optional[str] = None,
    min_version: Optional[str] = None,
    max_version: Optional[str] = None,
    direct: bool = False,
    host: Optional[str] = None,
    sslsni: bool = True,
) -> ssl.SSLContext:
    """An ``SSLContext`` for one connection attempt, following libpq's rules.

    - Verification: verify-ca and verify-full check the chain against
      ``sslrootcert`` (default ``~/.postgresql/root.crt``); ``require`` does
      so too when that file exists; ``sslrootcert=system`` uses the system's
      trusted CAs and needs ``verify-full``.
    - verify-full also checks the name: Python checks it during the handshake
      when SNI is sent; pass ``host`` (and ``sslsni``) so that, when it is not
      (IP addresses, ``sslsni=0``), the caller checks it with
      ``check_hostname`` instead.  Without ``host``, Python always checks.
    - ``sslcert``/``sslkey`` (default ``~/.postgresql/postgresql.crt``/``.key``
      when the certificate exists), decrypted with ``sslpassword``.
    - ``sslcrl``/``sslcrldir`` (default ``~/.postgresql/root.crl`` when it
      exists) revoke certificates of the verified chain.
    - ``min_version``/``max_version``: 'TLSv1.2' style; the minimum defaults to TLSv1.2.
    - ALPN ``postgresql`` is always offered.

    Every failure is an ``OperationalError`` that names the file or option at fault.
    """
    if sslmode not in SSLMODES:
        raise OperationalError(f"invalid sslmode value: {sslmode!r}")
    if direct and sslmode not in _STRONG:
        raise OperationalError(
            f'weak sslmode "{sslmode}" may not be used with sslnegotiation=direct '
            '(use "require", "verify-ca", or "verify-full")'
        )
    if sslrootcert == SYSTEM_ROOTS and sslmode != "verify-full":
        raise OperationalError(
            f'weak sslmode "{sslmode}" may not be used with sslrootcert=system (use "verify-full")'
        )
    try:
        low, high = protocol_version_range(min_version, max_version)
    except ProgrammingError as exc:
        raise OperationalError(str(exc)) from None

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # TLSv1 and TLSv1.1 are deprecated, but may be asked for
        warnings.simplefilter("ignore", DeprecationWarning)
        if low is not None:
            context.minimum_version = low
        if high is not None:
            context.maximum_version = high
    if ssl.HAS_ALPN:
        context.set_alpn_protocols([ALPN_PROTOCOL])
    if sslmode in _STRONG:  # require verifies too, when the root certificate file exists
        load_root_certs(
            context,
            sslrootcert or None,
            sslcrl or None,
            sslcrldir or None,
            required=sslmode in _VERIFYING,
        )
    load_client_cert(context, sslcert or None, sslkey or None, sslpassword or None)
    if sslmode == "verify-full":
        context.check_hostname = host is None or server_hostname(host, sslsni) is not None
    return context


# -- the handshake and after -------------------------------------------------


def server_hostname(host: Optional[str], sslsni: bool = True) -> Optional[str]:
    """The name to send as SNI (and pass as ``server_hostname``), or None for none.

    As libpq: only host names are sent, never IP literals (anything made of
    digits and dots, or containing a colon), and nothing when ``sslsni`` is off.
    """
    if not sslsni or not host or host.startswith("/"):
        return None
    if all(char in "0123456789." for char in host) or ":" in host:
        return None
    return host


def direct_alpn_ok(sslsock: SSLSocketLike) -> bool:
    """Whether the server selected ALPN ``postgresql``, as direct TLS requires."""
    return sslsock.selected_alpn_protocol() == ALPN_PROTOCOL


def check_direct_alpn(sslsock: SSLSocketLike) -> None:
    """Refuse a direct TLS connection on which the server did not select ``postgresql``."""
    selected = sslsock.selected_alpn_protocol()
    if selected is None:
        raise OperationalError(
            "direct SSL connection was established without ALPN protocol negotiation "
            "extension; the server is not PostgreSQL 17 or later (use sslnegotiation=postgres)"
        )
    if selected != ALPN_PROTOCOL:
        raise OperationalError(
            f"SSL connection was established with unexpected ALPN protocol {selected!r}"
        )


# -- handshake failures ------------------------------------------------------

_VERSION_REASONS = frozenset(
    {
        "NO_PROTOCOLS_AVAILABLE",
        "UNSUPPORTED_PROTOCOL",
        "BAD_PROTOCOL_VERSION_NUMBER",
        "UNKNOWN_PROTOCOL",
        "UNKNOWN_SSL_VERSION",
        "UNSUPPORTED_SSL_VERSION",
        "WRONG_SSL_VERSION",
        "WRONG_VERSION_NUMBER",
        "TLSV1_ALERT_PROTOCOL_VERSION",
        "VERSION_TOO_HIGH",
        "VERSION_TOO_LOW",
    }
)


def handshake_error(
    exc: BaseException,
    *,
    sslrootcert: Optional[str] = None,
    min_version: Optional[str] = None,
    max_version: Optional[str] = None,
) -> OperationalError:
    """The ``OperationalError`` for a failed TLS handshake, worded after libpq's."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = f"SSL error: certificate verify failed: {exc.verify_message}"
        if sslrootcert == SYSTEM_ROOTS:
            text += (
                " (sslrootcert=system trusts only the system's CAs; for a private CA, "
                "name its certificate in sslrootcert)"
            )
        return OperationalError(text)
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        text = f"SSL error: {reason}"
        if reason in _VERSION_REASONS:
            low = min_version or DEFAULT_MIN_PROTOCOL_VERSION
            high = max_version or "TLSv1.3"
            text += (
                ". This may indicate that the server does not support any SSL protocol "
                f"version between {low} and {high}."
            )
        return OperationalError(text)
    return OperationalError(f"SSL handshake failed: {exc}")
