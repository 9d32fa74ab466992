"""Against the scripted fake server: what a real PostgreSQL server cannot be made to do.

Every conversation here ends in a clear exception, never in a hang: start-up is
bounded by ``connect_timeout`` and, after start-up, the fake server's own read
timeout closes the connection.
"""

from __future__ import annotations

import base64
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import pytest
from scramp import ScramMechanism

import pgwire_pubsub
from pgwire_pubsub import Connection, Notify, OperationalError, ProtocolViolation, PubSub
from pgwire_pubsub._blocking.connection import connect_raw
from pgwire_pubsub.testing.fakebackend import SSL_REQUEST, FakeBackend, FakeConn, split_messages
from pgwire_pubsub.testing.wirebytes import (
    auth,
    auth_ok,
    auth_sasl,
    backend_key,
    command_complete,
    cstr,
    data_row,
    error_response,
    i32,
    msg,
    notify,
    parameter_status,
    ready,
    row_description,
)

SERVER_TIMEOUT = 10.0
# Only there so that a client that waits instead of failing at once is caught.
PROMPTLY = 5.0

SCRAM_PASSWORD = "correct horse battery staple"


# -- backend messages -------------------------------------------------------------


def after_auth(pid: int = 4242) -> bytes:
    """What a server sends between AuthenticationOk and the first ReadyForQuery."""
    return (parameter_status("server_version", "15.4")
            + parameter_status("server_encoding", "UTF8")
            + parameter_status("client_encoding", "UTF8")
            + backend_key(pid)
            + ready())


# -- frontend messages, as the fake server reads them -----------------------------


TERMINATE = (b"X", b"")


def connect_to(srv: FakeBackend, **kwargs: Any) -> Connection:
    params: Dict[str, Any] = dict(host=srv.host, port=srv.port, user="alice", dbname="db",
                                  sslmode="disable", connect_timeout=5)
    params.update(kwargs)
    return connect_raw(**params)


def fails_promptly(exc_type: Any, call: Callable[[], Any], match: str = "") -> Any:
    start = time.monotonic()
    with pytest.raises(exc_type, match=match or None) as excinfo:
        call()
    assert time.monotonic() - start < PROMPTLY, "the client waited instead of failing"
    return excinfo.value


# -- SCRAM ------------------------------------------------------------------------


class ScramServer:
    """A fake server's side of SCRAM-SHA-256, done by scramp; ``finish`` says how it ends."""

    def __init__(self, finish: str, password: str = SCRAM_PASSWORD) -> None:
        self.finish = finish
        mechanism = ScramMechanism("SCRAM-SHA-256")
        auth_info = mechanism.make_auth_info(password, iteration_count=4096)
        self.usernames: List[str] = []

        def auth_fn(username: str) -> Any:
            self.usernames.append(username)
            return auth_info

        self.server = mechanism.make_server(auth_fn)
        self.client_proof_checked = False
        self.after: List[Tuple[bytes, bytes]] = []

    def __call__(self, conn: FakeConn) -> None:
        conn.read_startup()
        conn.send(auth_sasl("SCRAM-SHA-256"))
        kind, body = conn.read_message()
        assert kind == b"p"
        mechanism, rest = body.split(b"\0", 1)
        assert mechanism == b"SCRAM-SHA-256"
        (size,) = struct.unpack("!i", rest[:4])
        self.server.set_client_first(rest[4 : 4 + size].decode())
        if self.finish == "ok-after-sasl":
            conn.send(auth_ok() + after_auth())
        else:
            conn.send(auth(11, self.server.get_server_first().encode()))
            kind, body = conn.read_message()
            assert kind == b"p"
            self.server.set_client_final(body.decode())  # raises on a wrong client proof
            self.client_proof_checked = True
            final = self.server.get_server_final().encode()
            if self.finish == "real":
                conn.send(auth(12, final) + auth_ok() + after_auth())
            elif self.finish == "forged":
                conn.send(auth(12, forge_signature(final)) + auth_ok() + after_auth())
            elif self.finish == "ok-after-continue":
                conn.send(auth_ok() + after_auth())
            else:
                raise AssertionError(self.finish)
        self.after = split_messages(conn.read_until_eof())


def forge_signature(server_final: bytes) -> bytes:
    """The same server-final-message with one bit of the ServerSignature flipped."""
    assert server_final.startswith(b"v=")
    signature = bytearray(base64.b64decode(server_final[2:]))
    signature[0] ^= 1
    forged = b"v=" + base64.b64encode(bytes(signature))
    assert forged != server_final
    return forged


def test_scram_done_right_connects() -> None:
    scram = ScramServer("real")
    with FakeBackend(scram) as srv:
        conn = connect_to(srv, user="alice", password=SCRAM_PASSWORD)
        assert conn.closed == 0
        assert conn.get_backend_pid() == 4242
        assert conn.get_parameter_status("server_version") == "15.4"
        conn.close()
    assert scram.client_proof_checked
    assert scram.after == [TERMINATE]


def test_scram_forged_server_signature_is_refused() -> None:
    scram = ScramServer("forged")
    with FakeBackend(scram) as srv:
        error = fails_promptly(
            OperationalError,
            lambda: connect_to(srv, password=SCRAM_PASSWORD),
            match="signature",
        )
    assert SCRAM_PASSWORD not in str(error)
    assert scram.client_proof_checked
    # The AuthenticationOk and ReadyForQuery that followed were not taken: the client
    # sent nothing more (at most a Terminate) and went away.
    assert scram.after in ([], [TERMINATE])


@pytest.mark.parametrize("finish", ["ok-after-continue", "ok-after-sasl"])
def test_scram_without_server_final_is_a_protocol_violation(finish: str) -> None:
    scram = ScramServer(finish)
    with FakeBackend(scram) as srv:
        error = fails_promptly(ProtocolViolation, lambda: connect_to(srv, password=SCRAM_PASSWORD))
    assert "SCRAM" in str(error)
    assert scram.after in ([], [TERMINATE])


def test_scram_with_a_wrong_password_is_refused_by_the_server() -> None:
    """The fake server checks the client's proof for real, so the sanity test means something."""
    seen: List[str] = []

    def script(conn: FakeConn) -> None:
        scram = ScramServer("real")
        try:
            scram(conn)
        except Exception as exc:  # scramp refuses the client's proof
            seen.append(type(exc).__name__)
            conn.send(error_response({"S": "FATAL", "V": "FATAL", "C": "28P01",
                                      "M": 'password authentication failed for user "alice"'}))
            conn.read_until_eof()

    with FakeBackend(script) as srv:
        error = fails_promptly(OperationalError, lambda: connect_to(srv, password="wrong"))
    assert seen == ["ScramException"]
    assert error.sqlstate == "28P01"


def test_sasl_without_scram_sha_256_names_the_mechanisms() -> None:
    def script(conn: FakeConn) -> None:
        conn.read_startup()
        conn.send(auth_sasl("SCRAM-SHA-256-PLUS"))
        conn.read_until_eof()

    with FakeBackend(script) as srv:
        error = fails_promptly(OperationalError, lambda: connect_to(srv, password="pw"))
    assert "SCRAM-SHA-256-PLUS" in str(error)


# -- TLS negotiation --------------------------------------------------------------


@pytest.mark.parametrize("sslmode", ["require", "prefer", "allow"])
def test_cve_2021_23222_bytes_after_ssl_accept_are_refused(sslmode: str) -> None:
    """A man in the middle answers 'S' and injects a plaintext start-up right behind it."""
    sent_after: List[bytes] = []

    def script(conn: FakeConn) -> None:
        if sslmode == "allow" and conn.index == 0:  # the plain attempt: refuse it
            conn.read_startup()
            conn.send(error_response({"S": "FATAL", "C": "28000", "M": "no encryption"}))
            conn.read_until_eof()
            return
        length, code = struct.unpack("!ii", conn.recv_exact(8))
        assert (length, code) == (8, SSL_REQUEST)
        conn.send(b"S" + auth_ok() + after_auth())
        sent_after.append(conn.read_until_eof())

    connections = 2 if sslmode == "allow" else 1
    with FakeBackend(script, connections=connections) as srv:
        error = fails_promptly(ProtocolViolation, lambda: connect_to(srv, sslmode=sslmode))
    assert "unencrypted" in str(error)
    # Neither a TLS ClientHello nor a StartupMessage followed the poisoned answer.
    assert sent_after == [b""]


# -- authentication the client does not speak -------------------------------------


@pytest.mark.parametrize(
    "code, name",
    [(2, "Kerberos"), (6, "SCM"), (7, "GSSAPI"), (9, "SSPI"), (99, "code 99")],
)
def test_unsupported_authentication_names_the_method(code: int, name: str) -> None:
    after: List[bytes] = []

    def script(conn: FakeConn) -> None:
        conn.read_startup()
        conn.send(auth(code))
        after.append(conn.read_until_eof())

    with FakeBackend(script) as srv:
        error = fails_promptly(OperationalError, lambda: connect_to(srv, password="S3cr3t!"))
    assert name in str(error)
    assert "S3cr3t!" not in str(error)
    assert split_messages(after[0]) in ([], [TERMINATE])


# -- malformed messages after start-up --------------------------------------------


class Script:
    """Handshake, then [read one Query or wait for ``go``], send ``reply``, wait for EOF.

    Without a Query, the test sets ``go`` once ``connect`` has returned, so that the
    reply arrives after start-up and not in the middle of it.
    """

    def __init__(self, reply: bytes, *, expect_query: bool = True) -> None:
        self.reply = reply
        self.expect_query = expect_query
        self.go = threading.Event()
        self.after: List[bytes] = []

    def __call__(self, conn: FakeConn) -> None:
        conn.handshake()
        if self.expect_query:
            conn.read_query()
        else:
            assert self.go.wait(SERVER_TIMEOUT), "the test never said go"
        conn.send(self.reply)
        self.after.append(conn.read_until_eof())


@pytest.mark.parametrize(
    "reply, match",
    [
        pytest.param(msg(b"@"), "unknown message type", id="unknown-type"),
        pytest.param(b"C" + i32(3), "below the minimum", id="length-3"),
        pytest.param(b"C" + i32(0), "below the minimum", id="length-0"),
        pytest.param(b"C" + i32(-5), "below the minimum", id="length-negative"),
        pytest.param(b"A" + i32(2**31 - 1), "exceeds", id="notify-2GB"),
        pytest.param(b"D" + i32(2**31 - 1), "exceeds", id="datarow-2GB"),
        pytest.param(b"C" + i32(1 << 20), "exceeds", id="short-type-1MB"),
        pytest.param(ready("?"), "transaction status", id="bad-ready-status"),
        pytest.param(msg(b"C", b"SELECT 1"), "NUL", id="tag-without-nul"),
        pytest.param(auth_ok() + ready(), "AuthenticationOk", id="auth-after-startup"),
    ],
)
def test_malformed_reply_to_a_query(reply: bytes, match: str) -> None:
    script = Script(reply)
    with FakeBackend(script) as srv:
        conn = connect_to(srv)
        error = fails_promptly(ProtocolViolation, lambda: conn.execute("SELECT 1"), match=match)
        assert conn.closed == 2
        # The connection stays broken, with the same error.
        with pytest.raises(ProtocolViolation) as again:
            conn.execute("SELECT 1")
        assert again.value is error
        conn.close()
    assert script.after == [b""]  # the client hung up without another word


@pytest.mark.parametrize(
    "reply, match",
    [
        pytest.param(msg(b"@"), "unknown message type", id="unknown-type"),
        pytest.param(b"Z" + i32(2), "below the minimum", id="length-2"),
        pytest.param(b"A" + i32(2**31 - 1), "exceeds", id="notify-2GB"),
        pytest.param(command_complete("SELECT 1"), "CommandComplete", id="unasked-command"),
    ],
)
def test_malformed_message_while_idle(reply: bytes, match: str) -> None:
    script = Script(reply, expect_query=False)
    with FakeBackend(script) as srv:
        conn = connect_to(srv)
        script.go.set()
        fails_promptly(ProtocolViolation, lambda: conn.wait_notifications(SERVER_TIMEOUT),
                       match=match)
        assert conn.closed == 2
        assert not conn.notifications
    assert script.after == [b""]


@pytest.mark.parametrize(
    "channel, payload",
    [(b"bad\xff", b"ok"), (b"ok", b"\xc3\x28"), (b"ok", b"\xed\xa0\x80")],
    ids=["channel", "payload", "surrogate"],
)
def test_notification_with_invalid_utf8(channel: bytes, payload: bytes) -> None:
    script = Script(msg(b"A", i32(7) + channel + b"\0" + payload + b"\0"), expect_query=False)
    with FakeBackend(script) as srv:
        conn = connect_to(srv)
        script.go.set()
        fails_promptly(ProtocolViolation, lambda: conn.wait_notifications(SERVER_TIMEOUT))
        assert not conn.notifications
    assert script.after == [b""]


def test_good_notifications_before_a_bad_message_are_delivered_first() -> None:
    good = notify(7, "chan", "one") + notify(7, "chan", "two")
    script = Script(good + msg(b"A", i32(7) + cstr("chan") + b"\xff\0"), expect_query=False)
    with FakeBackend(script) as srv:
        pubsub = PubSub(connect_to(srv))
        script.go.set()
        assert pubsub.get_events(SERVER_TIMEOUT) == [Notify(7, "chan", "one"),
                                                     Notify(7, "chan", "two")]
        with pytest.raises(ProtocolViolation):
            pubsub.get_event(SERVER_TIMEOUT)


@pytest.mark.parametrize(
    "tail",
    [command_complete("SELECT 1")[:7], b"Z\0\0", b"D"],
    ids=["inside-body", "inside-length", "type-only"],
)
def test_truncated_frame_then_eof_is_a_protocol_violation(tail: bytes) -> None:
    def script(conn: FakeConn) -> None:
        conn.handshake()
        conn.read_query()
        conn.send(row_description("x") + tail)
        # returning closes the connection

    with FakeBackend(script) as srv:
        conn = connect_to(srv)
        error = fails_promptly(ProtocolViolation, lambda: conn.execute("SELECT 1"))
        assert "ended inside a message" in str(error)
        assert conn.closed == 2


def test_truncated_frame_then_eof_during_startup() -> None:
    def script(conn: FakeConn) -> None:
        conn.read_startup()
        conn.send(auth_ok() + parameter_status("server_version", "15.4")[:6])

    with FakeBackend(script) as srv:
        fails_promptly(ProtocolViolation, lambda: connect_to(srv), match="inside a message")


def test_clean_eof_after_a_whole_message_is_not_a_protocol_violation() -> None:
    def script(conn: FakeConn) -> None:
        conn.handshake()
        conn.read_query()
        conn.send(row_description("x"))

    with FakeBackend(script) as srv:
        conn = connect_to(srv)
        error = fails_promptly(OperationalError, lambda: conn.execute("SELECT 1"))
        assert not isinstance(error, ProtocolViolation)
        assert "closed the connection" in str(error)


def test_fatal_error_while_idle_explains_the_eof() -> None:
    """As PostgreSQL does on pg_terminate_backend(): a FATAL ErrorResponse, then EOF."""
    fields = {"S": "FATAL", "V": "FATAL", "C": "57P01",
              "M": "terminating connection due to administrator command"}

    def script(conn: FakeConn) -> None:
        conn.handshake()
        conn.send(error_response(fields))
        # returning closes the connection

    with FakeBackend(script) as srv:
        conn = connect_to(srv)

        def wait_until_it_fails() -> None:
            for _ in range(3):  # the ErrorResponse and the EOF may come in separate reads
                conn.wait_notifications(SERVER_TIMEOUT)

        error = fails_promptly(OperationalError, wait_until_it_fails)
    assert error.sqlstate == "57P01"
    assert "administrator command" in str(error)
    assert conn.closed == 2


# -- start-up failures ------------------------------------------------------------


STARTUP_ERRORS = [
    {"S": "FATAL", "V": "FATAL", "C": "28000",
     "M": 'no pg_hba.conf entry for host "127.0.0.1", user "alice", database "db"'},
    {"S": "FATAL", "V": "FATAL", "C": "3D000", "M": 'database "db" does not exist'},
    {"S": "FATAL", "V": "FATAL", "C": "53300", "M": "sorry, too many clients already"},
    {"S": "FATAL", "V": "FATAL", "C": "57P03", "M": "the database system is starting up",
     "D": "a detail", "H": "a hint"},
]


@pytest.mark.parametrize("when", ["before-auth", "after-auth-ok"])
@pytest.mark.parametrize("fields", STARTUP_ERRORS, ids=[f["C"] for f in STARTUP_ERRORS])
def test_error_response_during_startup(fields: Dict[str, str], when: str) -> None:
    after: List[bytes] = []

    def script(conn: FakeConn) -> None:
        conn.read_startup()
        prefix = b"" if when == "before-auth" else auth_ok() + parameter_status("a", "b")
        conn.send(prefix + error_response(fields))
        after.append(conn.read_until_eof())

    with FakeBackend(script) as srv:
        error = fails_promptly(OperationalError, lambda: connect_to(srv))
    assert type(error) is OperationalError
    assert error.sqlstate == fields["C"]
    assert error.message == fields["M"]
    assert fields["M"] in str(error)
    assert error.severity == "FATAL"
    if "H" in fields:
        assert error.detail == "a detail" and error.hint == "a hint"
    assert after == [b""]


@pytest.mark.parametrize(
    "stage", ["after-ssl-request", "after-startup", "after-password-request", "after-auth-ok"]
)
def test_eof_during_startup(stage: str) -> None:
    def script(conn: FakeConn) -> None:
        if stage == "after-ssl-request":
            conn.recv_exact(8)
            return
        conn.read_startup()
        if stage == "after-password-request":
            conn.auth_request(3)
            kind, body = conn.read_message()
            assert (kind, body) == (b"p", b"pw\0")
        elif stage == "after-auth-ok":
            conn.send(auth_ok() + parameter_status("server_version", "15.4") + backend_key())

    sslmode = "require" if stage == "after-ssl-request" else "disable"
    with FakeBackend(script) as srv:
        error = fails_promptly(OperationalError,
                               lambda: connect_to(srv, password="pw", sslmode=sslmode))
    assert "closed the connection" in str(error)


# -- asynchronous messages in the middle of things --------------------------------


@pytest.mark.parametrize("chunking", ["message-by-message", "all-at-once", "byte-by-byte"])
def test_notifications_during_startup_and_before_ready_for_query_are_kept(
    chunking: str,
) -> None:
    def send(conn: FakeConn, *parts: bytes) -> None:
        if chunking == "all-at-once":
            conn.send(b"".join(parts))
            return
        for part in parts:
            if chunking == "byte-by-byte":
                for i in range(len(part)):
                    conn.send(part[i : i + 1])
            else:
                conn.send(part)

    after: List[bytes] = []

    def script(conn: FakeConn) -> None:
        conn.read_startup()
        send(conn, auth_ok(),
             notify(11, "early", "during start-up"),
             parameter_status("server_version", "15.4"),
             msg(b"N", cstr("SNOTICE") + cstr("Mhello") + b"\0"),
             backend_key(4242),
             notify(12, "early", "before the first ready \u2603"),
             ready())
        assert conn.read_query() == 'LISTEN "chan"'
        send(conn, command_complete("LISTEN"),
             notify(13, "chan", "in the LISTEN's reply"),
             ready())
        assert conn.read_query() == "SELECT 1"
        send(conn, row_description("?column?"),
             notify(14, "chan", "between rows"),
             data_row(b"1"),
             command_complete("SELECT 1"),
             ready())
        after.append(conn.read_until_eof())

    with FakeBackend(script) as srv:
        pubsub = pgwire_pubsub.connect(host=srv.host, port=srv.port, user="alice",
                                       sslmode="disable", connect_timeout=5)
        conn = pubsub.conn
        assert list(conn.notifications) == [
            Notify(11, "early", "during start-up"),
            Notify(12, "early", "before the first ready \u2603"),
        ]
        assert conn.notices == ["NOTICE:  hello\n"]
        assert conn.get_backend_pid() == 4242
        pubsub.listen("chan")
        assert conn.execute("SELECT 1") == [("1",)]
        assert pubsub.get_events() == [
            Notify(11, "early", "during start-up"),
            Notify(12, "early", "before the first ready \u2603"),
            Notify(13, "chan", "in the LISTEN's reply"),
            Notify(14, "chan", "between rows"),
        ]
        assert pubsub.get_event() is None
        pubsub.close()
    assert after == [b"X\0\0\0\x04"]
