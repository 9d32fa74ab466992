"""TLS as libpq does it: contexts, client certificates, CRLs, versions, SNI, ALPN, names.

The policy functions are driven directly over sockets these tests open (``Session``),
against the test cluster and against a fake TLS server; the ``connect_raw`` tests at
the end check the same through the client.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import ssl
import warnings
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
)

import pytest
from certmaker import CertMaker, cert_maker, openssl
from certmaker import der_of as der_of  # re-exported: test_channel_binding imports it

from pgwire_pubsub import tls
from pgwire_pubsub._blocking.connection import connect_raw
from pgwire_pubsub.errors import OperationalError, ProgrammingError
from pgwire_pubsub.protocol import frontend, steps
from pgwire_pubsub.protocol.auth import Authenticator
from pgwire_pubsub.protocol.machine import Machine
from pgwire_pubsub.testing.fakebackend import FakeBackend, FakeConn
from pgwire_pubsub.testing.pgcluster import CERT_USER, Cluster, Server
from pgwire_pubsub.tls import _files as tlsfiles

T = TypeVar("T")
Row = Tuple[Optional[str], ...]

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to own files as others"
)


SSL_VERSION = "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


# -- certificates -------------------------------------------------------------------


# The key names of the tests here and in test_channel_binding -> (CertMaker key kind,
# RSA-PSS padding): "rsa-pss" is an RSA key signing with PSS padding.
KEYS = {
    "ec": ("ec256", False),
    "rsa": ("rsa", False),
    "rsa-pss": ("rsa", True),
    "ed25519": ("ed25519", False),
}


class Certs:
    """Self-signed certificates of a CertMaker, each with a key of its own."""

    def __init__(self, maker: CertMaker) -> None:
        self.maker = maker

    def make(
        self,
        subject: str = "/CN=pgwire test",
        san: Optional[str] = None,
        key: str = "ec",
        digest: Optional[str] = "sha256",
    ) -> Tuple[str, str]:
        """(certificate file, key file) for a self-signed certificate."""
        kind, pss = KEYS[key]
        return self.maker.make(subject=subject, san=san, key=kind, digest=digest, pss=pss)

    def der(self, **kwargs: Any) -> bytes:
        return der_of(self.make(**kwargs)[0])


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(cert_maker(tmp_path_factory, "certs"))


# -- a minimal driver of the protocol core over a socket the test opens -------------


class Session:
    """One connection driven by the protocol core's steps; ``sent`` keeps what went out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.proto = Machine()
        self.sent: List[bytes] = []
        self.auth: Optional[Authenticator] = None

    @property
    def sslsock(self) -> ssl.SSLSocket:
        assert isinstance(self.sock, ssl.SSLSocket)
        return self.sock

    def run(self, step: Generator[Optional[bytes], None, T]) -> T:
        try:
            out = next(step)
            while True:
                if out is None:
                    self.proto.receive_data(self.sock.recv(1 << 16))
                else:
                    self.sent.append(out)
                    self.sock.sendall(out)
                out = step.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def authenticator(self, user: str, password: Optional[str], **kwargs: Any) -> Authenticator:
        """An Authenticator told about this connection's TLS, as the client makes it."""
        if "tls_binding" not in kwargs:
            kwargs["tls_binding"] = (
                tls.channel_binding_data(self.sock)
                if isinstance(self.sock, ssl.SSLSocket)
                else None
            )
        return Authenticator(user, password, **kwargs)

    def login(
        self,
        user: str,
        password: Optional[str] = None,
        dbname: str = "postgres",
        **auth_kwargs: Any,
    ) -> None:
        self.auth = self.authenticator(user, password, **auth_kwargs)
        parameters = {"user": user, "database": dbname, "client_encoding": "UTF8"}
        self.run(steps.startup(self.proto, parameters, self.auth))

    def query(self, sql: str) -> List[Row]:
        return self.run(steps.simple_query(self.proto, sql))

    def close(self) -> None:
        try:
            goodbye = self.proto.terminate()
            if goodbye:
                self.sock.sendall(goodbye)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(
    address: str,
    port: int,
    context: Optional[ssl.SSLContext] = None,
    host: Optional[str] = "localhost",
    sslsni: bool = True,
) -> Session:
    """TCP to address:port; with a context, SSLRequest and the handshake as ``host``."""
    sock = socket.create_connection((address, port), timeout=10)
    if context is None:
        return Session(sock)
    try:
        sock.sendall(frontend.ssl_request())
        answer = sock.recv(1)
        assert answer == b"S", f"the server refused TLS: {answer!r}"
        return Session(context.wrap_socket(sock, server_hostname=tls.server_hostname(host, sslsni)))
    except BaseException:
        sock.close()
        raise


def pg_session(
    pg: Server,
    context: Optional[ssl.SSLContext] = None,
    host: Optional[str] = "localhost",
    sslsni: bool = True,
) -> Session:
    return open_session(pg.host, pg.port, context, host, sslsni)


def messages_after(
    requests: Sequence[Tuple[int, bytes]], client: Callable[[str, int], None]
) -> List[bytes]:
    """What a fake server receives after sending authentication ``requests``.

    The server reads the startup message, sends the requests, then records the
    type byte of every message until the client hangs up, answering a password
    message with a failure; ``client(host, port)`` connects to it.
    """
    received: List[bytes] = []

    def script(conn: FakeConn) -> None:
        conn.read_startup()
        for code, data in requests:
            conn.auth_request(code, data)
        while True:
            try:
                kind = conn.read_message()[0]
            except (EOFError, ConnectionResetError):
                return
            received.append(kind)
            if kind == b"p":
                conn.error({"S": "FATAL", "C": "28P01", "M": "password authentication failed"})

    with FakeBackend(script) as server:
        client(server.host, server.port)
    return received


# A client that refuses to authenticate sends nothing more, or at most a Terminate.
NOTHING_BUT_GOODBYE: Tuple[List[bytes], ...] = ([], [b"X"])


@pytest.fixture
def cluster(pg: Server) -> Cluster:
    """The test cluster with its CA, client certificates and CRLs, else skip."""
    if not isinstance(pg, Cluster) or not pg.has_client_certs:
        pytest.skip("needs the local test cluster with TLS")
    return pg


def verify_full(cluster: Cluster, **kwargs: Any) -> ssl.SSLContext:
    kwargs.setdefault("host", "localhost")
    return tls.make_context("verify-full", cluster.ca_file, **kwargs)


def ssl_version(session: Session) -> Optional[str]:
    return session.query(SSL_VERSION)[0][0]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home directory (~/.postgresql does not exist), as HOME."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


# -- SNI names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", "localhost"),
        ("db.example.com", "db.example.com"),
        ("db-1", "db-1"),
        ("127.0.0.1", None),
        ("10.1.2", None),  # libpq: all digits and dots is an address
        ("::1", None),
        ("fe80::1%eth0", None),
        ("", None),
        (None, None),
        ("/var/run/postgresql", None),
    ],
)
def test_server_hostname_sends_names_not_addresses(
    host: Optional[str], expected: Optional[str]
) -> None:
    assert tls.server_hostname(host, True) == expected
    assert tls.server_hostname(host) == expected  # sslsni is on by default


def test_server_hostname_is_none_with_sslsni_off() -> None:
    assert tls.server_hostname("localhost", False) is None


# -- libpq's name check -------------------------------------------------------------

NAME_CASES = [
    # (subject, subjectAltName, host, matches)
    ("/CN=db.example.com", "DNS:db.example.com", "db.example.com", True),
    ("/CN=x", "DNS:DB.Example.COM", "db.example.com", True),  # names ignore case
    ("/CN=x", "DNS:db.example.com", "db2.example.com", False),
    ("/CN=x", "DNS:*.example.com", "db.example.com", True),
    ("/CN=x", "DNS:*.example.com", "DB.EXAMPLE.com", True),
    ("/CN=x", "DNS:*.example.com", "a.b.example.com", False),  # one label only
    ("/CN=x", "DNS:*.example.com", "example.com", False),
    ("/CN=x", "DNS:db*.example.com", "db1.example.com", False),  # no partial wildcards
    ("/CN=x", "DNS:*db.example.com", "mydb.example.com", False),
    ("/CN=x", "DNS:a.*.example.com", "a.b.example.com", False),  # leftmost label only
    ("/CN=x", "DNS:other.test,DNS:db.example.com", "db.example.com", True),  # any SAN
    ("/CN=db.example.com", "DNS:other.test", "db.example.com", False),  # SAN hides the CN
    ("/CN=db.example.com", None, "db.example.com", True),  # no SAN: the CN counts
    ("/CN=*.example.com", None, "db.example.com", True),
    ("/CN=db.example.com", None, "other.test", False),
    ("/CN=x", "IP:127.0.0.1", "127.0.0.1", True),
    ("/CN=x", "IP:127.0.0.1", "127.0.0.2", False),
    ("/CN=x", "IP:127.0.0.1", "127.1", True),  # inet_aton's short form, as libpq
    ("/CN=x", "IP:::1", "::1", True),
    ("/CN=x", "IP:::1", "0:0:0:0:0:0:0:1", True),  # compared as addresses
    ("/CN=x", "IP:127.0.0.1", "::ffff:127.0.0.1", False),
    ("/CN=x", "DNS:localhost", "127.0.0.1", False),
    ("/CN=x", "IP:127.0.0.1", "localhost", False),  # names never match addresses
    # An IP host falls back to the CN when there is no IP SAN, even with DNS SANs: libpq.
    ("/CN=127.0.0.1", "DNS:localhost", "127.0.0.1", True),
    ("/CN=127.0.0.1", "IP:10.0.0.1", "127.0.0.1", False),  # an IP SAN hides the CN
    ("/CN=127.0.0.1", None, "127.0.0.1", True),
]


@pytest.mark.parametrize(("subject", "san", "host", "matches"), NAME_CASES)
def test_match_hostname_follows_libpq(
    certs: Certs, subject: str, san: Optional[str], host: str, matches: bool
) -> None:
    der = certs.der(subject=subject, san=san)
    if matches:
        tls.match_hostname(der, host)
    else:
        with pytest.raises(OperationalError, match="does not match host name"):
            tls.match_hostname(der, host)


def test_match_hostname_error_names_the_certificate(certs: Certs) -> None:
    der = certs.der(subject="/CN=x", san="DNS:localhost")
    with pytest.raises(OperationalError) as info:
        tls.match_hostname(der, "db.example.com")
    assert str(info.value).startswith(
        'server certificate for "localhost" does not match host name "db.example.com"'
    )
    assert "verif" in str(info.value)  # says that verify-full's check failed

    der = certs.der(subject="/CN=x", san="DNS:a.test,DNS:b.test,IP:10.0.0.1")
    with pytest.raises(OperationalError, match=r'"a\.test" \(and 2 other names\)'):
        tls.match_hostname(der, "c.test")
    der = certs.der(subject="/CN=x", san="DNS:a.test,DNS:b.test")
    with pytest.raises(OperationalError, match=r'"a\.test" \(and 1 other name\) does'):
        tls.match_hostname(der, "c.test")


def test_match_hostname_without_any_name(certs: Certs) -> None:
    der = certs.der(subject="/O=no common name")
    with pytest.raises(OperationalError, match="could not get server's host name"):
        tls.match_hostname(der, "localhost")


@pytest.mark.parametrize("host", ["", None])
def test_match_hostname_needs_a_host(certs: Certs, host: Optional[str]) -> None:
    with pytest.raises(OperationalError, match="host name must be specified"):
        tls.match_hostname(certs.der(san="DNS:localhost"), host)


# -- protocol versions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("TLSv1", ssl.TLSVersion.TLSv1),
        ("TLSv1.1", ssl.TLSVersion.TLSv1_1),
        ("TLSv1.2", ssl.TLSVersion.TLSv1_2),
        ("tlsv1.3", ssl.TLSVersion.TLSv1_3),
        ("", None),
        (None, None),
    ],
)
def test_parse_protocol_version(text: Optional[str], version: Optional[ssl.TLSVersion]) -> None:
    assert tls.parse_protocol_version(text, "ssl_min_protocol_version") == version


@pytest.mark.parametrize("text", ["TLSv1.4", "SSLv3", "tls1.2", " TLSv1.2", "1.2"])
def test_parse_protocol_version_rejects_others(text: str) -> None:
    with pytest.raises(
        ProgrammingError, match=f'invalid "ssl_max_protocol_version" value: "{text}"'
    ):
        tls.parse_protocol_version(text, "ssl_max_protocol_version")


def test_protocol_version_range_defaults_to_libpqs_minimum() -> None:
    assert tls.protocol_version_range(None, None) == (ssl.TLSVersion.TLSv1_2, None)
    assert tls.protocol_version_range("", None) == (None, None)  # explicitly no minimum
    assert tls.protocol_version_range("TLSv1.3", "TLSv1.3") == (
        ssl.TLSVersion.TLSv1_3,
        ssl.TLSVersion.TLSv1_3,
    )


@pytest.mark.parametrize(("low", "high"), [("TLSv1.3", "TLSv1.2"), (None, "TLSv1.1")])
def test_protocol_version_range_refuses_min_above_max(low: Optional[str], high: str) -> None:
    with pytest.raises(ProgrammingError, match="invalid SSL protocol version range"):
        tls.protocol_version_range(low, high)
    with pytest.raises(OperationalError, match="invalid SSL protocol version range"):
        tls.make_context("require", min_version=low, max_version=high)


def test_make_context_versions(home: Path) -> None:
    context = tls.make_context("require")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    context = tls.make_context("require", min_version="TLSv1.3")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    context = tls.make_context("require", max_version="TLSv1.2")
    assert context.maximum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(OperationalError, match='invalid "ssl_min_protocol_version"'):
        tls.make_context("require", min_version="TLSv9")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python deprecates TLSv1; asking for it still works
        context = tls.make_context("require", min_version="TLSv1")
    assert context.minimum_version == ssl.TLSVersion.TLSv1


# -- verification per sslmode --------------------------------------------------------


@pytest.mark.parametrize("sslmode", ["allow", "prefer", "require"])
def test_no_verification_without_a_root_certificate(home: Path, sslmode: str) -> None:
    context = tls.make_context(sslmode)
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_require_with_a_root_certificate_verifies_the_chain(certs: Certs, home: Path) -> None:
    ca, _ = certs.make(san="DNS:localhost")
    context = tls.make_context("require", ca)
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname
    (home / ".postgresql").mkdir()
    shutil.copy(ca, home / ".postgresql" / "root.crt")
    context = tls.make_context("require")  # the default root certificate, when present
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname


def test_verify_full_checks_names_in_the_handshake_only_when_sni_is_sent(
    certs: Certs, home: Path
) -> None:
    ca, _ = certs.make(san="DNS:localhost")
    assert tls.make_context("verify-ca", ca).verify_mode == ssl.CERT_REQUIRED
    assert not tls.make_context("verify-ca", ca).check_hostname
    assert tls.make_context("verify-full", ca).check_hostname  # no host given: Python checks
    assert tls.make_context("verify-full", ca, host="localhost").check_hostname
    # Without SNI Python cannot check: check_hostname() must.
    assert not tls.make_context("verify-full", ca, host="127.0.0.1").check_hostname
    assert not tls.make_context("verify-full", ca, host="localhost", sslsni=False).check_hostname


@pytest.mark.parametrize("sslmode", ["verify-ca", "verify-full"])
def test_verify_without_a_root_certificate_says_what_to_do(home: Path, sslmode: str) -> None:
    with pytest.raises(OperationalError) as info:
        tls.make_context(sslmode)
    text = str(info.value)
    assert str(home / ".postgresql" / "root.crt") in text
    assert "sslrootcert=system" in text and "sslmode" in text


def test_sslrootcert_system_uses_the_system_store(home: Path) -> None:
    context = tls.make_context("verify-full", "system", host="localhost")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize("sslmode", ["allow", "prefer", "require", "verify-ca"])
def test_sslrootcert_system_needs_verify_full(sslmode: str) -> None:
    with pytest.raises(
        OperationalError, match=f'weak sslmode "{sslmode}" may not be used with sslrootcert=system'
    ):
        tls.make_context(sslmode, "system")


@pytest.mark.parametrize("sslmode", ["allow", "prefer"])
def test_direct_tls_needs_a_strong_sslmode(home: Path, sslmode: str) -> None:
    with pytest.raises(
        OperationalError,
        match=f'weak sslmode "{sslmode}" may not be used with sslnegotiation=direct',
    ):
        tls.make_context(sslmode, direct=True)
    assert tls.make_context("require", direct=True).verify_mode == ssl.CERT_NONE


def test_invalid_sslmode() -> None:
    with pytest.raises(OperationalError, match="invalid sslmode"):
        tls.make_context("sometimes")


# -- CRLs ---------------------------------------------------------------------------


def test_crl_checking_is_on_with_a_crl(cluster: Cluster, home: Path) -> None:
    kinds: List[Dict[str, Any]] = [{"sslcrl": cluster.crl_file}, {"sslcrldir": cluster.crl_dir}]
    for kwargs in kinds:
        context = tls.make_context("verify-ca", cluster.ca_file, **kwargs)
        assert context.verify_flags & ssl.VERIFY_CRL_CHECK_CHAIN == ssl.VERIFY_CRL_CHECK_CHAIN
    context = tls.make_context("verify-ca", cluster.ca_file)
    assert not context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF


def test_default_crl_file_is_used_when_present(cluster: Cluster, home: Path) -> None:
    (home / ".postgresql").mkdir()
    assert cluster.revoked_crl_file is not None
    shutil.copy(cluster.revoked_crl_file, home / ".postgresql" / "root.crl")
    context = tls.make_context("verify-ca", cluster.ca_file)
    assert context.verify_flags & ssl.VERIFY_CRL_CHECK_CHAIN == ssl.VERIFY_CRL_CHECK_CHAIN
    with pytest.raises(ssl.SSLCertVerificationError, match="revoked"):
        pg_session(cluster, context).close()


def test_a_named_crl_that_cannot_be_loaded_is_an_error(cluster: Cluster, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.crl")
    with pytest.raises(OperationalError, match=f'revocation list "{missing}"'):
        tls.make_context("verify-ca", cluster.ca_file, sslcrl=missing)
    garbage = tmp_path / "garbage.crl"
    garbage.write_text("not a CRL\n")
    with pytest.raises(OperationalError, match="sslcrl"):
        tls.make_context("verify-ca", cluster.ca_file, sslcrl=str(garbage))
    with pytest.raises(OperationalError, match="sslcrldir"):
        tls.make_context("verify-ca", cluster.ca_file, sslcrldir=str(garbage))


@pytest.mark.parametrize("kind", ["sslcrl", "sslcrldir"])
def test_crl_that_revokes_nothing_lets_the_server_in(
    cluster: Cluster, home: Path, kind: str
) -> None:
    source = cluster.crl_file if kind == "sslcrl" else cluster.crl_dir
    context = verify_full(cluster, **{kind: source})
    with pg_session(cluster, context) as session:
        tls.check_hostname(session.sslsock, "localhost")
        session.login("trust_user")
        assert session.query("SELECT 1") == [("1",)]


@pytest.mark.parametrize("kind", ["sslcrl", "sslcrldir"])
def test_crl_that_revokes_the_server_certificate_refuses_it(
    cluster: Cluster, home: Path, kind: str
) -> None:
    source = cluster.revoked_crl_file if kind == "sslcrl" else cluster.revoked_crl_dir
    context = verify_full(cluster, **{kind: source})
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        pg_session(cluster, context).close()
    assert "revoked" in info.value.verify_message
    error = tls.handshake_error(info.value)
    assert "certificate verify failed: certificate revoked" in str(error)
    # The same chain without the CRL is fine, so the revocation is what failed.
    pg_session(cluster, verify_full(cluster)).close()


# -- client certificates ----------------------------------------------------------


@pytest.fixture
def client_pair(certs: Certs, tmp_path: Path) -> Tuple[str, str]:
    """A certificate and a copy of its key (mode 0600) that a test may change."""
    cert, key = certs.make(subject="/CN=client")
    copy = tmp_path / "client.key"
    shutil.copy(key, copy)
    os.chmod(copy, 0o600)
    return cert, str(copy)


def test_client_certificate_loads(client_pair: Tuple[str, str], home: Path) -> None:
    cert, key = client_pair
    tls.make_context("require", sslcert=cert, sslkey=key)


def test_missing_client_certificate_is_not_an_error(home: Path, tmp_path: Path) -> None:
    # As libpq: the server decides whether a connection without one will do.
    tls.make_context(
        "require", sslcert=str(tmp_path / "missing.crt"), sslkey=str(tmp_path / "missing.key")
    )
    tls.make_context("require")  # and no ~/.postgresql/postgresql.crt


def test_certificate_without_its_key(client_pair: Tuple[str, str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.key")
    with pytest.raises(
        OperationalError, match=f'certificate present, but not private key file "{missing}"'
    ):
        tls.make_context("require", sslcert=client_pair[0], sslkey=missing)


def test_key_that_is_not_a_regular_file(client_pair: Tuple[str, str], tmp_path: Path) -> None:
    with pytest.raises(OperationalError, match="is not a regular file"):
        tls.make_context("require", sslcert=client_pair[0], sslkey=str(tmp_path))


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o620, 0o610, 0o700 | 0o001])
def test_key_readable_by_others_is_refused(client_pair: Tuple[str, str], mode: int) -> None:
    cert, key = client_pair
    os.chmod(key, mode)
    with pytest.raises(OperationalError) as info:
        tls.make_context("require", sslcert=cert, sslkey=key)
    assert str(info.value) == (
        f'private key file "{key}" has group or world access; file must have permissions '
        "u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) "
        "or less if owned by root"
    )


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_key_for_the_owner_only_is_accepted(client_pair: Tuple[str, str], mode: int) -> None:
    cert, key = client_pair
    os.chmod(key, mode)
    tls.make_context("require", sslcert=cert, sslkey=key)


def test_key_rule_by_owner(client_pair: Tuple[str, str]) -> None:
    """Group read is allowed only when root owns the key (a shared system key)."""
    cert, key = client_pair
    os.chmod(key, 0o640)
    owner = os.stat(key).st_uid
    if owner == 0:
        tls.make_context("require", sslcert=cert, sslkey=key)
    else:
        with pytest.raises(OperationalError, match="group or world access"):
            tls.make_context("require", sslcert=cert, sslkey=key)


@needs_root
def test_group_readable_key_owned_by_someone_else_is_refused(client_pair: Tuple[str, str]) -> None:
    cert, key = client_pair
    os.chmod(key, 0o640)
    os.chown(key, 65534, -1)
    with pytest.raises(OperationalError, match="group or world access"):
        tls.make_context("require", sslcert=cert, sslkey=key)
    os.chmod(key, 0o600)
    tls.make_context("require", sslcert=cert, sslkey=key)  # root reads it: libpq allows this


def test_check_key_file_permissions_directly(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("")
    for mode, owner_is_root, ok in [
        (0o600, False, True),
        (0o640, False, False),
        (0o640, True, True),
        (0o660, True, False),
        (0o644, True, False),
        (0o650, True, False),
    ]:
        os.chmod(path, mode)
        st = os.stat(path)
        fake = os.stat_result(
            (st.st_mode, st.st_ino, st.st_dev, st.st_nlink, 0 if owner_is_root else 1000, *st[5:])
        )
        if ok:
            tlsfiles.check_key_file_permissions(str(path), fake)
        else:
            with pytest.raises(OperationalError, match="group or world access"):
                tlsfiles.check_key_file_permissions(str(path), fake)


@pytest.fixture
def encrypted_pair(client_pair: Tuple[str, str], tmp_path: Path) -> Tuple[str, str]:
    cert, key = client_pair
    encrypted = tmp_path / "encrypted.key"
    openssl(
        tmp_path,
        "pkey",
        "-in",
        key,
        "-out",
        str(encrypted),
        "-aes256",
        "-passout",
        "pass:open sesame",
    )
    os.chmod(encrypted, 0o600)
    return cert, str(encrypted)


def test_encrypted_key_with_its_password(encrypted_pair: Tuple[str, str]) -> None:
    cert, key = encrypted_pair
    tls.make_context("require", sslcert=cert, sslkey=key, sslpassword="open sesame")


def test_encrypted_key_without_a_password(encrypted_pair: Tuple[str, str]) -> None:
    cert, key = encrypted_pair
    with pytest.raises(OperationalError, match=f'private key file "{key}" is encrypted') as info:
        tls.make_context("require", sslcert=cert, sslkey=key)
    assert "sslpassword" in str(info.value)


def test_encrypted_key_with_a_wrong_password(encrypted_pair: Tuple[str, str]) -> None:
    cert, key = encrypted_pair
    with pytest.raises(OperationalError, match="wrong sslpassword") as info:
        tls.make_context("require", sslcert=cert, sslkey=key, sslpassword="open barley")
    assert "barley" not in str(info.value) and "barley" not in repr(info.value)
    assert key in str(info.value)


def test_certificate_and_key_that_do_not_match(certs: Certs, client_pair: Tuple[str, str]) -> None:
    _, other_key = certs.make(subject="/CN=someone else")
    with pytest.raises(OperationalError, match="does not match private key file"):
        tls.make_context("require", sslcert=client_pair[0], sslkey=other_key)


def test_certificate_file_that_is_no_certificate(
    client_pair: Tuple[str, str], tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("hello\n")
    with pytest.raises(OperationalError, match="could not load client certificate"):
        tls.make_context("require", sslcert=str(bogus), sslkey=client_pair[1])


# -- against the test cluster --------------------------------------------------------


def test_client_certificate_logs_in_as_cert_user(cluster: Cluster, home: Path) -> None:
    context = verify_full(cluster, sslcert=cluster.client_cert_file, sslkey=cluster.client_key_file)
    with pg_session(cluster, context) as session:
        session.login(CERT_USER)
        assert session.query("SELECT current_user") == [(CERT_USER,)]
        assert session.auth is not None and session.auth.method is None  # no password asked
    assert f'identity="CN={CERT_USER}" method=cert' in cluster.log()


def test_encrypted_client_key_with_sslpassword_logs_in(cluster: Cluster, home: Path) -> None:
    context = verify_full(
        cluster,
        sslcert=cluster.client_cert_file,
        sslkey=cluster.client_encrypted_key_file,
        sslpassword=cluster.client_key_passphrase,
    )
    with pg_session(cluster, context) as session:
        session.login(CERT_USER)
        assert session.query("SELECT current_user") == [(CERT_USER,)]


def test_encrypted_client_key_with_a_wrong_sslpassword(cluster: Cluster, home: Path) -> None:
    with pytest.raises(OperationalError, match="wrong sslpassword") as info:
        verify_full(
            cluster,
            sslcert=cluster.client_cert_file,
            sslkey=cluster.client_encrypted_key_file,
            sslpassword="not it",
        )
    assert "not it" not in str(info.value)


def test_default_client_certificate_from_home(cluster: Cluster, home: Path) -> None:
    directory = home / ".postgresql"
    directory.mkdir()
    assert cluster.client_cert_file and cluster.client_key_file
    shutil.copy(cluster.client_cert_file, directory / "postgresql.crt")
    shutil.copy(cluster.client_key_file, directory / "postgresql.key")
    os.chmod(directory / "postgresql.key", 0o600)
    with pg_session(cluster, verify_full(cluster)) as session:
        session.login(CERT_USER)
        assert session.query("SELECT current_user") == [(CERT_USER,)]


def test_certificate_with_another_cn_is_refused(cluster: Cluster, home: Path) -> None:
    context = verify_full(
        cluster, sslcert=cluster.other_cn_cert_file, sslkey=cluster.other_cn_key_file
    )
    with pg_session(cluster, context) as session, pytest.raises(OperationalError) as info:
        session.login(CERT_USER)
    assert info.value.sqlstate == "28000"
    assert f'certificate authentication failed for user "{CERT_USER}"' in str(info.value)


def test_no_client_certificate_is_refused(cluster: Cluster, home: Path, tmp_path: Path) -> None:
    # A named certificate that does not exist is skipped (libpq), so none is sent either.
    context = verify_full(cluster, sslcert=str(tmp_path / "none.crt"))
    with pg_session(cluster, context) as session, pytest.raises(OperationalError) as info:
        session.login(CERT_USER)
    assert info.value.sqlstate == "28000"
    assert "requires a valid client certificate" in str(info.value)


def test_min_protocol_tls13(cluster: Cluster, home: Path) -> None:
    with pg_session(cluster, verify_full(cluster, min_version="TLSv1.3")) as session:
        assert session.sslsock.version() == "TLSv1.3"
        session.login("trust_user")
        assert ssl_version(session) == "TLSv1.3"


def test_max_protocol_tls12(cluster: Cluster, home: Path) -> None:
    with pg_session(cluster, verify_full(cluster, max_version="TLSv1.2")) as session:
        session.login("trust_user")
        assert ssl_version(session) == "TLSv1.2"
    with pg_session(cluster, verify_full(cluster)) as session:  # the default goes higher
        session.login("trust_user")
        assert ssl_version(session) == "TLSv1.3"


def test_sslrootcert_system_does_not_trust_the_test_ca(
    cluster: Cluster, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    context = tls.make_context("verify-full", "system", host="localhost")
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        pg_session(cluster, context).close()
    error = tls.handshake_error(info.value, sslrootcert="system")
    assert "certificate verify failed" in str(error)
    assert "sslrootcert" in str(error)  # what to do about it


def test_sslrootcert_system_reads_the_openssl_default_paths(
    cluster: Cluster, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The system store, pointed at the test CA the way OpenSSL lets one: so it is what is used.
    assert cluster.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", cluster.ca_file)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    context = tls.make_context("verify-full", "system", host="localhost")
    with pg_session(cluster, context) as session:
        session.login("trust_user")
        assert session.query("SELECT 1") == [("1",)]


def test_verify_full_without_sni_checks_the_name_after_the_handshake(
    cluster: Cluster, home: Path
) -> None:
    context = verify_full(cluster, sslsni=False)
    with pg_session(cluster, context, sslsni=False) as session:
        tls.check_hostname(session.sslsock, "localhost")
        session.login("trust_user")
    # Dialling 127.0.0.1 for a name the certificate does not list: the handshake
    # passes (the chain is good), and the name check refuses it.
    context = verify_full(cluster, host="db.example.com", sslsni=False)
    refused = re.escape('"localhost" does not match host name "db.example.com"')
    session = pg_session(cluster, context, host="db.example.com", sslsni=False)
    with session, pytest.raises(OperationalError, match=refused):
        tls.check_hostname(session.sslsock, "db.example.com")


def test_verify_full_to_an_ip_address_checks_the_name_after_the_handshake(
    cluster: Cluster, home: Path
) -> None:
    context = verify_full(cluster, host="127.0.0.1")
    # The certificate's CN counts too for an address (libpq), hence "1 other name".
    refused = re.escape('"localhost" (and 1 other name) does not match host name "127.0.0.1"')
    session = pg_session(cluster, context, host="127.0.0.1")
    with session, pytest.raises(OperationalError, match=refused):
        tls.check_hostname(session.sslsock, "127.0.0.1")


def test_verify_full_with_sni_refuses_a_wrong_name_in_the_handshake(
    cluster: Cluster, home: Path
) -> None:
    context = verify_full(cluster, host="db.example.com")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"db\.example\.com"):
        pg_session(cluster, context, host="db.example.com").close()


def test_channel_binding_data_hashes_the_server_certificate(cluster: Cluster, home: Path) -> None:
    assert cluster.server_cert_file is not None
    expected = hashlib.sha256(der_of(cluster.server_cert_file)).digest()  # ecdsa-with-SHA256
    with pg_session(cluster, verify_full(cluster)) as session:
        assert tls.channel_binding_data(session.sslsock) == ("tls-server-end-point", expected)


# -- against a fake TLS server: what the client sends --------------------------------


class TLSRecord:
    def __init__(self) -> None:
        self.sni: List[Optional[str]] = []
        self.alpn: List[Optional[str]] = []


def fake_tls_context(
    certs: Certs,
    record: TLSRecord,
    alpn: Optional[List[str]] = None,
    max_version: Optional[ssl.TLSVersion] = None,
) -> ssl.SSLContext:
    cert, key = certs.make(subject="/CN=localhost", san="DNS:localhost,IP:127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    if max_version is not None:
        context.maximum_version = max_version

    def sni(sslobj: ssl.SSLObject, name: Optional[str], ctx: ssl.SSLContext) -> None:
        record.sni.append(name)

    context.sni_callback = sni
    return context


def trust_script(record: TLSRecord) -> Callable[[FakeConn], None]:
    def script(conn: FakeConn) -> None:
        conn.handshake()
        assert isinstance(conn.sock, ssl.SSLSocket)
        record.alpn.append(conn.sock.selected_alpn_protocol())
        assert conn.read_message()[0] == b"X"

    return script


@contextlib.contextmanager
def fake_tls_server(
    certs: Certs,
    record: TLSRecord,
    alpn: Optional[List[str]] = None,
    max_version: Optional[ssl.TLSVersion] = None,
    script: Optional[Callable[[FakeConn], None]] = None,
    check: bool = True,
) -> Iterator[FakeBackend]:
    context = fake_tls_context(certs, record, alpn, max_version)
    with FakeBackend(
        script or trust_script(record),
        expect_ssl_request=True,
        ssl_response=b"S",
        ssl_context=context,
        check=check,
    ) as server:
        yield server


def fake_session(
    server: FakeBackend,
    host: Optional[str] = "localhost",
    sslsni: bool = True,
    **context_kwargs: Any,
) -> Session:
    context = tls.make_context("require", **context_kwargs)
    return open_session(server.host, server.port, context, host, sslsni)


def test_sni_names_the_host(certs: Certs, home: Path) -> None:
    record = TLSRecord()
    with fake_tls_server(certs, record) as server, fake_session(server, "localhost") as session:
        session.login("u")
    assert record.sni == ["localhost"]


def test_no_sni_when_sslsni_is_off(certs: Certs, home: Path) -> None:
    record = TLSRecord()
    with fake_tls_server(certs, record) as server:
        session = fake_session(server, "localhost", sslsni=False)
        with session:
            session.login("u")
    assert record.sni == [None]


def test_no_sni_for_an_ip_address(certs: Certs, home: Path) -> None:
    record = TLSRecord()
    with fake_tls_server(certs, record) as server, fake_session(server, "127.0.0.1") as session:
        session.login("u")
    assert record.sni == [None]


def test_alpn_postgresql_is_offered(certs: Certs, home: Path) -> None:
    record = TLSRecord()
    with fake_tls_server(certs, record, alpn=["h2", "postgresql"]) as server:
        session = fake_session(server)
        with session:
            assert tls.direct_alpn_ok(session.sslsock)
            tls.check_direct_alpn(session.sslsock)
            session.login("u")
    assert record.alpn == ["postgresql"]


def test_direct_tls_needs_the_server_to_select_alpn(certs: Certs, home: Path) -> None:
    record = TLSRecord()
    with fake_tls_server(certs, record, alpn=None) as server, fake_session(server) as session:
        assert not tls.direct_alpn_ok(session.sslsock)
        with pytest.raises(OperationalError, match="without ALPN"):
            tls.check_direct_alpn(session.sslsock)
        session.login("u")
    assert record.alpn == [None]


def test_no_common_protocol_version_says_so(certs: Certs, home: Path) -> None:
    record = TLSRecord()

    def script(conn: FakeConn) -> None:
        conn.read_startup()  # the server's side of the handshake fails

    server = fake_tls_server(
        certs, record, max_version=ssl.TLSVersion.TLSv1_2, script=script, check=False
    )
    with server as fake, pytest.raises(ssl.SSLError) as info:
        fake_session(fake, min_version="TLSv1.3").close()
    error = tls.handshake_error(info.value, min_version="TLSv1.3")
    assert "SSL error" in str(error)
    assert (
        "This may indicate that the server does not support any SSL protocol version "
        "between TLSv1.3 and TLSv1.3"
    ) in str(error)


def test_check_hostname_on_a_connection(certs: Certs, home: Path) -> None:
    record = TLSRecord()
    with fake_tls_server(certs, record) as server, fake_session(server) as session:
        tls.check_hostname(session.sslsock, "localhost")
        tls.check_hostname(session.sslsock, "127.0.0.1")  # the IP SAN
        with pytest.raises(OperationalError, match="does not match host name"):
            tls.check_hostname(session.sslsock, "127.0.0.2")
        session.login("u")


# -- through the client ------------------------------------------------------------


def pg_kwargs(cluster: Cluster, role: str, **over: Any) -> Dict[str, Any]:
    over.setdefault("host", "localhost")
    over.setdefault("hostaddr", "127.0.0.1")
    over.setdefault("sslmode", "verify-full")
    over.setdefault("sslrootcert", cluster.ca_file)
    return cluster.dsn_kwargs(role, **over)


def test_client_logs_in_with_a_client_certificate(cluster: Cluster, home: Path) -> None:
    kwargs = pg_kwargs(
        cluster,
        CERT_USER,
        sslcert=cluster.client_cert_file,
        sslkey=cluster.client_encrypted_key_file,
        sslpassword=cluster.client_key_passphrase,
    )
    with connect_raw(**kwargs) as conn:
        assert conn.execute("SELECT current_user") == [(CERT_USER,)]
    kwargs["sslpassword"] = "wrong passphrase"
    with pytest.raises(OperationalError, match="wrong sslpassword") as info:
        connect_raw(**kwargs)
    assert "wrong passphrase" not in str(info.value)


def test_client_refuses_a_key_others_can_read(cluster: Cluster, home: Path, tmp_path: Path) -> None:
    assert cluster.client_key_file is not None
    key = tmp_path / "client.key"
    shutil.copy(cluster.client_key_file, key)
    os.chmod(key, 0o644)
    with pytest.raises(OperationalError, match="has group or world access"):
        connect_raw(
            **pg_kwargs(cluster, CERT_USER, sslcert=cluster.client_cert_file, sslkey=str(key))
        )


def test_client_certificate_with_another_cn_is_refused(cluster: Cluster, home: Path) -> None:
    with pytest.raises(OperationalError) as info:
        connect_raw(
            **pg_kwargs(
                cluster,
                CERT_USER,
                sslcert=cluster.other_cn_cert_file,
                sslkey=cluster.other_cn_key_file,
            )
        )
    assert info.value.sqlstate == "28000"


def test_client_protocol_versions(cluster: Cluster, home: Path) -> None:
    with connect_raw(
        **pg_kwargs(cluster, "trust_user", ssl_max_protocol_version="TLSv1.2")
    ) as conn:
        assert conn.execute(SSL_VERSION) == [("TLSv1.2",)]
    with connect_raw(
        **pg_kwargs(cluster, "trust_user", ssl_min_protocol_version="TLSv1.3")
    ) as conn:
        assert conn.execute(SSL_VERSION) == [("TLSv1.3",)]
    with pytest.raises(
        (OperationalError, ProgrammingError), match="invalid SSL protocol version range"
    ):
        connect_raw(
            **pg_kwargs(
                cluster,
                "trust_user",
                ssl_min_protocol_version="TLSv1.3",
                ssl_max_protocol_version="TLSv1.2",
            )
        )


def test_client_sslrootcert_system(
    cluster: Cluster, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(OperationalError, match="certificate verify failed"):
        connect_raw(**pg_kwargs(cluster, "trust_user", sslmode=None, sslrootcert="system"))


@pytest.mark.parametrize("kind", ["sslcrl", "sslcrldir"])
def test_client_crl(cluster: Cluster, home: Path, kind: str) -> None:
    good, revoked = (
        (cluster.crl_file, cluster.revoked_crl_file)
        if kind == "sslcrl"
        else (cluster.crl_dir, cluster.revoked_crl_dir)
    )
    with connect_raw(**pg_kwargs(cluster, "trust_user", **{kind: good})) as conn:
        assert conn.execute("SELECT 1") == [("1",)]
    with pytest.raises(OperationalError, match="revoked"):
        connect_raw(**pg_kwargs(cluster, "trust_user", **{kind: revoked}))


def test_client_verify_full_without_sni_still_checks_the_name(cluster: Cluster, home: Path) -> None:
    with connect_raw(**pg_kwargs(cluster, "trust_user", sslsni="0")) as conn:
        assert conn.execute("SELECT 1") == [("1",)]
    with pytest.raises(OperationalError, match="does not match host name"):
        connect_raw(**pg_kwargs(cluster, "trust_user", host="db.example.com", sslsni="0"))


@pytest.mark.parametrize(
    ("host", "sslsni", "expected"),
    [("localhost", "1", "localhost"), ("localhost", "0", None), ("127.0.0.1", "1", None)],
)
def test_client_sni_and_alpn(
    certs: Certs, home: Path, host: str, sslsni: str, expected: Optional[str]
) -> None:
    record = TLSRecord()
    with fake_tls_server(certs, record, alpn=["postgresql"]) as server:
        conn = connect_raw(
            host=host,
            hostaddr="127.0.0.1",
            port=server.port,
            user="u",
            dbname="d",
            sslmode="require",
            sslsni=sslsni,
        )
        conn.close()
    assert record.sni == [expected]
    assert record.alpn == ["postgresql"]
