"""The files libpq reads for TLS, loaded into an ``ssl.SSLContext`` as libpq loads them.

Root certificates (``sslrootcert``, or the system's trusted CAs with
``sslrootcert=system``), revocation lists (``sslcrl``, ``sslcrldir``) and the
client certificate and key (``sslcert``, ``sslkey``, ``sslpassword``), each
defaulting to its file under ``~/.postgresql``, with libpq's key-file
permission check.  Which of them an ``sslmode`` needs is ``tls``'s business;
every failure here is an ``OperationalError`` that names the file at fault.
"""

from __future__ import annotations

import os
import ssl
import stat
import sys
from typing import List, Optional

from ..errors import OperationalError

SYSTEM_ROOTS = "system"  # sslrootcert=system: the system's trusted CAs (libpq 16)


def _home_file(name: str) -> str:
    return os.path.join(os.path.expanduser("~"), ".postgresql", name)


def default_root_cert() -> str:
    return _home_file("root.crt")


def default_client_cert() -> str:
    return _home_file("postgresql.crt")


def default_client_key() -> str:
    return _home_file("postgresql.key")


def default_crl() -> str:
    return _home_file("root.crl")


# -- root certificates and revocation lists ----------------------------------


def load_root_certs(
    context: ssl.SSLContext,
    sslrootcert: Optional[str],
    sslcrl: Optional[str],
    sslcrldir: Optional[str],
    *,
    required: bool,
) -> None:
    """Verify the server's chain against ``sslrootcert`` and the CRLs, as libpq.

    ``sslrootcert`` defaults to ``~/.postgresql/root.crt``; ``system`` loads the
    system's trusted CAs instead (and no CRLs).  When not ``required`` (sslmode
    ``require``), a root certificate file that does not exist leaves the
    context unverified; when ``required``, it is an error.
    """
    if sslrootcert == SYSTEM_ROOTS:
        try:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        except (OSError, ssl.SSLError) as exc:
            raise OperationalError(f"could not load system root certificate paths: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
        return
    root = sslrootcert or default_root_cert()
    exists = os.path.exists(root)
    # libpq: with require, a root certificate that is present is used as verify-ca.
    if not (required or exists):
        return
    if not exists:
        raise OperationalError(
            f'root certificate file "{root}" does not exist; either provide the file '
            "(sslrootcert=...), use the system's trusted roots with sslrootcert=system, "
            "or change sslmode to disable server certificate verification"
        )
    try:
        context.load_verify_locations(cafile=root)
    except (OSError, ssl.SSLError) as exc:
        raise OperationalError(f'could not read root certificate file "{root}": {exc}') from None
    _load_crls(context, sslcrl, sslcrldir)
    context.verify_mode = ssl.CERT_REQUIRED


def _load_crls(context: ssl.SSLContext, sslcrl: Optional[str], sslcrldir: Optional[str]) -> None:
    """Revocation lists for the verified chain, checked for every certificate (as libpq).

    libpq ignores CRL files it cannot load; here only the default
    ``~/.postgresql/root.crl`` is optional, and a CRL that was asked for by
    name must load, since a silently missing CRL would accept revoked servers.
    """
    if sslcrl is None and sslcrldir is None:
        default = default_crl()
        if os.path.isfile(default):
            try:
                context.load_verify_locations(cafile=default)
            except (OSError, ssl.SSLError):
                return  # as libpq: the default CRL is optional
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        return
    if sslcrl is not None:
        try:
            context.load_verify_locations(cafile=sslcrl)
        except (OSError, ssl.SSLError) as exc:
            raise OperationalError(
                f'could not load SSL certificate revocation list "{sslcrl}": {exc}; '
                "fix sslcrl or leave it unset"
            ) from None
    if sslcrldir is not None:
        if not os.path.isdir(sslcrldir):
            raise OperationalError(
                f'SSL certificate revocation list directory "{sslcrldir}" is not a directory; '
                "fix sslcrldir or leave it unset"
            )
        context.load_verify_locations(capath=sslcrldir)
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN


# -- the client certificate and key ------------------------------------------


def check_key_file_permissions(path: str, st: os.stat_result) -> None:
    """libpq's rule: no group/world access, except group read when root owns the file."""
    if os.name != "posix" or sys.platform == "cygwin":
        return
    if st.st_uid == 0:
        bad = st.st_mode & (stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO)
    else:
        bad = st.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    if bad:
        raise OperationalError(
            f'private key file "{path}" has group or world access; file must have permissions '
            "u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) "
            "or less if owned by root"
        )


def load_client_cert(
    context: ssl.SSLContext,
    sslcert: Optional[str],
    sslkey: Optional[str],
    sslpassword: Optional[str],
) -> None:
    """The client certificate and its key, decrypted with ``sslpassword``, as libpq.

    ``sslcert``/``sslkey`` default to ``~/.postgresql/postgresql.crt``/``.key``;
    no certificate file means no client certificate, without error.
    """
    cert = sslcert or default_client_cert()
    try:
        os.stat(cert)
    except (FileNotFoundError, NotADirectoryError):
        return  # as libpq: no certificate, and the server decides whether that will do
    except OSError as exc:
        raise OperationalError(
            f'could not open certificate file "{cert}": {exc.strerror}'
        ) from None
    key = sslkey or default_client_key()
    try:
        key_stat = os.stat(key)
    except FileNotFoundError:
        raise OperationalError(
            f'certificate present, but not private key file "{key}"; set sslkey to the '
            f'private key of "{cert}"'
        ) from None
    except OSError as exc:
        raise OperationalError(f'could not stat private key file "{key}": {exc.strerror}') from None
    if not stat.S_ISREG(key_stat.st_mode):
        raise OperationalError(f'private key file "{key}" is not a regular file')
    check_key_file_permissions(key, key_stat)

    asked: List[bool] = []

    def password() -> bytes:
        asked.append(True)
        return (sslpassword or "").encode("utf-8")

    try:
        context.load_cert_chain(cert, key, password=password)
    except ValueError:  # the passphrase is longer than OpenSSL accepts
        raise OperationalError(
            f'could not load private key file "{key}": sslpassword is too long'
        ) from None
    except (OSError, ssl.SSLError) as exc:
        message = _client_cert_error(cert, key, exc, bool(asked), sslpassword)
        raise OperationalError(message) from None


def _client_cert_error(
    cert: str, key: str, exc: BaseException, asked: bool, sslpassword: Optional[str]
) -> str:
    reason = getattr(exc, "reason", None)
    if reason == "KEY_VALUES_MISMATCH":
        return f'certificate "{cert}" does not match private key file "{key}"'
    if asked and sslpassword is None:
        return (
            f'private key file "{key}" is encrypted and no sslpassword was given; '
            "pass its passphrase as sslpassword"
        )
    if asked:
        return (
            f'could not load private key file "{key}": wrong sslpassword '
            "(the key could not be decrypted with it)"
        )
    return (
        f'could not load client certificate "{cert}" with private key file "{key}": {exc}; '
        "both must be PEM files, the certificate matching the key"
    )
