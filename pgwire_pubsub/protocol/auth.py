"""Authentication exchanges: cleartext password, MD5 and SCRAM-SHA-256(-PLUS).

Sans-IO: ``Authenticator.respond`` takes an Authentication* message and returns
the bytes of the answer (or None when nothing is to be sent).  Every request is
first checked against ``require_auth`` and ``channel_binding`` as libpq's
``check_expected_areq`` does, so a refused method never gets a password.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from ..errors import OperationalError, ProgrammingError, ProtocolViolation
from . import frontend
from . import messages as m
from .scram import ScramClient, ScramError

SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_256_PLUS = "SCRAM-SHA-256-PLUS"
CHANNEL_BINDING_MODES = ("disable", "prefer", "require")
REQUIRE_AUTH_METHODS = ("password", "md5", "gss", "sspi", "scram-sha-256", "oauth", "none")


class _Unset(enum.Enum):
    UNSET = "unset"


_UNSET = _Unset.UNSET

# AuthenticationRequest codes of the methods this client cannot perform.
_GSS, _GSS_CONTINUE, _SSPI = 7, 8, 9


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """PostgreSQL's MD5 answer: 'md5' + md5(md5(password + user) + salt)."""
    inner = hashlib.md5(password.encode("utf-8") + user.encode("utf-8")).hexdigest()
    return b"md5" + hashlib.md5(inner.encode("ascii") + salt).hexdigest().encode("ascii")


# -- require_auth ----------------------------------------------------------------


@dataclass(frozen=True)
class RequireAuth:
    """A parsed ``require_auth`` (libpq 16): the methods listed, and whether negated.

    ``allows(method)`` says whether the server may use a method (password,
    md5, gss, sspi, scram-sha-256), or let the client in without any
    authentication exchange (``none``).
    """

    methods: Tuple[str, ...]
    negated: bool = False

    def allows(self, method: str) -> bool:
        return (method in self.methods) != self.negated

    def __str__(self) -> str:
        return require_auth_text(self)


def require_auth_text(requirement: RequireAuth) -> str:
    """The require_auth value a requirement was parsed from."""
    prefix = "!" if requirement.negated else ""
    return ",".join(prefix + method for method in requirement.methods)


def parse_require_auth(value: Optional[str]) -> Optional[RequireAuth]:
    """Parse ``require_auth`` as libpq 16 does; None (no requirement) for None or ''.

    A comma-separated list (no spaces) of password, md5, gss, sspi,
    scram-sha-256 and none; either every element is negated with ``!`` or
    none is.  Raises ``ProgrammingError`` for an unknown method, a mix of
    negated and plain methods, or a method named twice.
    """
    if not value:
        return None
    negated = value.startswith("!")
    methods: List[str] = []
    for part in value.split(","):
        if part.startswith("!") and not negated:
            raise ProgrammingError(
                f'invalid require_auth: negative require_auth method "{part}" cannot be '
                "mixed with non-negative methods"
            )
        if negated and not part.startswith("!"):
            raise ProgrammingError(
                f'invalid require_auth: require_auth method "{part}" cannot be mixed with '
                "negative methods"
            )
        method = part[1:] if negated else part
        if method not in REQUIRE_AUTH_METHODS:
            raise ProgrammingError(
                f'invalid require_auth value: "{method}"; expected a comma-separated list of '
                f"{', '.join(REQUIRE_AUTH_METHODS)}, all or none of them prefixed with !"
            )
        if method in methods:
            raise ProgrammingError(
                f'invalid require_auth: require_auth method "{part}" is specified more than once'
            )
        methods.append(method)
    return RequireAuth(tuple(methods), negated)


# -- the exchange ----------------------------------------------------------------


class Authenticator:
    """Answers the server's authentication requests for one start-up.

    ``tls_binding`` is ``tls.channel_binding_data(sslsock)`` when the
    connection uses TLS, and None when it does not: it tells the
    Authenticator both whether TLS is in use and what SCRAM-SHA-256-PLUS binds
    to.  Left out, TLS is unknown (the older two-argument form): no channel
    binding, and no refusal of SCRAM-SHA-256-PLUS offered without TLS.
    """

    def __init__(
        self,
        user: str,
        password: Optional[str],
        *,
        channel_binding: str = "prefer",
        require_auth: Union[str, RequireAuth, None] = None,
        tls_binding: Union[Tuple[str, bytes], _Unset, None] = _UNSET,
    ) -> None:
        if channel_binding not in CHANNEL_BINDING_MODES:
            raise ProgrammingError(
                f'invalid channel_binding value: "{channel_binding}" '
                "(use disable, prefer or require)"
            )
        self._user = user
        self._password = password
        self._channel_binding = channel_binding
        if isinstance(require_auth, str):
            require_auth = parse_require_auth(require_auth)
        self._require_auth: Optional[RequireAuth] = require_auth
        self._tls_known = tls_binding is not _UNSET
        self._tls_binding = tls_binding if isinstance(tls_binding, tuple) else None
        self._scram: Optional[ScramClient] = None
        self._scram_done = False
        self._finished = False  # the client completed an exchange (libpq's client_finished_auth)
        self.method: Optional[str] = None
        self.mechanism: Optional[str] = None  # the SASL mechanism chosen
        self.channel_bound = False  # a SCRAM-SHA-256-PLUS exchange was completed

    def __repr__(self) -> str:
        return (
            f"Authenticator(user={self._user!r}, method={self.method!r}, "
            f"mechanism={self.mechanism!r}, channel_binding={self._channel_binding!r})"
        )

    def _need_password(self, method: str) -> str:
        self.method = method
        if self._password is None:
            raise OperationalError(
                f"the server asked for a password ({method} authentication) for user "
                f"{self._user!r} but none was supplied: pass password=..., set "
                "PGPASSWORD, or use a connection string with a password"
            )
        return self._password

    def respond(self, message: m.BackendMessage) -> Optional[bytes]:
        self._check_expected(message)
        if isinstance(message, m.AuthenticationOk):
            if self._scram is not None and not self._scram_done:
                raise ProtocolViolation(
                    "the server ended SCRAM authentication without proving that it knows "
                    "the password; refusing the connection"
                )
            return None
        if isinstance(message, m.AuthenticationCleartextPassword):
            password = self._need_password("password")
            self._finished = True
            return frontend.password_message(password.encode("utf-8"))
        if isinstance(message, m.AuthenticationMD5Password):
            password = self._need_password("md5")
            self._finished = True
            return frontend.password_message(md5_password(self._user, password, message.salt))
        if isinstance(message, m.AuthenticationSASL):
            return self._scram_start(message.mechanisms)
        if isinstance(message, m.AuthenticationSASLContinue):
            return self._scram_continue(message.data)
        if isinstance(message, m.AuthenticationSASLFinal):
            self._scram_final(message.data)
            return None
        if isinstance(message, m.AuthenticationUnsupported):
            raise OperationalError(
                f"the server requested {message.method_name} authentication, which "
                "pgwire_pubsub does not support; use password, md5 or scram-sha-256 "
                "in pg_hba.conf for this user"
            )
        raise ProtocolViolation(f"unexpected {type(message).__name__} during authentication")

    # -- libpq's check_expected_areq ---------------------------------------------

    def _check_expected(self, message: m.BackendMessage) -> None:
        if not isinstance(message, _AUTH_MESSAGES):
            return  # not an authentication request: respond() refuses it
        is_sasl = isinstance(message, _SASL_MESSAGES)
        is_ok = isinstance(message, m.AuthenticationOk)
        requirement = self._require_auth
        if requirement is not None:
            reason: Optional[str] = None
            if is_ok:
                if not requirement.allows("none") and not self._finished:
                    reason = "server did not complete authentication"
            else:
                methods, reason = _requested(message)
                if any(requirement.allows(method) for method in methods):
                    reason = None
            if reason is not None:
                raise OperationalError(
                    f'authentication method requirement "{require_auth_text(requirement)}" '
                    f"failed: {reason}"
                )
        if self._channel_binding == "require" and not is_sasl:
            if is_ok and not self.channel_bound:
                raise OperationalError(
                    "channel binding required, but server authenticated client without "
                    "channel binding"
                )
            if not is_ok:
                raise OperationalError(
                    "channel binding required but not supported by server's authentication request"
                )

    # -- SCRAM -------------------------------------------------------------------

    def _scram_start(self, mechanisms: Tuple[str, ...]) -> bytes:
        binding = self._tls_binding
        if self._channel_binding == "require" and binding is None:
            raise OperationalError("channel binding required, but SSL not in use")
        if self._scram is not None:
            raise ProtocolViolation("the server restarted SASL authentication")
        selected: Optional[str] = None
        if SCRAM_SHA_256_PLUS in mechanisms:
            if binding is None and self._tls_known:
                # TLS stripped on the way? The server would refuse an unbound
                # exchange anyway, since both sides support binding.
                raise OperationalError(
                    "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL "
                    "connection; refusing to authenticate (is something between this "
                    "client and the server removing TLS?)"
                )
            if binding is not None and self._channel_binding != "disable":
                selected = SCRAM_SHA_256_PLUS
        if selected is None and SCRAM_SHA_256 in mechanisms:
            selected = SCRAM_SHA_256
        if selected is None:
            raise OperationalError(
                "the server offered SASL mechanisms "
                f"{', '.join(mechanisms) or '(none)'}; pgwire_pubsub supports {SCRAM_SHA_256}"
            )
        if self._channel_binding == "require" and selected != SCRAM_SHA_256_PLUS:
            raise OperationalError(
                "channel binding is required, but server did not offer an authentication "
                "method that supports channel binding"
            )
        password = self._need_password("scram-sha-256")
        self.mechanism = selected
        # With TLS and binding not disabled: "p=tls-server-end-point" for PLUS, and "y"
        # (this client supports binding, the server seems not to) for plain SCRAM;
        # without, "n".
        use = binding if binding is not None and self._channel_binding != "disable" else None
        self._scram = ScramClient(self._user, password, use, plus=selected == SCRAM_SHA_256_PLUS)
        return frontend.sasl_initial_response(selected, self._scram.client_first())

    def _scram_continue(self, data: bytes) -> bytes:
        scram = self._scram_state("AuthenticationSASLContinue")
        try:
            final = scram.client_final(data)
        except ScramError as exc:
            raise ProtocolViolation(f"invalid SCRAM server-first-message: {exc}") from None
        return frontend.sasl_response(final)

    def _scram_final(self, data: bytes) -> None:
        scram = self._scram_state("AuthenticationSASLFinal")
        try:
            scram.verify_server_final(data)
        except ScramError as exc:
            raise OperationalError(
                "the server's SCRAM signature is invalid, so it did not prove that it "
                "knows the password: refusing the connection (is something "
                f"impersonating the server?): {exc}"
            ) from None
        self._scram_done = True
        self._finished = True
        self.channel_bound = self.mechanism == SCRAM_SHA_256_PLUS

    def _scram_state(self, what: str) -> ScramClient:
        if self._scram is None or self._scram_done:
            raise ProtocolViolation(f"the server sent {what} outside a SCRAM exchange")
        return self._scram


_SASL_MESSAGES = (m.AuthenticationSASL, m.AuthenticationSASLContinue, m.AuthenticationSASLFinal)
_AUTH_MESSAGES = (
    m.AuthenticationOk,
    m.AuthenticationCleartextPassword,
    m.AuthenticationMD5Password,
    m.AuthenticationUnsupported,
    *_SASL_MESSAGES,
)

# Unsupported request codes: the require_auth methods that allow them, and libpq's words.
_UNSUPPORTED = {
    _GSS: (("gss",), "server requested GSSAPI authentication"),
    _GSS_CONTINUE: (("gss", "sspi"), "server requested GSSAPI authentication"),
    _SSPI: (("sspi",), "server requested SSPI authentication"),
}


def _requested(message: m.BackendMessage) -> Tuple[Tuple[str, ...], str]:
    """The require_auth methods that allow a request, and libpq's words for refusing it."""
    if isinstance(message, m.AuthenticationCleartextPassword):
        return ("password",), "server requested a cleartext password"
    if isinstance(message, m.AuthenticationMD5Password):
        return ("md5",), "server requested a hashed password"
    if isinstance(message, _SASL_MESSAGES):
        return ("scram-sha-256",), "server requested SASL authentication"
    if isinstance(message, m.AuthenticationUnsupported):
        return _UNSUPPORTED.get(
            message.code, ((), "server requested an unknown authentication type")
        )
    return (), "server requested an unknown authentication type"
