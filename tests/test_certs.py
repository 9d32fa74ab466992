"""Reading X.509 certificates without a third-party parser: algorithms, names, libpq's check.

Certificates come from the openssl command; each reading is compared with what
was asked of openssl, and with asn1crypto (a dependency of scramp, not of the
package) where it is importable.  Certificates built here byte by byte cover
what openssl will not make: other string types, damaged structures.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import sysconfig
import textwrap
import threading
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import pytest
from certmaker import CertMaker, cert_maker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgwire_pubsub
from pgwire_pubsub import tls
from pgwire_pubsub.errors import OperationalError
from pgwire_pubsub.tls import _certs as certs

try:
    from asn1crypto import x509 as asn1_x509  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - scramp brings it, but only the tables are needed
    asn1_x509 = None

PACKAGE_DIR = Path(pgwire_pubsub.__file__).parent


# -- certificates made with openssl --------------------------------------------------


@pytest.fixture(scope="session")
def maker(tmp_path_factory: pytest.TempPathFactory) -> CertMaker:
    return cert_maker(tmp_path_factory, "x509", share_keys=True)


def asn1crypto_hash(der: bytes) -> Optional[str]:
    """asn1crypto's reading of the signature hash, None when it has none to give."""
    if asn1_x509 is None:
        return None
    try:
        return str(asn1_x509.Certificate.load(der).hash_algo)
    except ValueError:  # it does not know every algorithm (SHA-3 signatures)
        return None


def rfc5929(der: bytes, name: str) -> bytes:
    """tls-server-end-point computed independently of the package."""
    if name in ("md5", "sha1"):
        name = "sha256"
    if name == "shake256":
        return hashlib.shake_256(der).digest(64)
    return hashlib.new(name, der).digest()


def assert_signature_hash(der: bytes, expected: str) -> None:
    """The hash of the signature algorithm is ``expected`` (asn1crypto agreeing where it
    can tell), and the certificate hash is RFC 5929's for it."""
    assert certs.signature_hash_name(der) == expected
    oracle = asn1crypto_hash(der)
    if oracle is not None:
        assert oracle == expected
    assert certs.certificate_hash(der) == rfc5929(der, expected)


# -- signature algorithms ------------------------------------------------------------

SIGNATURES = [
    # (key, openssl digest option, RSA-PSS padding, hash name)
    ("rsa", "sha256", False, "sha256"),
    ("rsa", "sha384", False, "sha384"),
    ("rsa", "sha512", False, "sha512"),
    ("rsa", "sha224", False, "sha224"),
    ("rsa", "sha1", False, "sha1"),
    ("rsa", "sha3-384", False, "sha3_384"),
    ("rsa", "sha256", True, "sha256"),
    ("rsa", "sha512", True, "sha512"),
    ("rsa", "sha1", True, "sha1"),  # PSS parameters without a hash: SHA-1 by default
    ("rsa-pss-key", "sha384", False, "sha384"),
    ("ec256", "sha256", False, "sha256"),
    ("ec256", "sha384", False, "sha384"),
    ("ec256", "sha1", False, "sha1"),
    ("ec256", "sha3-256", False, "sha3_256"),
    ("ec384", "sha384", False, "sha384"),
    ("ec384", "sha512", False, "sha512"),
    ("dsa", "sha256", False, "sha256"),
    ("dsa", "sha1", False, "sha1"),
    ("ed25519", None, False, "sha512"),  # as before: the hash inside Ed25519
    ("ed448", None, False, "shake256"),
]


@pytest.mark.parametrize(("key", "digest", "pss", "expected"), SIGNATURES)
def test_signature_hash_and_certificate_hash(
    maker: CertMaker, key: str, digest: Optional[str], pss: bool, expected: str
) -> None:
    der = maker.der(key=key, digest=digest, pss=pss, subject=f"/CN={key}-{digest}-{pss}")
    assert_signature_hash(der, expected)
    assert tls.certificate_hash(der) == certs.certificate_hash(der)


def test_md5_signature_is_hashed_with_sha256(maker: CertMaker) -> None:
    try:
        der = maker.der(key="rsa", digest="md5", subject="/CN=md5")
    except subprocess.CalledProcessError:
        pytest.skip("this openssl refuses to sign with MD5")
    assert certs.signature_hash_name(der) == "md5"
    assert asn1crypto_hash(der) in ("md5", None)
    assert certs.certificate_hash(der) == hashlib.sha256(der).digest()


def test_sha1_signature_is_hashed_with_sha256(maker: CertMaker) -> None:
    der = maker.der(key="rsa", digest="sha1", subject="/CN=rsa-sha1-False")
    assert certs.certificate_hash(der) == hashlib.sha256(der).digest()


# -- names ---------------------------------------------------------------------------

V6 = ipaddress.IPv6Address("2001:db8::1").packed
# Of these four kinds of entry, only DNS names and IP addresses are read.
MIXED_SAN = "email:a@example.com,DNS:localhost,URI:https://example.com,IP:10.0.0.1"
NAMES = [
    # (subject, subjectAltName, the SAN entries read, the common names read)
    (
        "/CN=x",
        "DNS:db.example.com,DNS:Other.Test",
        [("dns_name", b"db.example.com"), ("dns_name", b"Other.Test")],
        ["x"],
    ),
    ("/CN=x", "IP:127.0.0.1", [("ip_address", bytes([127, 0, 0, 1]))], ["x"]),
    (
        "/CN=x",
        "IP:2001:db8::1,IP:::1",
        [("ip_address", V6), ("ip_address", bytes(15) + b"\x01")],
        ["x"],
    ),
    ("/CN=x", MIXED_SAN, [("dns_name", b"localhost"), ("ip_address", bytes([10, 0, 0, 1]))], ["x"]),
    ("/CN=db.example.com", None, [], ["db.example.com"]),
    ("/CN=*.example.com", "DNS:*.example.com", [("dns_name", b"*.example.com")], ["*.example.com"]),
    ("/CN=a.example.com/O=org/CN=b.example.com", None, [], ["a.example.com", "b.example.com"]),
    ("/CN=a.example.com+CN=b.example.com/O=org", None, [], ["a.example.com", "b.example.com"]),
    ("/O=no common name", None, [], []),
    ("/CN=caf\u00e9.example.com", None, [], ["caf\u00e9.example.com"]),
]


@pytest.mark.parametrize(("subject", "san", "alt_names", "common_names"), NAMES)
def test_names_are_what_was_put_in(
    maker: CertMaker,
    subject: str,
    san: Optional[str],
    alt_names: List[Tuple[str, bytes]],
    common_names: List[str],
) -> None:
    der = maker.der(subject=subject, san=san)
    assert certs.subject_alt_names(der) == alt_names
    assert certs.subject_common_names(der) == common_names
    if asn1_x509 is not None:
        cert = asn1_x509.Certificate.load(der)
        known = [(n.name, bytes(n.chosen.contents)) for n in cert.subject_alt_name_value or ()]
        assert [entry for entry in known if entry[0] in ("dns_name", "ip_address")] == alt_names


MATCHES = [
    # (subject, subjectAltName, host, matches)
    ("/CN=x", "DNS:db.example.com", "db.example.com", True),
    ("/CN=x", "DNS:db.example.com", "DB.EXAMPLE.COM", True),
    ("/CN=x", "DNS:db.example.com", "db.example.co", False),
    ("/CN=x", "DNS:*.example.com", "db.example.com", True),
    ("/CN=x", "DNS:*.example.com", "a.b.example.com", False),
    ("/CN=x", "DNS:*.example.com", ".example.com", False),  # the wildcard needs a label
    ("/CN=x", "DNS:*.example.com", "example.com", False),
    ("/CN=x", "DNS:x*.example.com", "xy.example.com", False),
    ("/CN=x", "DNS:*", "localhost", False),
    ("/CN=x", "IP:127.0.0.1", "127.0.0.1", True),
    ("/CN=x", "IP:127.0.0.1", "127.0.0.2", False),
    ("/CN=x", "IP:2001:db8::1,IP:::1", "2001:DB8:0::1", True),
    ("/CN=x", "IP:2001:db8::1,IP:::1", "::1", True),
    ("/CN=x", "IP:2001:db8::1", "2001:db8::2", False),
    ("/CN=x", MIXED_SAN, "10.0.0.1", True),
    ("/CN=x", MIXED_SAN, "LocalHost", True),
    ("/CN=x", MIXED_SAN, "example.com", False),
    ("/CN=db.example.com", None, "db.example.com", True),
    ("/CN=db.example.com", None, "Db.Example.Com", True),
    ("/CN=db.example.com", "DNS:other.test", "db.example.com", False),  # a DNS SAN hides it
    ("/CN=127.0.0.1", "DNS:localhost", "127.0.0.1", True),  # no IP SAN: the CN counts
    ("/CN=127.0.0.1", "IP:10.0.0.1", "127.0.0.1", False),  # an IP SAN hides it
    ("/CN=localhost", "IP:10.0.0.1", "localhost", True),  # no DNS SAN: the CN counts
    ("/CN=*.example.com", "DNS:*.example.com", "db.example.com", True),
    ("/CN=*.example.com", None, "a.b.example.com", False),
    ("/CN=a.example.com/O=org/CN=b.example.com", None, "a.example.com", True),
    ("/CN=a.example.com/O=org/CN=b.example.com", None, "b.example.com", False),  # first CN
    ("/CN=x", "DNS:127.0.0.1", "127.0.0.1", True),  # libpq compares DNS names with any host
    ("/CN=x", "IP:127.0.0.1", "localhost", False),  # but addresses only with addresses
]


@pytest.mark.parametrize(("subject", "san", "host", "matches"), MATCHES)
def test_match_hostname_follows_libpq(
    maker: CertMaker, subject: str, san: Optional[str], host: str, matches: bool
) -> None:
    der = maker.der(subject=subject, san=san)
    if matches:
        certs.match_hostname(der, host)
    else:
        with pytest.raises(OperationalError, match="does not match host name"):
            certs.match_hostname(der, host)


def test_the_functions_stay_importable_from_tls() -> None:
    for function in (
        "certificate_hash",
        "channel_binding_data",
        "check_hostname",
        "match_hostname",
    ):
        assert getattr(tls, function) is getattr(certs, function)
    assert tls.CHANNEL_BINDING_TYPE == "tls-server-end-point"


# -- certificates built byte by byte -------------------------------------------------


def tlv(tag: int, *contents: bytes) -> bytes:
    body = b"".join(contents)
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


SHA256_RSA = tlv(0x30, oid("1.2.840.113549.1.1.11"), b"\x05\x00")


def name(*rdns: Sequence[Tuple[str, int, bytes]]) -> bytes:
    return tlv(
        0x30, *(tlv(0x31, *(tlv(0x30, oid(t), tlv(tag, v)) for t, tag, v in rdn)) for rdn in rdns)
    )


def extension(ext_id: str, value: bytes, critical: Optional[bool] = None) -> bytes:
    flag = b"" if critical is None else tlv(0x01, b"\xff" if critical else b"\x00")
    return tlv(0x30, oid(ext_id), flag, tlv(0x04, value))


def san(*entries: Tuple[int, bytes]) -> bytes:
    return extension("2.5.29.17", tlv(0x30, *(tlv(tag, raw) for tag, raw in entries)))


def build(
    subject: bytes = b"",
    extensions: Sequence[bytes] = (),
    algorithm: bytes = SHA256_RSA,
    unique_ids: bytes = b"",
) -> bytes:
    subject = subject or name([("2.5.4.3", 0x0C, b"built")])
    validity = tlv(0x30, tlv(0x17, b"250101000000Z"), tlv(0x17, b"350101000000Z"))
    spki = tlv(0x30, SHA256_RSA, tlv(0x03, b"\x00\x01\x02"))
    issuer = subject
    tbs = [tlv(0xA0, tlv(0x02, b"\x02")), tlv(0x02, b"\x01"), algorithm, issuer, validity]
    tbs += [subject, spki]
    if unique_ids:
        tbs.append(unique_ids)
    if extensions:
        tbs.append(tlv(0xA3, tlv(0x30, *extensions)))
    return tlv(0x30, tlv(0x30, *tbs), algorithm, tlv(0x03, b"\x00sig"))


def test_built_certificates_are_certificates() -> None:
    der = build(extensions=[san((0x82, b"db.example.com"))])
    assert certs.signature_hash_name(der) == "sha256"
    assert certs.subject_alt_names(der) == [("dns_name", b"db.example.com")]
    assert certs.subject_common_names(der) == ["built"]
    if asn1_x509 is not None:
        cert = asn1_x509.Certificate.load(der)
        assert cert.hash_algo == "sha256"
        assert cert.subject.native == {"common_name": "built"}


@pytest.mark.parametrize(
    ("tag", "raw", "text"),
    [
        (0x0C, "caf\u00e9".encode(), "caf\u00e9"),  # UTF8String
        (0x13, b"db.example.com", "db.example.com"),  # PrintableString
        (0x14, b"caf\xe9", "caf\u00e9"),  # TeletexString, read as Latin-1
        (0x16, b"db.example.com", "db.example.com"),  # IA5String
        (0x1A, b"db.example.com", "db.example.com"),  # VisibleString
        (0x1C, "db\u00e9".encode("utf-32-be"), "db\u00e9"),  # UniversalString
        (0x1E, "db.example.com".encode("utf-16-be"), "db.example.com"),  # BMPString
    ],
)
def test_common_name_string_types(tag: int, raw: bytes, text: str) -> None:
    der = build(name([("2.5.4.6", 0x13, b"FR")], [("2.5.4.3", tag, raw)]))
    assert certs.subject_common_names(der) == [text]


@pytest.mark.parametrize(
    ("tag", "raw", "message"),
    [
        (0x0C, b"\xff\xfe", "not valid utf-8"),
        (0x04, b"db", "not a string"),
        (0x1E, b"odd", "not valid utf-16-be"),
    ],
)
def test_common_names_that_cannot_be_read(tag: int, raw: bytes, message: str) -> None:
    der = build(name([("2.5.4.3", tag, raw)]))
    with pytest.raises(OperationalError, match=message):
        certs.subject_common_names(der)
    with pytest.raises(OperationalError, match="could not read the server certificate's names"):
        certs.match_hostname(der, "db")


def test_subject_alt_names_edge_cases() -> None:
    other_name = tlv(0x30, oid("1.3.6.1.4.1.311.20.2.3"), tlv(0xA0, tlv(0x0C, b"u@x")))
    entries = [
        (0xA0, other_name[2:]),
        (0x81, b"a@b.c"),
        (0x82, b"db"),
        (0x86, b"http://x"),
        (0x87, b"\x0a\x00\x00\x01"),
        (0x88, oid("1.2.3")[2:]),
    ]
    der = build(extensions=[extension("2.5.29.19", tlv(0x30)), san(*entries)])
    assert certs.subject_alt_names(der) == [("dns_name", b"db"), ("ip_address", b"\n\0\0\1")]
    critical = extension("2.5.29.17", tlv(0x30, tlv(0x82, b"db")), critical=True)
    assert certs.subject_alt_names(build(extensions=[critical])) == [("dns_name", b"db")]
    assert certs.subject_alt_names(build(extensions=[san()])) == []  # empty: the CN counts
    certs.match_hostname(build(name([("2.5.4.3", 0x0C, b"db")]), [san()]), "db")
    assert certs.subject_alt_names(build(extensions=[extension("2.5.29.19", b"")])) == []
    with_ids = build(unique_ids=tlv(0x81, b"\x00\x01") + tlv(0x82, b"\x00\x02"))
    assert certs.subject_common_names(with_ids) == ["built"]
    assert certs.subject_alt_names(with_ids) == []


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (build(extensions=[san((0x82, b"a")), san((0x82, b"b"))]), "more than once"),
        (build(extensions=[extension("2.5.29.17", tlv(0x04, b"x"))]), "subjectAltName has tag"),
        (build(extensions=[tlv(0x30, oid("2.5.29.17"))]), "expected 2 or 3"),
        (build(unique_ids=tlv(0x82, b"") + tlv(0x81, b"")), "unexpected fields"),
        (build(unique_ids=tlv(0x05, b"")), "unexpected fields"),
    ],
)
def test_broken_extensions(der: bytes, message: str) -> None:
    with pytest.raises(OperationalError, match=message):
        certs.subject_alt_names(der)


def test_bad_names_in_match_hostname() -> None:
    der = build(extensions=[san((0x87, b"\x7f\x00\x01"))])
    with pytest.raises(OperationalError, match="address entry has an invalid length"):
        certs.match_hostname(der, "127.0.0.1")
    der = build(extensions=[san((0x82, b"db.example.com\x00.evil.test"))])
    with pytest.raises(OperationalError, match="embedded null"):
        certs.match_hostname(der, "db.example.com")
    with pytest.raises(OperationalError, match="does not match"):
        certs.match_hostname(build(), "db\x00")
    with pytest.raises(OperationalError, match="does not match"):
        certs.match_hostname(build(), "\udc80")


def pss(*fields: bytes) -> bytes:
    return tlv(0x30, oid("1.2.840.113549.1.1.10"), tlv(0x30, *fields))


def hash_id(dotted: str) -> bytes:
    return tlv(0xA0, tlv(0x30, oid(dotted), b"\x05\x00"))


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (pss(), "sha1"),
        (pss(tlv(0xA2, tlv(0x02, b"\x20"))), "sha1"),
        (pss(hash_id("2.16.840.1.101.3.4.2.3")), "sha512"),
        (pss(hash_id("2.16.840.1.101.3.4.2.6")), "sha512_256"),
        (pss(hash_id("2.16.840.1.101.3.4.2.8")), "sha3_256"),
        (tlv(0x30, oid("1.2.840.113549.1.1.13"), b"\x05\x00"), "sha512"),
        (tlv(0x30, oid("1.2.840.10045.4.3.3")), "sha384"),
        (tlv(0x30, oid("1.2.840.113549.1.1.15")), "sha512_224"),
        (tlv(0x30, oid("1.3.14.3.2.29")), "sha1"),
        (tlv(0x30, oid("2.16.840.1.101.3.4.3.12")), "sha3_512"),
        (tlv(0x30, oid("2.16.840.1.101.3.4.3.16")), "sha3_512"),
        (tlv(0x30, oid("1.3.101.112")), "sha512"),
        (tlv(0x30, oid("1.3.101.113")), "shake256"),
    ],
)
def test_built_signature_algorithms(algorithm: bytes, expected: str) -> None:
    assert_signature_hash(build(algorithm=algorithm), expected)


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        (tlv(0x30, oid("1.2.840.113549.1.1.2")), r"algorithm 1\.2\.840\.113549\.1\.1\.2 is not"),
        (tlv(0x30, oid("1.2.840.113549.1.1.10")), "RSASSA-PSS parameters is missing"),
        (tlv(0x30, oid("1.2.840.113549.1.1.10"), b"\x05\x00"), "RSASSA-PSS parameters has tag"),
        (pss(hash_id("2.16.840.1.101.3.4.2.12")), "RSASSA-PSS hash algorithm .* not supported"),
        (pss(tlv(0xA0, b"")), "RSASSA-PSS hash holds 0 elements"),
        (pss(tlv(0xA0, tlv(0x30))), "RSASSA-PSS hash is missing"),
        (tlv(0x30), "signatureAlgorithm is missing"),
        (tlv(0x30, tlv(0x05, b"")), "signatureAlgorithm has tag 0x05"),
        (tlv(0x30, tlv(0x06, b"")), "not a valid object identifier"),
        (tlv(0x30, tlv(0x06, b"\x2a\x86")), "not a valid object identifier"),
        (tlv(0x30, tlv(0x06, b"\x2a\x80\x01")), "padded arc"),
    ],
)
def test_signature_algorithms_that_cannot_be_read(algorithm: bytes, message: str) -> None:
    der = build(algorithm=algorithm)
    with pytest.raises(OperationalError, match="could not determine server certificate signature"):
        certs.signature_hash_name(der)
    with pytest.raises(OperationalError, match=message):
        certs.certificate_hash(der)


# -- malformed DER -------------------------------------------------------------------

READERS: List[Callable[[bytes], object]] = [
    certs.signature_hash_name,
    certs.certificate_hash,
    certs.subject_alt_names,
    certs.subject_common_names,
    lambda der: certs.match_hostname(der, "db.example.com"),
    lambda der: certs.match_hostname(der, "127.0.0.1"),
]


def read_everything(der: bytes) -> None:
    """Every reading of ``der``: each may fail, but only with OperationalError."""
    for read in READERS:
        try:
            read(der)
        except OperationalError as exc:
            assert str(exc)


@pytest.fixture(scope="session")
def real_der(maker: CertMaker) -> bytes:
    return maker.der(
        key="rsa",
        subject="/CN=db.example.com",
        san="DNS:db.example.com,IP:127.0.0.1,email:a@example.com",
    )


def test_truncated_at_every_offset(real_der: bytes) -> None:
    for end in range(len(real_der)):
        for read in READERS:
            with pytest.raises(OperationalError):
                read(real_der[:end])


def test_trailing_data_is_refused(real_der: bytes) -> None:
    for read in READERS:
        with pytest.raises(OperationalError, match="holds 2 elements, expected 1"):
            read(real_der + b"\x05\x00")


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "certificate holds 0 elements"),
        (b"\x30", r"truncated \(a header at byte 0\)"),
        (b"\x30\x05\x02\x01", "element of 5 bytes at byte 2, but only 2 bytes are left"),
        (b"\x30\x82\x01", r"truncated \(a length at byte 2\)"),
        (b"\x30\x80\x00\x00", "indefinite length"),
        (b"\x30\x85\x00\x00\x00\x00\x01\x00", "length of 5 bytes"),
        (b"\x30\xff", "length of 127 bytes"),
        (b"\x1f\x01\x00", "high tag number"),
        (b"\x31\x00", "certificate has tag 0x31, expected 0x30"),
        (b"\x30\x03\x02\x01\x00", "certificate holds 1 elements, expected 3"),
        (tlv(0x30, tlv(0x30), tlv(0x30), tlv(0x03)), "tbsCertificate holds too few fields"),
        (tlv(0x30, tlv(0x30), tlv(0x30), tlv(0x04)), "signatureValue has tag 0x04"),
        (tlv(0x30, tlv(0x30, *[tlv(0x30)] * 6), tlv(0x30), tlv(0x03)), "serialNumber has tag"),
    ],
)
def test_malformed_der(der: bytes, message: str) -> None:
    for read in READERS:
        with pytest.raises(OperationalError, match=message):
            read(der)


def test_lengths_that_overrun(real_der: bytes) -> None:
    # The certificate claims one byte more than there is.
    assert real_der[:2] == b"\x30\x82"
    length = int.from_bytes(real_der[2:4], "big")
    der = real_der[:2] + (length + 1).to_bytes(2, "big") + real_der[4:]
    for read in READERS:
        with pytest.raises(OperationalError, match=f"{length + 1} bytes at byte 4, but only"):
            read(der)
    # Its last element, the 2048-bit RSA signature, claims one byte more than the certificate holds.
    start = len(real_der) - 261
    assert real_der[start : start + 4] == b"\x03\x82\x01\x01"
    der = real_der[:start] + b"\x03\x82\x01\x02" + real_der[start + 4 :]
    for read in READERS:
        with pytest.raises(OperationalError, match=r"258 bytes at .*, but only 257 bytes are left"):
            read(der)


def test_long_form_lengths_that_are_not_minimal_are_read() -> None:
    der = build()
    body = der[2 + (der[1] & 0x7F if der[1] > 0x80 else 0) :]
    padded = b"\x30\x84" + len(body).to_bytes(4, "big") + body
    assert certs.signature_hash_name(padded) == "sha256"
    assert certs.subject_common_names(padded) == ["built"]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    read_everything(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=60).map(lambda body: tlv(0x30, body)))
def test_random_sequences(data: bytes) -> None:
    read_everything(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_certificates(real_der: bytes, data: st.DataObject) -> None:
    damaged = bytearray(real_der)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if action == "set":
            damaged[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            damaged.insert(at, data.draw(st.integers(0, 255)))
        else:
            del damaged[at]
    read_everything(bytes(damaged))


# -- no dependency at run time --------------------------------------------------------

ALLOWED: frozenset[str] = frozenset()
# pgwire_pubsub.testing is the toolkit for tests, installed with the `testing` extra: it may
# use what that extra (or a test environment) provides, imported where it is needed.
TESTING_ALLOWED = frozenset({"pytest", "pytest_asyncio", "scramp", "testcontainers", "docker",
                             "pgserver"})


def in_stdlib_directory(module: str) -> bool:
    """Whether ``module`` is built in or installed with the standard library (for Python 3.9)."""
    if module in sys.builtin_module_names:
        return True
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    if spec.origin in ("built-in", "frozen"):
        return True
    origin = Path(spec.origin).resolve()
    if {"site-packages", "dist-packages"} & set(origin.parts):
        return False
    paths = sysconfig.get_paths()
    homes = {Path(paths[key]).resolve() for key in ("stdlib", "platstdlib")}
    return any(origin.is_relative_to(home) for home in homes)


def is_stdlib(module: str) -> bool:
    names = getattr(sys, "stdlib_module_names", None)
    return module in names if names is not None else in_stdlib_directory(module)


def absolute_imports(path: Path) -> List[str]:
    """The top-level module of every absolute import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module.split(".")[0])
    return found


def test_the_package_imports_only_the_standard_library() -> None:
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert PACKAGE_DIR / "tls" / "_certs.py" in files
    foreign = {
        f"{path.relative_to(PACKAGE_DIR)}: {module}"
        for path in files
        for module in absolute_imports(path)
        if not is_stdlib(module) and module not in ALLOWED and module != "pgwire_pubsub"
        and not (path.parent.name == "testing" and module in TESTING_ALLOWED)
    }
    assert not foreign


def test_the_python_3_9_way_agrees_with_stdlib_module_names() -> None:
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:
        pytest.skip("no sys.stdlib_module_names to compare with before Python 3.10")
    used = {m for p in PACKAGE_DIR.rglob("*.py") for m in absolute_imports(p)}
    for module in used | {"asn1crypto", "scramp", "hypothesis", "pytest", "ssl", "_ssl"}:
        assert in_stdlib_directory(module) == (module in names), module


def test_every_module_imports_without_asn1crypto() -> None:
    """In a fresh interpreter where asn1crypto and scramp cannot be imported (the testing
    package included: it imports scramp only where SCRAM is served)."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        sys.modules["asn1crypto"] = None  # any import of it fails
        sys.modules["scramp"] = None
        before = set(sys.modules)
        import pgwire_pubsub
        for info in pkgutil.walk_packages(pgwire_pubsub.__path__, "pgwire_pubsub."):
            if info.name != "pgwire_pubsub.testing.plugin":  # pytest's, loaded by pytest
                importlib.import_module(info.name)
        new = {name.split(".")[0] for name in set(sys.modules) - before}
        print(" ".join(sorted(new)))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR.parent))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert "pgwire_pubsub" in loaded
    assert {module for module in loaded if not is_stdlib(module)} == {"pgwire_pubsub"}


# -- on a live TLS connection --------------------------------------------------------


def test_on_a_tls_socket(maker: CertMaker) -> None:
    """channel_binding_data and check_hostname read the peer certificate of a real socket."""
    cert, key = maker.make(subject="/CN=x", san="DNS:db.example.com")
    der = maker.der(subject="/CN=x", san="DNS:db.example.com")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_context.wrap_socket(conn, server_side=True) as tls_conn:
            tls_conn.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    address = ("127.0.0.1", port)
    with socket.create_connection(address, 10) as sock, context.wrap_socket(sock) as sslsock:
        assert certs.channel_binding_data(sslsock) == (
            "tls-server-end-point",
            hashlib.sha256(der).digest(),
        )
        certs.check_hostname(sslsock, "db.example.com")
        with pytest.raises(OperationalError, match="does not match host name"):
            certs.check_hostname(sslsock, "other.example.com")
        sslsock.sendall(b"x")
    thread.join(10)
    listener.close()
