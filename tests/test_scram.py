"""The SCRAM client: RFC 7677's test vector, SASLprep, strict parsing of the server's
messages, and the salted password computed once per password, salt and iteration count."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, List

import pytest

import pgwire_pubsub as pgpubsub
from pgwire_pubsub.protocol import scram
from pgwire_pubsub.protocol.scram import ScramClient, ScramError, saslprep
from pgwire_pubsub.testing.pgcluster import Server

# RFC 7677, section 3.
NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_client() -> ScramClient:
    return ScramClient("user", "pencil", None, plus=False, nonce=NONCE)


def test_rfc7677_exchange() -> None:
    client = rfc_client()
    assert client.client_first() == b"n,,n=user,r=" + NONCE.encode()
    assert client.client_final(SERVER_FIRST) == CLIENT_FINAL
    client.verify_server_final(SERVER_FINAL)


def test_a_wrong_server_signature_is_refused() -> None:
    client = rfc_client()
    client.client_final(SERVER_FIRST)
    forged = b"v=" + b"A" * 43 + b"="
    with pytest.raises(ScramError, match="does not match"):
        client.verify_server_final(forged)


def test_a_server_final_before_the_client_final_is_refused() -> None:
    with pytest.raises(ScramError, match="before the client-final"):
        rfc_client().verify_server_final(SERVER_FINAL)


@pytest.mark.parametrize(("server_final", "words"), [
    (b"e=invalid-proof", "refused the exchange: invalid-proof"),
    (b"x=abc", "malformed server-final-message"),
    (b"v=not base64!", "not valid base64"),
    (b"v=\xff", "not ASCII"),
])
def test_malformed_server_finals(server_final: bytes, words: str) -> None:
    client = rfc_client()
    client.client_final(SERVER_FIRST)
    with pytest.raises(ScramError, match=words):
        client.verify_server_final(server_final)


@pytest.mark.parametrize(("server_first", "words"), [
    (b"m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=1", "extension"),
    (b"e=other-error", "refused the exchange"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=QQ==", "malformed"),
    (b"s=QQ==,r=rOprNGfwEbeRWgbNEkqOx,i=1", "malformed"),
    (b"r=someone-elses-nonce,s=QQ==,i=1", "does not extend"),
    (b"r=rOprNGfwEbeRWgbNEkqO,s=QQ==,i=1", "does not extend"),
    (b"r=rOprNGfwEbeRWgbNEkqO x,s=QQ==,i=1", "printable"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=*,i=1", "salt is not valid base64"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=,i=1", "salt is empty"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=0", "iteration count"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=-5", "iteration count"),
    (b"r=rOprNGfwEbeRWgbNEkqOx,s=QQ==,i=\xd9\xa3", "not ASCII"),
])
def test_malformed_server_firsts(server_first: bytes, words: str) -> None:
    with pytest.raises(ScramError, match=words):
        rfc_client().client_final(server_first)


def test_extensions_after_the_iteration_count_are_ignored() -> None:
    # ...but signed: the whole server-first-message is part of what the proof covers.
    final = rfc_client().client_final(SERVER_FIRST + b",x=future")
    assert final.split(b",p=")[0] == CLIENT_FINAL.split(b",p=")[0]
    assert final != CLIENT_FINAL


def test_gs2_headers() -> None:
    binding = ("tls-server-end-point", b"\x01" * 32)
    assert ScramClient("u", "p", None, plus=False).client_first().startswith(b"n,,n=u,r=")
    assert ScramClient("u", "p", binding, plus=False).client_first().startswith(b"y,,")
    plus = ScramClient("u", "p", binding, plus=True, nonce=NONCE)
    assert plus.client_first().startswith(b"p=tls-server-end-point,,")
    final = plus.client_final(SERVER_FIRST)
    assert final.startswith(b"c=" + base64.b64encode(b"p=tls-server-end-point,," + b"\x01" * 32))
    with pytest.raises(ValueError):
        ScramClient("u", "p", None, plus=True)


def test_user_names_are_escaped() -> None:
    assert ScramClient("a=b,c", "p", None, plus=False, nonce="N").client_first() == (
        b"n,,n=a=3Db=2Cc,r=N")


@pytest.mark.parametrize(("given", "prepared"), [
    ("pencil", "pencil"),
    ("with space", "with space"),
    ("I\u00adX", "IX"),  # RFC 4013 examples: soft hyphen mapped to nothing
    ("user", "user"),
    ("\u00aa", "a"),  # NFKC
    ("\u2168", "IX"),
    ("a\u00a0b", "a b"),  # a non-ASCII space becomes a space
    ("\u0007", None),  # prohibited: the raw password is used
    ("tab\there", None),
    ("\u0627\u0031", None),  # bidirectional rule: RandALCat must start and end it
    ("\u0627\u0031\u0628", "\u0627\u0031\u0628"),
    ("\u0627a\u0628", None),  # RandALCat and LCat mixed
])
def test_saslprep(given: str, prepared: Any) -> None:
    assert saslprep(given) == prepared


def count_pbkdf2(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    calls: List[int] = []
    real = hashlib.pbkdf2_hmac

    def counting(name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
        calls.append(iterations)
        return real(name, password, salt, iterations)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting)
    monkeypatch.setattr(scram, "_salted", {})
    return calls


def test_the_salted_password_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_pbkdf2(monkeypatch)
    for _ in range(3):
        client = rfc_client()
        client.client_final(SERVER_FIRST)
        client.verify_server_final(SERVER_FINAL)
    assert calls == [4096]
    other = ScramClient("user", "another", None, plus=False, nonce=NONCE)
    other.client_final(SERVER_FIRST)
    assert calls == [4096, 4096]


def test_a_reconnection_to_the_same_server_reuses_it(
    pg: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_pbkdf2(monkeypatch)
    for _ in range(3):
        with pgpubsub.connect(**pg.dsn_kwargs("scram_user")) as pubsub:
            pubsub.notify("scram_reuse", "x")
    assert calls == [4096]  # PostgreSQL's default scram_iterations
