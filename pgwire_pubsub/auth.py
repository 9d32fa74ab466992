"""Authentication exchanges: cleartext password, MD5 and SCRAM-SHA-256 (through scramp).

Sans-IO: ``Authenticator.respond`` takes an Authentication* message and returns
the bytes of the answer (or None when nothing is to be sent).
"""

from __future__ import annotations

import hashlib
from typing import Optional

from scramp import ScramClient, ScramException

from .errors import OperationalError, ProtocolViolation
from .protocol import frontend
from .protocol import messages as m

SCRAM_SHA_256 = "SCRAM-SHA-256"


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """PostgreSQL's MD5 answer: 'md5' + md5(md5(password + user) + salt)."""
    inner = hashlib.md5(password.encode("utf-8") + user.encode("utf-8")).hexdigest()
    return b"md5" + hashlib.md5(inner.encode("ascii") + salt).hexdigest().encode("ascii")


class Authenticator:
    """Answers the server's authentication requests for one start-up."""

    def __init__(self, user: str, password: Optional[str]) -> None:
        self._user = user
        self._password = password
        self._scram: Optional[ScramClient] = None
        self._scram_done = False
        self.method: Optional[str] = None

    def __repr__(self) -> str:
        return f"Authenticator(user={self._user!r}, method={self.method!r})"

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
        if isinstance(message, m.AuthenticationOk):
            if self._scram is not None and not self._scram_done:
                raise ProtocolViolation(
                    "the server ended SCRAM authentication without proving that it knows "
                    "the password; refusing the connection"
                )
            return None
        if isinstance(message, m.AuthenticationCleartextPassword):
            password = self._need_password("password")
            return frontend.password_message(password.encode("utf-8"))
        if isinstance(message, m.AuthenticationMD5Password):
            password = self._need_password("md5")
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

    def _scram_start(self, mechanisms: tuple[str, ...]) -> bytes:
        if SCRAM_SHA_256 not in mechanisms:
            raise OperationalError(
                "the server offered SASL mechanisms "
                f"{', '.join(mechanisms) or '(none)'}; pgwire_pubsub supports {SCRAM_SHA_256}"
            )
        password = self._need_password("scram-sha-256")
        if self._scram is not None:
            raise ProtocolViolation("the server restarted SASL authentication")
        self._scram = ScramClient([SCRAM_SHA_256], self._user, password)
        first = self._scram.get_client_first().encode("utf-8")
        return frontend.sasl_initial_response(SCRAM_SHA_256, first)

    def _scram_continue(self, data: bytes) -> bytes:
        scram = self._scram_state("AuthenticationSASLContinue")
        try:
            scram.set_server_first(data.decode("utf-8"))
            final = scram.get_client_final()
        except (ScramException, UnicodeDecodeError, ValueError) as exc:
            raise ProtocolViolation(f"invalid SCRAM server-first-message: {exc}") from None
        return frontend.sasl_response(final.encode("utf-8"))

    def _scram_final(self, data: bytes) -> None:
        scram = self._scram_state("AuthenticationSASLFinal")
        try:
            scram.set_server_final(data.decode("utf-8"))
        except (ScramException, UnicodeDecodeError, ValueError) as exc:
            raise OperationalError(
                "the server's SCRAM signature is invalid, so it did not prove that it "
                "knows the password: refusing the connection (is something "
                f"impersonating the server?): {exc}"
            ) from None
        self._scram_done = True

    def _scram_state(self, what: str) -> ScramClient:
        if self._scram is None or self._scram_done:
            raise ProtocolViolation(f"the server sent {what} outside a SCRAM exchange")
        return self._scram
