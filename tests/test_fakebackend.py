"""The fake backend itself: where it listens, its two modes, what it refuses, its faults.

(Its LISTEN/NOTIFY semantics are checked against a real server in test_crosscheck*.py.)
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Dict, Iterator, List

import pytest

import pgwire_pubsub
from pgwire_pubsub import DatabaseError, Notify, OperationalError, ProtocolViolation, PubSub
from pgwire_pubsub import protocol as pg
from pgwire_pubsub.testing import FakeBackend, FakeConn, wait_for
from pgwire_pubsub.testing._fakesql import Param, statements


@pytest.fixture
def client(fake_backend: FakeBackend) -> Iterator[PubSub]:
    ps = pgwire_pubsub.connect(fake_backend.dsn, connect_timeout=5)
    yield ps
    ps.close()


class Raw:
    """A client made of a socket and the codec, for what a driver would not send."""

    def __init__(self, fake: FakeBackend) -> None:
        self.sock = socket.create_connection((fake.host, fake.port), timeout=10)
        self.decoder = pg.Decoder()
        self.received: List[pg.BackendMessage] = []

    def send(self, *messages: pg.Message) -> None:
        self.sock.sendall(b"".join(map(pg.build, messages)))

    def until_ready(self) -> List[pg.BackendMessage]:
        """The messages up to the next ReadyForQuery (or the end of the connection)."""
        while not any(isinstance(x, pg.ReadyForQuery) for x in self.received):
            data = self.sock.recv(65536)
            if not data:
                got, self.received = self.received, []
                return got
            self.received += self.decoder.feed(data)
        end = 1 + next(i for i, x in enumerate(self.received) if isinstance(x, pg.ReadyForQuery))
        got, self.received = self.received[:end], self.received[end:]
        return got

    def start(self) -> List[pg.BackendMessage]:
        self.send(pg.StartupMessage({"user": "postgres", "database": "postgres"}))
        return self.until_ready()


def kinds(messages: List[pg.BackendMessage]) -> List[str]:
    return [type(message).__name__ for message in messages]


# -- where it listens, how it lets in ---------------------------------------------------


def test_the_dsn_is_a_uri_for_every_client(fake_backend: FakeBackend) -> None:
    assert fake_backend.dsn == f"postgresql://postgres@127.0.0.1:{fake_backend.port}/postgres"
    with pytest.raises(ValueError, match="unix_socket=True"):
        fake_backend.unix_dsn  # noqa: B018


def test_a_unix_socket_too() -> None:
    with FakeBackend(unix_socket=True) as fake:
        assert fake.socket_dir is not None
        ps = pgwire_pubsub.connect(fake.unix_dsn)
        try:
            assert ps.conn.execute("SELECT 1") == [("1",)]
        finally:
            ps.close()


@pytest.mark.parametrize("auth", ["password", "md5", "scram-sha-256"])
def test_each_password_method(auth: str) -> None:
    with FakeBackend(auth=auth, user="alice", password="pw") as fake:
        pgwire_pubsub.connect(fake.dsn).close()
        for wrong in ({"password": "nope"}, {"user": "bob"}):
            with pytest.raises(OperationalError, match="28P01"):
                pgwire_pubsub.connect(**fake.dsn_params(**wrong))


def test_an_unknown_method_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="trust, password, md5, scram-sha-256"):
        FakeBackend(auth="gss")


def test_sessions_have_pids_of_their_own(fake_backend: FakeBackend) -> None:
    a, b = (pgwire_pubsub.connect(fake_backend.dsn) for _ in range(2))
    try:
        pids = [ps.conn.get_backend_pid() for ps in (a, b)]
        assert pids[0] != pids[1]
        assert a.conn.execute("SELECT pg_backend_pid()") == [(str(pids[0]),)]
    finally:
        a.close()
        b.close()


def test_a_cancel_request_is_accepted_and_ends(fake_backend: FakeBackend) -> None:
    raw = Raw(fake_backend)
    raw.send(pg.CancelRequest(20001, b"\0\0\0\1"))
    assert raw.sock.recv(100) == b""


def test_a_bad_startup_gets_a_fatal_error(fake_backend: FakeBackend) -> None:
    raw = Raw(fake_backend)
    raw.sock.sendall(b"\0\0\0\x08\0\x02\0\0")  # protocol 2.0
    (error,) = raw.until_ready()
    assert isinstance(error, pg.ErrorResponse)
    assert error.fields["C"] == "08P01" and "protocol version 2.0" in error.fields["M"]


# -- what it answers ---------------------------------------------------------------------


def test_anything_else_is_refused_with_0a000(client: PubSub) -> None:
    with pytest.raises(DatabaseError, match="does not support this statement: CREATE") as exc:
        client.conn.execute("CREATE TABLE t (x int)")
    assert exc.value.sqlstate == "0A000"
    assert client.conn.execute("SELECT 1") == [("1",)]  # and the session goes on


def test_a_long_channel_name_is_truncated_with_a_notice(client: PubSub) -> None:
    client.conn.execute("LISTEN " + "x" * 70)
    assert client.conn.execute("SELECT pg_listening_channels()") == [("x" * 63,)]
    assert any("will be truncated" in notice for notice in client.conn.notices)


def test_show_and_the_health_checks_of_clients(client: PubSub) -> None:
    assert client.conn.execute("SHOW server_version") == [("15.0",)]
    assert client.conn.execute("SHOW transaction_read_only") == [("off",)]
    assert client.conn.execute("SELECT pg_catalog.pg_is_in_recovery()") == [("f",)]
    with pytest.raises(DatabaseError, match='unrecognized configuration parameter "nope"'):
        client.conn.execute("SHOW nope")


def test_the_extended_protocol_with_named_statements_and_binary_results(
        fake_backend: FakeBackend) -> None:
    raw = Raw(fake_backend)
    raw.start()
    raw.send(pg.Parse("s1", "SELECT 1"), pg.Describe("S", "s1"),
             pg.Bind("p1", "s1", (), (), (1,)), pg.Describe("P", "p1"), pg.Execute("p1"),
             pg.Close("S", "s1"), pg.Bind("", "s1"), pg.Sync())
    got = raw.until_ready()
    assert got[:3] == [pg.ParseComplete(), pg.ParameterDescription(()),
                       pg.RowDescription(("?column?",))]
    assert got[3:7] == [pg.BindComplete(), pg.RowDescription(("?column?",)),
                        pg.DataRow((b"\0\0\0\x01",)), pg.CommandComplete("SELECT 1")]
    assert got[7] == pg.CloseComplete()
    assert isinstance(got[8], pg.ErrorResponse) and got[8].fields["C"] == "26000"
    assert got[9:] == [pg.ReadyForQuery("I")]


def test_an_error_skips_the_rest_of_an_extended_batch(fake_backend: FakeBackend) -> None:
    raw = Raw(fake_backend)
    raw.start()
    raw.send(pg.Parse("", "DROP TABLE t"), pg.Bind("", ""), pg.Execute(), pg.Sync(),
             pg.Parse("", "SELECT pg_notify($1, $2::text)"), pg.Describe("S"), pg.Sync(),
             pg.Query(""))
    got = raw.until_ready() + raw.until_ready() + raw.until_ready()
    assert kinds(got) == ["ErrorResponse", "ReadyForQuery", "ParseComplete",
                          "ParameterDescription", "RowDescription", "ReadyForQuery",
                          "EmptyQueryResponse", "ReadyForQuery"]
    assert got[0].fields["C"] == "0A000"  # type: ignore[union-attr]
    assert got[3] == pg.ParameterDescription((25, 25))


def test_more_than_one_statement_cannot_be_prepared(fake_backend: FakeBackend) -> None:
    raw = Raw(fake_backend)
    raw.start()
    raw.send(pg.Parse("", "SELECT 1; SELECT 1"), pg.Sync())
    error = raw.until_ready()[0]
    assert isinstance(error, pg.ErrorResponse) and error.fields["C"] == "42601"


def test_a_message_out_of_place_is_a_fatal_protocol_violation(
        fake_backend: FakeBackend) -> None:
    raw = Raw(fake_backend)
    raw.start()
    raw.sock.sendall(b"Y\0\0\0\x04")
    (error,) = raw.until_ready()
    assert isinstance(error, pg.ErrorResponse)
    assert error.fields["S"] == "FATAL" and error.fields["C"] == "08P01"


# -- the SQL it understands ------------------------------------------------------------


@pytest.mark.parametrize("sql, kind, args", [
    ("LISTEN Foo", "listen", ("foo",)),
    ('listen "Foo"""', "listen", ('Foo"',)),
    ("UNLISTEN *", "unlisten", (None,)),
    ("NOTIFY c", "notify", ("c", "")),
    ("NOTIFY c, 'it''s'", "notify", ("c", "it's")),
    ("NOTIFY c, E'a\\'b\\\\c\\nd'", "notify", ("c", "a'b\\c\nd")),
    ("/* hi */ BEGIN -- there\n", "begin", ()),
    ("start transaction isolation level serializable", "begin", ()),
    ("END", "commit", ()),
    ("ABORT WORK", "rollback", ()),
    ("SHOW server_version", "show", ("server_version",)),
])
def test_statements_are_recognised(sql: str, kind: str, args: Any) -> None:
    (statement,) = statements(sql)
    assert (statement.kind, statement.args) == (kind, args)


def test_pg_notify_takes_literals_parameters_and_null() -> None:
    (statement,) = statements("select pg_catalog.pg_notify($1::text, NULL) as n")
    assert statement.kind == "select_notify"
    assert statement.args[1:] == (Param(1), None)
    assert statement.args[0].name == "n"  # type: ignore[attr-defined]


@pytest.mark.parametrize("sql, code", [
    ("SELECT 'unterminated", "42601"),
    ("NOTIFY", "42601"),
    ("NOTIFY c 'x'", "42601"),
    ("SELECT pg_notify('a')", "0A000"),
    ("SELECT now()", "0A000"),
    ("VACUUM", "0A000"),
])
def test_what_is_not_understood_says_so(sql: str, code: str) -> None:
    (statement,) = statements(sql)
    assert statement.kind == "unsupported" and statement.args[0] == code


def test_a_query_string_is_cut_at_semicolons_outside_quotes() -> None:
    found = statements("NOTIFY a, ';'; ; LISTEN \"b;\";")
    assert [(s.kind, s.args) for s in found] == [("notify", ("a", ";")), ("listen", ("b;",))]
    assert statements("  -- nothing\n") == []


# -- faults ------------------------------------------------------------------------------


def test_cut_closes_every_connection(fake_backend: FakeBackend, client: PubSub) -> None:
    fake_backend.cut()
    with pytest.raises(OperationalError):
        client.conn.execute("SELECT 1")
    pgwire_pubsub.connect(fake_backend.dsn).close()  # new connections still come in


def test_blackhole_holds_everything_until_passthrough(fake_backend: FakeBackend,
                                                      client: PubSub) -> None:
    client.listen("c")
    fake_backend.blackhole()
    done = threading.Event()

    def notify() -> None:
        client.conn.execute("NOTIFY c, 'held'")
        done.set()

    thread = threading.Thread(target=notify, daemon=True)
    thread.start()
    conn = fake_backend.conns[0]
    wait_for(lambda: conn.held > 0, message="the reply to be held")
    assert not done.is_set()
    fake_backend.passthrough()
    thread.join(10)
    assert done.is_set()
    event = client.get_event(select_timeout=5)
    assert isinstance(event, Notify) and event.payload == "held"


def test_trickle_delivers_byte_by_byte(fake_backend: FakeBackend) -> None:
    raw = Raw(fake_backend)
    raw.start()
    fake_backend.trickle(0.002)
    raw.send(pg.Query("SELECT 1"))
    chunks: List[bytes] = []
    while not chunks or pg.Decoder().feed(b"".join(chunks))[-1:] != [pg.ReadyForQuery("I")]:
        chunks.append(raw.sock.recv(65536))
        assert chunks[-1], "the connection ended"
    assert len(chunks) > 5
    fake_backend.passthrough()
    raw.send(pg.Query("SELECT 1"))
    assert raw.until_ready()[-1] == pg.ReadyForQuery("I")


def test_send_raw_reaches_every_connection(fake_backend: FakeBackend, client: PubSub) -> None:
    wait_for(lambda: fake_backend.conns and fake_backend.conns[0].pid)
    fake_backend.send_raw(b"\x00garbage")
    with pytest.raises(ProtocolViolation):
        client.conn.execute("SELECT 1")


def test_reject_authentication_until_told_otherwise(fake_backend: FakeBackend) -> None:
    fake_backend.reject_authentication()
    with pytest.raises(OperationalError, match="28P01"):
        pgwire_pubsub.connect(fake_backend.dsn)
    fake_backend.reject_authentication(False)
    pgwire_pubsub.connect(fake_backend.dsn).close()


def test_the_faults_work_in_scripted_mode_too() -> None:
    seen: Dict[str, Any] = {}

    def script(conn: FakeConn) -> None:
        if conn.index == 0:
            try:
                conn.handshake()
            except EOFError:
                seen["rejected"] = True
            return
        conn.handshake()
        seen["query"] = conn.receive()
        conn.send_messages(pg.CommandComplete("SELECT 0"), pg.ReadyForQuery("I"))
        conn.read_until_eof()

    with FakeBackend(script) as fake:
        fake.reject_authentication()
        with pytest.raises(OperationalError, match="28P01"):
            pgwire_pubsub.connect(fake.dsn)
        fake.reject_authentication(False)
        fake.trickle()
        ps = pgwire_pubsub.connect(fake.dsn)
        assert ps.conn.execute("SELECT x") == []
        fake.cut()
        with pytest.raises(OperationalError):
            ps.conn.execute("SELECT x")
        ps.close()
    assert seen == {"rejected": True, "query": pg.Query("SELECT x")}


# -- scripted mode -----------------------------------------------------------------------


def test_a_script_speaks_in_typed_messages(fake_backend: FakeBackend) -> None:
    received: List[pg.FrontendMessage] = []

    def script(conn: FakeConn) -> None:
        startup = conn.receive_startup()
        received.append(startup)
        conn.send_messages(pg.AuthenticationSASL(("SCRAM-SHA-256",)))
        received.append(conn.receive(pg.SASLInitialResponse))
        conn.fatal("28000", "enough")

    with FakeBackend(script) as fake, pytest.raises(OperationalError, match="enough"):
        pgwire_pubsub.connect(fake.dsn, password="pw")
    assert isinstance(received[0], pg.StartupMessage)
    assert received[0].parameters["user"] == "postgres"
    assert isinstance(received[1], pg.SASLInitialResponse)
    assert received[1].mechanism == "SCRAM-SHA-256"


def test_a_failing_script_fails_the_test_on_exit() -> None:
    def script(conn: FakeConn) -> None:
        raise RuntimeError("script broke")

    fake = FakeBackend(script).start()
    with pytest.raises(OperationalError):
        pgwire_pubsub.connect(fake.dsn, connect_timeout=5)
    with pytest.raises(RuntimeError, match="script broke"):
        fake.__exit__(None, None, None)


def test_connections_limits_what_is_accepted() -> None:
    calls: List[int] = []

    def script(conn: FakeConn) -> None:
        calls.append(conn.index)

    with FakeBackend(script, connections=1) as fake:
        with pytest.raises(OperationalError):
            pgwire_pubsub.connect(fake.dsn, connect_timeout=5)
        wait_for(lambda: not fake._acceptor.is_alive(), message="the port to close")
        with pytest.raises(OperationalError, match="refused"):
            pgwire_pubsub.connect(fake.dsn, connect_timeout=5)
    assert calls == [0]
