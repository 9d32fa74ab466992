"""The client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, 7677), as libpq does it.

Sans-IO: messages in, messages out.  The salted password (PBKDF2, thousands of
HMAC rounds: the expensive part, and very expensive on PyPy) depends only on
the password, the salt and the iteration count, so it is kept, per process, for
the next connection to the same server; only a digest of the password is kept
with it, as the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import threading
import unicodedata
from typing import Dict, Optional, Tuple

NONCE_BYTES = 18  # as libpq
_CACHE_SIZE = 16  # (password, salt, iterations) triples remembered
_salted: Dict[Tuple[bytes, bytes, int], bytes] = {}
_salted_lock = threading.Lock()


class ScramError(Exception):
    """The server's SCRAM message is malformed, or its signature is wrong."""


def saslprep(text: str) -> Optional[str]:
    """SASLprep (RFC 4013) as PostgreSQL applies it to passwords; None when the text has
    prohibited characters or breaks the bidirectional rule (the raw password is then
    used, by the server and by libpq alike).  Unassigned code points are allowed."""
    if text.isascii() and text.isprintable():
        return text
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    normal = unicodedata.normalize("NFKC", mapped)
    for c in normal:
        if (stringprep.in_table_c12(c) or stringprep.in_table_c21_c22(c)
                or stringprep.in_table_c3(c) or stringprep.in_table_c4(c)
                or stringprep.in_table_c5(c) or stringprep.in_table_c6(c)
                or stringprep.in_table_c7(c) or stringprep.in_table_c8(c)
                or stringprep.in_table_c9(c)):
            return None
    if any(stringprep.in_table_d1(c) for c in normal):
        if any(stringprep.in_table_d2(c) for c in normal):
            return None
        if not (stringprep.in_table_d1(normal[0]) and stringprep.in_table_d1(normal[-1])):
            return None
    return normal


def salted_password(password: bytes, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC-SHA-256, computed once per (password, salt, iterations) per process."""
    key = (hashlib.sha256(password).digest(), salt, iterations)
    found = _salted.get(key)
    if found is None:
        found = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
        with _salted_lock:
            if len(_salted) >= _CACHE_SIZE:
                _salted.clear()
            _salted[key] = found
    return found


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ScramClient:
    """One exchange.  ``binding`` is ("tls-server-end-point", certificate hash) when TLS
    is in use; ``plus`` says whether the -PLUS mechanism (binding) was chosen."""

    def __init__(self, user: str, password: str, binding: Optional[Tuple[str, bytes]],
                 plus: bool, nonce: Optional[str] = None) -> None:
        prepared = saslprep(password)
        self._password = (password if prepared is None else prepared).encode("utf-8")
        if plus:
            if binding is None:
                raise ValueError("SCRAM-SHA-256-PLUS needs channel binding data")
            self._gs2_header = f"p={binding[0]},,".encode("ascii")
            self._binding_data = binding[1]
        else:
            # "y": this client could bind, but the server does not seem to offer it.
            self._gs2_header = b"y,," if binding is not None else b"n,,"
            self._binding_data = b""
        self._nonce = nonce or _b64(secrets.token_bytes(NONCE_BYTES))
        # PostgreSQL takes the user from the startup message and ignores this one (libpq
        # leaves it empty); other SCRAM servers, and proxies, may want it.
        name = (saslprep(user) or user).replace("=", "=3D").replace(",", "=2C")
        self._first_bare = f"n={name},r={self._nonce}"
        self._server_signature: Optional[bytes] = None

    def client_first(self) -> bytes:
        return self._gs2_header + self._first_bare.encode("utf-8")

    def client_final(self, server_first: bytes) -> bytes:
        text = _text(server_first, "server-first-message")
        nonce, salt, iterations = _parse_server_first(text, self._nonce)
        salted = salted_password(self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        channel = _b64(self._gs2_header + self._binding_data)
        without_proof = f"c={channel},r={nonce}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def verify_server_final(self, server_final: bytes) -> None:
        """Raises ``ScramError`` unless the server proved that it knows the password."""
        if self._server_signature is None:
            raise ScramError("the server-final-message came before the client-final-message")
        text = _text(server_final, "server-final-message")
        if text.startswith("e="):
            raise ScramError(f"the server refused the exchange: {text[2:]}")
        if not text.startswith("v="):
            raise ScramError(f"malformed server-final-message {text[:40]!r}")
        try:
            signature = base64.b64decode(text[2:].split(",", 1)[0], validate=True)
        except binascii.Error:
            raise ScramError("the server signature is not valid base64") from None
        if not hmac.compare_digest(signature, self._server_signature):
            raise ScramError("the server signature does not match")


def _text(message: bytes, what: str) -> str:
    try:
        return message.decode("ascii")
    except UnicodeDecodeError:
        raise ScramError(f"the {what} is not ASCII") from None


def _parse_server_first(text: str, client_nonce: str) -> Tuple[str, bytes, int]:
    """(nonce, salt, iterations) of ``r=...,s=...,i=...[,extensions]``."""
    if text.startswith("m="):
        raise ScramError("the server requires a SCRAM extension this client does not know")
    if text.startswith("e="):
        raise ScramError(f"the server refused the exchange: {text[2:]}")
    parts = text.split(",")
    if len(parts) < 3 or [p[:2] for p in parts[:3]] != ["r=", "s=", "i="]:
        raise ScramError(f"malformed server-first-message {text[:60]!r}")
    nonce, salt_text, count = parts[0][2:], parts[1][2:], parts[2][2:]
    if not nonce.startswith(client_nonce) or len(nonce) == len(client_nonce):
        raise ScramError("the server's nonce does not extend the client's")
    if not all("!" <= c <= "~" for c in nonce):
        raise ScramError("the server's nonce has characters outside printable ASCII")
    try:
        salt = base64.b64decode(salt_text, validate=True)
    except binascii.Error:
        raise ScramError("the salt is not valid base64") from None
    if not salt:
        raise ScramError("the salt is empty")
    if not count.isdigit() or not count.isascii() or int(count) < 1:
        raise ScramError(f"invalid iteration count {count[:20]!r}")
    return nonce, salt, int(count)
