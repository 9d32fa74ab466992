"""TLS policy from libpq's sslmode: when to ask for TLS, and how to check the server.

Shared by every I/O layer; it builds an ``ssl.SSLContext`` and never opens a socket.
"""

from __future__ import annotations

import os
import ssl
from typing import Optional, Tuple

from .errors import OperationalError

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_VERIFYING = ("verify-ca", "verify-full")


def default_root_cert() -> str:
    return os.path.join(os.path.expanduser("~"), ".postgresql", "root.crt")


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
    return sslmode in ("require", *_VERIFYING)


def make_context(sslmode: str, sslrootcert: Optional[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # libpq's default minimum
    root = sslrootcert or default_root_cert()
    # libpq: with require, a root certificate that is present is used as verify-ca.
    verify = sslmode in _VERIFYING or (sslmode == "require" and os.path.exists(root))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if not os.path.exists(root):
        raise OperationalError(
            f'root certificate file "{root}" does not exist; either provide the file '
            "(sslrootcert=...) or change sslmode to disable server certificate verification"
        )
    try:
        context.load_verify_locations(cafile=root)
    except (OSError, ssl.SSLError) as exc:
        raise OperationalError(f'could not read root certificate file "{root}": {exc}') from None
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = sslmode == "verify-full"
    return context
