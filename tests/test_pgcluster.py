"""Checks of the test servers themselves: roles, pg_hba.conf, TLS, sockets, fake server."""

from __future__ import annotations

import os
import socket
import struct
from typing import Any, Dict, List, Optional, Tuple

import pytest

from pgwire_pubsub.testing.fakebackend import PROTOCOL_3_0, FakeBackend, FakeConn
from pgwire_pubsub.testing.pgcluster import (
    AUTH_METHOD,
    ROLES,
    Cluster,
    LineReader,
    PsqlError,
    Server,
    find_pg_bindir,
    parse_dsn,
)

PASSWORD_ROLES = [r for r, pw in ROLES.items() if pw is not None]


def need_roles(server: Server) -> None:
    if not server.has_roles:
        pytest.skip("server has no test roles")


def need_tls(server: Server) -> None:
    if not server.has_tls:
        pytest.skip("server has no TLS")


@pytest.mark.integration
def test_psql_select_1(pg: Server) -> None:
    assert pg.psql("select 1") == "1\n"


@pytest.mark.integration
@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_logs_in_with_its_method(pg: Server, role: str) -> None:
    need_roles(pg)
    sslmode = "require" if role == "tls_user" else "prefer"
    assert pg.psql("select current_user", role=role, sslmode=sslmode) == f"{role}\n"
    assert pg.psql("select current_database()", role=role, dbname="pubsub") == "pubsub\n"
    if isinstance(pg, Cluster) and AUTH_METHOD[role] != "trust":
        assert f'identity="{role}" method={AUTH_METHOD[role]}' in pg.log()


@pytest.mark.integration
@pytest.mark.parametrize("role", PASSWORD_ROLES)
def test_wrong_password_is_refused(pg: Server, role: str) -> None:
    need_roles(pg)
    with pytest.raises(PsqlError, match="password authentication failed"):
        pg.psql("select 1", role=role, password="wrong")


@pytest.mark.integration
def test_md5_user_has_an_md5_hash(pg: Server) -> None:
    need_roles(pg)
    sql = "select left(rolpassword, 3) from pg_authid where rolname = 'md5_user'"
    assert pg.psql(sql) == "md5\n"


@pytest.mark.integration
def test_trust_user_needs_no_password(pg: Server) -> None:
    need_roles(pg)
    assert "password" not in pg.dsn_kwargs("trust_user")
    assert pg.psql("select 1", role="trust_user", sslmode="disable") == "1\n"


@pytest.mark.integration
def test_tls_user_needs_tls(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    with pytest.raises(PsqlError, match="no encryption"):
        pg.psql("select 1", role="tls_user", sslmode="disable")
    ok = pg.psql("select ssl from pg_stat_ssl where pid = pg_backend_pid()", role="tls_user",
                 host="localhost", sslmode="verify-full", sslrootcert=pg.ca_file)
    assert ok == "t\n"


@pytest.mark.integration
def test_certificate_names_localhost_only(pg: Server) -> None:
    need_tls(pg)
    with pytest.raises(PsqlError, match="does not match host name"):
        pg.psql("select 1", host="127.0.0.1", sslmode="verify-full", sslrootcert=pg.ca_file)
    assert pg.psql("select 1", host="127.0.0.1", sslmode="verify-ca",
                   sslrootcert=pg.ca_file) == "1\n"


@pytest.mark.integration
def test_other_ca_does_not_verify(pg: Server) -> None:
    need_tls(pg)
    if pg.other_ca_file is None:
        pytest.skip("server has no second CA")
    with pytest.raises(PsqlError, match="certificate verify failed"):
        pg.psql("select 1", sslmode="verify-ca", sslrootcert=pg.other_ca_file)


@pytest.mark.integration
def test_unix_socket(pg: Server) -> None:
    if pg.socket_dir is None:
        pytest.skip("server has no local Unix socket")
    assert pg.psql("select 1", role="trust_user", host=pg.socket_dir) == "1\n"
    with pytest.raises(PsqlError, match="rejects connection"):
        pg.psql("select 1", role="tls_user", host=pg.socket_dir)


@pytest.mark.integration
def test_nossl_server_refuses_tls(pg_nossl: Server) -> None:
    with pytest.raises(PsqlError, match="does not support SSL"):
        pg_nossl.psql("select 1", sslmode="require")
    assert pg_nossl.psql("select 1", sslmode="disable") == "1\n"


@pytest.mark.integration
def test_restart_keeps_the_port(pg_nossl: Server) -> None:
    if not pg_nossl.can_restart:
        pytest.skip("server cannot restart")
    port = pg_nossl.port
    pg_nossl.restart("immediate")
    assert pg_nossl.port == port
    assert pg_nossl.psql("select 1") == "1\n"


@pytest.mark.integration
def test_a_cluster_from_binaries_only_root_can_reach(root_only_copy: Any) -> None:
    """As root from a clone or virtualenv under /root (mode 0700): a copy runs instead."""
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries here")
    cluster = Cluster(tls=False, bindir=root_only_copy(bindir))
    try:
        cluster.start()
        copy = cluster.programs.copy
        assert copy is not None and os.path.isdir(copy)
        assert cluster.psql("select current_user", role="md5_user") == "md5_user\n"
        cluster.restart()
        assert cluster.psql("select 1") == "1\n"
    finally:
        cluster.cleanup()
    assert not os.path.exists(copy)


@pytest.mark.integration
def test_popen_psql_sees_notifications(pg: Server) -> None:
    proc = pg.popen_psql()
    assert proc.stdin is not None and proc.stdout is not None
    out = LineReader(proc.stdout)
    try:
        proc.stdin.write("LISTEN pgcluster_chan;\nSELECT 'listening';\n")
        proc.stdin.flush()
        out.wait_for_line("listening")
        pg.psql("NOTIFY pgcluster_chan, 'hello'")
        proc.stdin.write("SELECT 1;\n")
        proc.stdin.flush()
        line = out.wait_for_line('Asynchronous notification "pgcluster_chan"')
        assert 'payload "hello"' in line
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_parse_dsn() -> None:
    assert parse_dsn("host=h port=5 user='a b' password='it\\'s'") == {
        "host": "h", "port": "5", "user": "a b", "password": "it's"}
    assert parse_dsn("postgresql://u:p%40@h:6/db?sslmode=require") == {
        "host": "h", "port": "6", "user": "u", "password": "p@", "dbname": "db",
        "sslmode": "require"}


def _client_startup(port: int, ssl_request: bool = False) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if ssl_request:
        sock.sendall(struct.pack("!ii", 8, 80877103))
        assert sock.recv(1) == b"N"
    body = struct.pack("!i", PROTOCOL_3_0) + b"user\0alice\0database\0db\0\0"
    sock.sendall(struct.pack("!i", len(body) + 4) + body)
    return sock


def _read_until_ready(sock: socket.socket) -> List[Tuple[bytes, bytes]]:
    messages: List[Tuple[bytes, bytes]] = []
    with sock.makefile("rb") as f:
        while not messages or messages[-1][0] != b"Z":
            kind, length = struct.unpack("!ci", f.read(5))
            messages.append((kind, f.read(length - 4)))
    return messages


def test_fakeserver_handshake_and_error() -> None:
    seen: Dict[str, Any] = {}

    def script(conn: FakeConn) -> None:
        seen["params"] = conn.handshake()
        seen["query"] = conn.read_query()
        conn.error({"S": "ERROR", "C": "42601", "M": "nope"})
        conn.ready()

    with FakeBackend(script, expect_ssl_request=True) as srv:
        sock = _client_startup(srv.port, ssl_request=True)
        startup = _read_until_ready(sock)
        sock.sendall(b"Q" + struct.pack("!i", 13) + b"select 1\0")
        reply = _read_until_ready(sock)
        sock.close()
    assert seen == {"params": {"user": "alice", "database": "db"}, "query": "select 1"}
    assert [k for k, _ in startup] == [b"R"] + [b"S"] * 5 + [b"K", b"Z"]
    assert reply == [(b"E", b"SERROR\0C42601\0Mnope\0\0"), (b"Z", b"I")]


def test_fakeserver_reports_script_errors() -> None:
    def script(conn: FakeConn) -> None:
        conn.read_startup()
        conn.read_message()  # the client hangs up instead: EOFError

    with pytest.raises(EOFError), FakeBackend(script) as srv:
        _client_startup(srv.port).close()

    error: Optional[BaseException] = None
    with FakeBackend(script, check=False) as srv:
        _client_startup(srv.port).close()
    error = srv.error
    assert isinstance(error, EOFError)
