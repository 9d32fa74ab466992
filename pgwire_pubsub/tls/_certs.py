"""What the client reads from an X.509 certificate, and the checks built on it.

A small, strict DER reader (definite lengths only, every length bounds-checked)
finds the signature algorithm (for SCRAM channel binding, RFC 5929
``tls-server-end-point``), the subjectAltName entries and the subject common
names (for libpq's verify-full name check).  Malformed input raises
``OperationalError``, never anything else.
"""

from __future__ import annotations

import functools
import hashlib
import socket
import ssl
from typing import Callable, Dict, List, Optional, Tuple, TypeVar, Union

from ..errors import OperationalError

CHANNEL_BINDING_TYPE = "tls-server-end-point"  # RFC 5929, what PostgreSQL implements

SSLSocketLike = Union[ssl.SSLSocket, ssl.SSLObject]
T = TypeVar("T")

_SEQUENCE, _SET, _OID, _OCTET_STRING, _BIT_STRING = 0x30, 0x31, 0x06, 0x04, 0x03


def _oids(prefix: str, pairs: str) -> Dict[str, str]:
    """``{prefix + arc: name}`` from ``"arc:name arc:name ..."``."""
    return {prefix + arc: name for arc, name in (pair.split(":") for pair in pairs.split())}


# Signature algorithm OID -> its hash, as hashlib names it.  Ed25519 and Ed448 have no
# separate digest: the hash inside the algorithm (OpenSSL, and so PostgreSQL, find none).
_SIGNATURE_HASHES = {
    **_oids("1.2.840.113549.1.1.", "4:md5 5:sha1 14:sha224 11:sha256 12:sha384 13:sha512"),
    **_oids("1.2.840.113549.1.1.", "15:sha512_224 16:sha512_256"),  # RSA PKCS #1 v1.5
    **_oids("1.2.840.10045.4.", "1:sha1 3.1:sha224 3.2:sha256 3.3:sha384 3.4:sha512"),  # ECDSA
    **_oids("1.2.840.10040.4.", "3:sha1"),  # DSA
    **_oids("1.3.14.3.2.", "3:md5 29:sha1 13:sha1 27:sha1"),  # OIW's RSA and DSA
    **_oids("2.16.840.1.101.3.4.3.", "1:sha224 2:sha256 3:sha384 4:sha512"),  # DSA
    **_oids("2.16.840.1.101.3.4.3.", "5:sha3_224 6:sha3_256 7:sha3_384 8:sha3_512"),  # DSA
    **_oids("2.16.840.1.101.3.4.3.", "9:sha3_224 10:sha3_256 11:sha3_384 12:sha3_512"),  # ECDSA
    **_oids("2.16.840.1.101.3.4.3.", "13:sha3_224 14:sha3_256 15:sha3_384 16:sha3_512"),  # RSA
    **_oids("1.3.101.", "112:sha512 113:shake256"),  # Ed25519, Ed448
}
_RSASSA_PSS = "1.2.840.113549.1.1.10"
_DIGESTS = {  # RSASSA-PSS-params hashAlgorithm OID -> hashlib's name
    **_oids("1.2.840.113549.2.", "5:md5"),
    **_oids("1.3.14.3.2.", "26:sha1"),
    **_oids("2.16.840.1.101.3.4.2.", "4:sha224 1:sha256 2:sha384 3:sha512"),
    **_oids("2.16.840.1.101.3.4.2.", "5:sha512_224 6:sha512_256 7:sha3_224 8:sha3_256"),
    **_oids("2.16.840.1.101.3.4.2.", "9:sha3_384 10:sha3_512"),
}
_SUBJECT_ALT_NAME = "2.5.29.17"
_COMMON_NAME = "2.5.4.3"
_GENERAL_NAMES = {0x82: "dns_name", 0x87: "ip_address"}  # [2] dNSName, [7] iPAddress
_STRINGS = {  # the string types of a name -> their codec
    0x0C: "utf-8",  # UTF8String
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # TeletexString
    0x16: "latin-1",  # IA5String
    0x1A: "latin-1",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}


class _Malformed(ValueError):
    """The DER does not have the structure of a certificate."""


def _reads(failure: str) -> Callable[[Callable[[bytes], T]], Callable[[bytes], T]]:
    """Turn ``_Malformed`` from the decorated reader into ``OperationalError(failure: ...)``."""

    def decorate(read: Callable[[bytes], T]) -> Callable[[bytes], T]:
        @functools.wraps(read)
        def guarded(der: bytes) -> T:
            try:
                return read(der)
            except _Malformed as exc:
                raise OperationalError(f"{failure}: {exc}") from None

        return guarded

    return decorate


# -- the DER reader --------------------------------------------------------------

_Element = Tuple[int, bytes]  # (identifier octet, contents)


def _elements(data: bytes, what: str) -> List[_Element]:
    """Every TLV in ``data``, which they must fill exactly.

    Long-form lengths need not be minimal (OpenSSL reads them too); tag numbers
    above 30 and indefinite lengths are refused.
    """
    found: List[_Element] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 2:
            raise _Malformed(f"{what} is truncated (a header at byte {pos})")
        tag, first = data[pos], data[pos + 1]
        pos += 2
        if tag & 0x1F == 0x1F:
            raise _Malformed(f"{what} has a high tag number, which certificates do not use")
        if first == 0x80:
            raise _Malformed(f"{what} has an indefinite length, which DER forbids")
        length = first
        if first > 0x80:
            count = first & 0x7F
            if count > 4:
                raise _Malformed(f"{what} has a length of {count} bytes")
            if end - pos < count:
                raise _Malformed(f"{what} is truncated (a length at byte {pos})")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if length > end - pos:
            raise _Malformed(
                f"{what} has an element of {length} bytes at byte {pos}, "
                f"but only {end - pos} bytes are left"
            )
        found.append((tag, data[pos : pos + length]))
        pos += length
    return found


def _expect(element: Optional[_Element], tag: int, what: str) -> bytes:
    """The contents of ``element``, which must be there and have ``tag``."""
    if element is None:
        raise _Malformed(f"{what} is missing")
    if element[0] != tag:
        raise _Malformed(f"{what} has tag 0x{element[0]:02x}, expected 0x{tag:02x}")
    return element[1]


def _only(data: bytes, tag: int, what: str) -> bytes:
    """The contents of the single element, of type ``tag``, that ``data`` holds."""
    found = _elements(data, what)
    if len(found) != 1:
        raise _Malformed(f"{what} holds {len(found)} elements, expected 1")
    return _expect(found[0], tag, what)


def _oid(element: Optional[_Element], what: str) -> str:
    """The dotted OBJECT IDENTIFIER in ``element``."""
    data = _expect(element, _OID, what)
    if not data or data[-1] & 0x80:
        raise _Malformed(f"{what} is not a valid object identifier")
    arcs: List[int] = []
    value = 0
    for byte in data:
        if value == 0 and byte == 0x80:
            raise _Malformed(f"{what} is not a valid object identifier (a padded arc)")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


# -- the certificate -------------------------------------------------------------

_TBS_FIELDS = [(0x02, "serialNumber")] + [  # after the version
    (_SEQUENCE, name)
    for name in ("signature", "issuer", "validity", "subject", "subjectPublicKeyInfo")
]
_TBS_OPTIONAL = (0x81, 0x82, 0xA3)  # [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions


def _certificate(der: bytes) -> Tuple[List[_Element], List[_Element]]:
    """(tbsCertificate's fields after the version, signatureAlgorithm's elements)."""
    fields = _elements(_only(der, _SEQUENCE, "certificate"), "certificate")
    if len(fields) != 3:
        raise _Malformed(f"certificate holds {len(fields)} elements, expected 3")
    tbs = _elements(_expect(fields[0], _SEQUENCE, "tbsCertificate"), "tbsCertificate")
    algorithm = _elements(_expect(fields[1], _SEQUENCE, "signatureAlgorithm"), "algorithm")
    _expect(fields[2], _BIT_STRING, "signatureValue")
    if tbs and tbs[0][0] == 0xA0:  # [0] EXPLICIT version
        tbs = tbs[1:]
    if len(tbs) < len(_TBS_FIELDS):
        raise _Malformed(f"tbsCertificate holds too few fields ({len(tbs)})")
    for field, (tag, name) in zip(tbs, _TBS_FIELDS):
        _expect(field, tag, name)
    tags = [tag for tag, _ in tbs[len(_TBS_FIELDS) :]]
    if any(tag not in _TBS_OPTIONAL for tag in tags) or tags != sorted(set(tags)):
        raise _Malformed("tbsCertificate has unexpected fields after subjectPublicKeyInfo")
    return tbs, algorithm


@_reads("could not determine server certificate signature algorithm")
def signature_hash_name(der: bytes) -> str:
    """The hash of the certificate's signature algorithm, as hashlib names it.

    ``sha256``, ``sha1``, ``sha3_384``...; for RSASSA-PSS the hash its parameters
    name (SHA-1 by default); ``sha512`` for Ed25519 and ``shake256`` for Ed448.
    """
    algorithm = _certificate(der)[1]
    oid = _oid(algorithm[0] if algorithm else None, "signatureAlgorithm")
    if oid != _RSASSA_PSS:
        if oid not in _SIGNATURE_HASHES:
            raise _Malformed(f"signature algorithm {oid} is not supported")
        return _SIGNATURE_HASHES[oid]
    params = algorithm[1] if len(algorithm) > 1 else None
    fields = _elements(_expect(params, _SEQUENCE, "RSASSA-PSS parameters"), "RSASSA-PSS parameters")
    if not fields or fields[0][0] != 0xA0:  # hashAlgorithm [0] DEFAULT sha1
        return "sha1"
    digest = _elements(_only(fields[0][1], _SEQUENCE, "RSASSA-PSS hash"), "RSASSA-PSS hash")
    oid = _oid(digest[0] if digest else None, "RSASSA-PSS hash")
    if oid not in _DIGESTS:
        raise _Malformed(f"RSASSA-PSS hash algorithm {oid} is not supported")
    return _DIGESTS[oid]


def certificate_hash(der: bytes) -> bytes:
    """RFC 5929 tls-server-end-point: the certificate hashed with its signature's hash.

    MD5 and SHA-1 are replaced by SHA-256, as PostgreSQL's server does for its
    own certificate.
    Ed448 (SHAKE256) gives 64 bytes.
    """
    algorithm = signature_hash_name(der)
    if algorithm in ("md5", "sha1"):
        algorithm = "sha256"
    if algorithm == "shake256":
        return hashlib.shake_256(der).digest(64)
    try:
        return hashlib.new(algorithm, der).digest()
    except ValueError:
        raise OperationalError(
            f"could not find digest {algorithm!r} for the server certificate"
        ) from None


@_reads("could not read the server certificate's names")
def subject_alt_names(der: bytes) -> List[Tuple[str, bytes]]:
    """The subjectAltName ``('dns_name', raw)`` and ``('ip_address', raw)`` entries, in order.

    Other kinds of names are left out; no extension gives an empty list.
    """
    value: Optional[bytes] = None
    for tag, extensions in _certificate(der)[0]:
        if tag != 0xA3:
            continue
        for extension in _elements(_only(extensions, _SEQUENCE, "extensions"), "extensions"):
            parts = _elements(_expect(extension, _SEQUENCE, "extension"), "extension")
            if len(parts) not in (2, 3):
                raise _Malformed(f"extension holds {len(parts)} elements, expected 2 or 3")
            if _oid(parts[0], "extnID") != _SUBJECT_ALT_NAME:
                continue
            if value is not None:
                raise _Malformed("subjectAltName appears more than once")
            if len(parts) == 3:
                _expect(parts[1], 0x01, "critical")
            value = _expect(parts[-1], _OCTET_STRING, "subjectAltName value")
    if value is None:
        return []
    names = _elements(_only(value, _SEQUENCE, "subjectAltName"), "subjectAltName")
    return [(_GENERAL_NAMES[tag], raw) for tag, raw in names if tag in _GENERAL_NAMES]


@_reads("could not read the server certificate's names")
def subject_common_names(der: bytes) -> List[str]:
    """Every commonName of the subject, in order."""
    names: List[str] = []
    for rdn in _elements(_certificate(der)[0][4][1], "subject"):
        for attribute in _elements(_expect(rdn, _SET, "subject RDN"), "subject RDN"):
            parts = _elements(_expect(attribute, _SEQUENCE, "subject attribute"), "attribute")
            if len(parts) != 2:
                raise _Malformed(f"subject attribute holds {len(parts)} elements, expected 2")
            if _oid(parts[0], "attribute type") != _COMMON_NAME:
                continue
            tag, raw = parts[1]
            if tag not in _STRINGS:
                raise _Malformed(f"common name has tag 0x{tag:02x}, which is not a string")
            try:
                names.append(raw.decode(_STRINGS[tag]))
            except UnicodeDecodeError:
                raise _Malformed(f"common name is not valid {_STRINGS[tag]}") from None
    return names


# -- checks on the server's certificate ------------------------------------------


def channel_binding_data(sslsock: SSLSocketLike) -> Tuple[str, bytes]:
    """``('tls-server-end-point', hash of the server certificate)`` for SCRAM-SHA-256-PLUS."""
    der = sslsock.getpeercert(binary_form=True)
    if not der:
        raise OperationalError("the server sent no certificate, so channel binding is impossible")
    return CHANNEL_BINDING_TYPE, certificate_hash(der)


def check_hostname(sslsock: SSLSocketLike, host: Optional[str]) -> None:
    """verify-full's name check on an established connection, with libpq's rules.

    Raises ``OperationalError`` when the server certificate does not name ``host``.
    """
    der = sslsock.getpeercert(binary_form=True)
    if not der:
        raise OperationalError("the server sent no certificate, so its name cannot be verified")
    match_hostname(der, host)


def _ip_address(host: str) -> Optional[bytes]:
    """The address as network-order bytes when ``host`` is an IP literal (C inet_aton/pton)."""
    try:
        return socket.inet_aton(host)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, host)
    except (OSError, ValueError):
        return None


def _name_matches(pattern: str, host: str) -> bool:
    if "\0" in pattern:
        raise OperationalError("SSL certificate's name contains embedded null")
    if pattern.lower() == host.lower():
        return True
    # A wildcard is only the whole leftmost label, and matches exactly one label.
    if len(pattern) < 3 or not pattern.startswith("*.") or len(pattern) > len(host):
        return False
    suffix = pattern[1:]
    if not host.lower().endswith(suffix.lower()):
        return False
    return "." not in host[: len(host) - len(suffix)]


def _ip_text(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return raw.hex()


def match_hostname(der: bytes, host: Optional[str]) -> None:
    """libpq's rules for a DER certificate and the host connected to.

    - subjectAltName dNSName entries match case-insensitively; a wildcard
      only as the whole leftmost label (``*.example.com``);
    - an IP host matches iPAddress entries (binary comparison);
    - the subject CN is considered only when there is no SAN entry of the
      host's kind (DNS for names, IP for addresses).
    """
    if not host:
        raise OperationalError("host name must be specified for a verified SSL connection")
    address = _ip_address(host)
    wanted = "ip_address" if address is not None else "dns_name"
    entries = subject_alt_names(der)
    common_names = subject_common_names(der)

    examined: List[str] = []
    check_cn = True
    for kind, raw in entries:
        if kind == wanted:
            check_cn = False
        if kind == "dns_name":
            name = raw.decode("latin-1")
            examined.append(name)
            if _name_matches(name, host):
                return
        elif kind == "ip_address":
            examined.append(_ip_text(raw))
            if len(raw) not in (4, 16):
                raise OperationalError("SSL certificate's address entry has an invalid length")
            if address is not None and raw == address:
                return
    if check_cn and common_names:
        examined.append(common_names[0])
        if _name_matches(common_names[0], host):
            return
    if not examined:
        raise OperationalError("could not get server's host name from server certificate")
    others = len(examined) - 1
    also = f" (and {others} other name{'s' if others > 1 else ''})" if others else ""
    raise OperationalError(
        f'server certificate for "{examined[0]}"{also} does not match host name "{host}" '
        "(sslmode=verify-full verifies the name; connect with a name the certificate "
        "lists, or use verify-ca)"
    )
