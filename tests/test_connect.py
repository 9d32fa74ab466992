"""Connecting to a real server: authentication, Unix sockets, sslmode, conninfo and timeouts.

A few start-up behaviours a real server cannot be made to show (a server that
never answers, a TLS handshake that never ends, the Terminate on close) use a
bare listening socket or the scripted fake server.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import threading
import time
import traceback
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote

import pytest
from timing import assert_on_time

import pgwire_pubsub
from pgwire_pubsub import Connection, DatabaseError, OperationalError, ProgrammingError
from pgwire_pubsub._blocking.connection import connect_raw
from pgwire_pubsub.testing.fakebackend import SSL_REQUEST, FakeBackend, FakeConn, split_messages
from pgwire_pubsub.testing.pgcluster import ROLES, Server

# Every test here runs on the blocking and on the asyncio client (see conftest.py).
pytestmark = pytest.mark.usefixtures("on_every_client")

PASSWORD_ROLES = ["password_user", "md5_user", "scram_user"]
ALL_METHOD_ROLES = ["trust_user", *PASSWORD_ROLES]
METHOD_NAMES = {"password_user": "password", "md5_user": "md5", "scram_user": "scram-sha-256"}

# Every libpq environment variable the library (or libpq) reads.
LIBPQ_ENV = (
    "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGDATABASE",
    "PGCONNECT_TIMEOUT", "PGAPPNAME", "PGOPTIONS", "PGSSLMODE", "PGSSLROOTCERT",
    "PGREQUIRESSL", "PGSERVICE", "PGSERVICEFILE", "PGCLIENTENCODING",
)

SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"

# When the silent servers below hang up: a client that ignores its timeout then fails on
# the error (not a timeout), instead of hanging.
TIMEOUT_GUARD = 10.0
# connect_timeout=1 is raised to libpq's minimum of 2 seconds.
CONNECT_TIMEOUT_DUE = 2.0

AUTH = pytest.mark.all_servers("auth")
TLS = pytest.mark.all_servers("tls")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No PG* variable from the outside, and no ~/.postgresql/root.crt."""
    for name in LIBPQ_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def need_roles(server: Server) -> None:
    if not server.has_roles:
        pytest.skip("server has no test roles")


def need_tls(server: Server) -> None:
    if not server.has_tls or server.ca_file is None:
        pytest.skip("server has no TLS")


def need_socket(server: Server) -> str:
    if not server.socket_dir:
        pytest.skip("server has no local Unix socket")
    return server.socket_dir


def one(conn: Connection, sql: str) -> Optional[str]:
    rows = conn.execute(sql)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    value: Optional[str] = rows[0][0]
    return value


def ssl_in_use(conn: Connection) -> Optional[str]:
    return one(conn, SSL_IN_USE)


def shown_texts(obj: object) -> List[str]:
    """Every text a user may see for ``obj``: str, repr and, for errors, what is printed."""
    texts = [str(obj), repr(obj)]
    if isinstance(obj, BaseException):
        texts.append("".join(traceback.format_exception_only(type(obj), obj)))
        texts.extend(str(arg) for arg in obj.args)
        cause = obj.__cause__ or (None if obj.__suppress_context__ else obj.__context__)
        if cause is not None:
            texts.extend(shown_texts(cause))
    if isinstance(obj, DatabaseError):
        texts.extend(obj.fields.values())
        texts.append(obj.pgerror or "")
    return texts


def assert_hidden(secret: str, *objs: object) -> None:
    assert secret
    for obj in objs:
        for text in shown_texts(obj):
            assert secret not in text, f"the password shows in {type(obj).__name__}: {text!r}"


def message_of(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    return str(excinfo.value)


# -- authentication methods -------------------------------------------------------


@AUTH
@pytest.mark.parametrize("sslmode", ["disable", "require"])
@pytest.mark.parametrize("role", [*ALL_METHOD_ROLES, "postgres"])
def test_each_auth_method_logs_in_over_tcp(pg: Server, role: str, sslmode: str) -> None:
    need_roles(pg)
    if sslmode == "require":
        need_tls(pg)
    with connect_raw(**pg.dsn_kwargs(role, sslmode=sslmode)) as conn:
        assert conn.closed == 0
        rows = conn.execute("SELECT current_user, inet_server_port()")
        assert rows == [(role, str(pg.port))]  # a TCP session, as the role asked for
        assert ssl_in_use(conn) == ("t" if sslmode == "require" else "f")
        assert conn.get_backend_pid() == int(one(conn, "SELECT pg_backend_pid()") or 0)
    assert conn.closed == 1


@AUTH
def test_trust_ignores_a_supplied_password(pg: Server) -> None:
    need_roles(pg)
    with connect_raw(**pg.dsn_kwargs("trust_user", password="anything")) as conn:
        assert one(conn, "SELECT current_user") == "trust_user"


@AUTH
@pytest.mark.parametrize("sslmode", ["disable", "require"])
@pytest.mark.parametrize("role", PASSWORD_ROLES)
def test_wrong_password_is_refused_with_28P01(pg: Server, role: str, sslmode: str) -> None:
    need_roles(pg)
    if sslmode == "require":
        need_tls(pg)
    secret = f"Wr0ng-{role}-Secret"
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg.dsn_kwargs(role, password=secret, sslmode=sslmode))
    error = excinfo.value
    assert error.sqlstate == "28P01"
    assert "authentication" in str(error)
    assert role in str(error)
    assert_hidden(secret, error)


@AUTH
@pytest.mark.parametrize("role", PASSWORD_ROLES)
def test_missing_password_names_the_method_and_how_to_give_one(pg: Server, role: str) -> None:
    need_roles(pg)
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg.dsn_kwargs(role, password=None, sslmode="disable"))
    text = message_of(excinfo)
    method = METHOD_NAMES[role]
    assert method in text
    for other in set(METHOD_NAMES.values()) - {method, "password"}:
        assert other not in text  # the method named is the one the server asked for
    assert role in text
    assert "password=" in text and "PGPASSWORD" in text


@AUTH
@pytest.mark.parametrize("role", PASSWORD_ROLES)
def test_password_from_pgpassword(pg: Server, role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    need_roles(pg)
    monkeypatch.setenv("PGPASSWORD", str(ROLES[role]))
    with connect_raw(**pg.dsn_kwargs(role, password=None, sslmode="disable")) as conn:
        assert one(conn, "SELECT current_user") == role


@AUTH
@pytest.mark.parametrize("role", PASSWORD_ROLES)
def test_password_never_shown_by_connection_or_params(pg: Server, role: str) -> None:
    need_roles(pg)
    secret = str(ROLES[role])
    conn = connect_raw(pg.dsn(role, sslmode="disable"))
    pubsub = pgwire_pubsub.connect(**pg.dsn_kwargs(role, sslmode="disable"))
    try:
        assert conn.params.password == secret  # it is there, just never shown
        assert_hidden(secret, conn, conn.params, pubsub, pubsub.conn.params)
        assert "***" in repr(conn.params)
    finally:
        conn.close()
        pubsub.close()
    assert_hidden(secret, conn, pubsub)


def _refused_port() -> Tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    return sock, sock.getsockname()[1]


@AUTH
def test_password_never_shown_in_connection_errors(pg: Server) -> None:
    need_roles(pg)
    secret = "Hunter2-very-secret"
    errors: List[BaseException] = []
    closed, port = _refused_port()
    with closed:
        attempts: List[Tuple[Optional[str], Dict[str, Any]]] = [
            (None, dict(host="127.0.0.1", port=port, user="u", password=secret)),
            (f"host=127.0.0.1 port={port} user=u password={secret} bogus=1", {}),
            (f"postgresql://u:{secret}@127.0.0.1:{port}/db?bogus=1", {}),
            (f"postgresql://u:{secret}@127.0.0.1:{port}/db?sslmode=bogus", {}),
            (f"host=127.0.0.1 port=notaport user=u password={secret}", {}),
            (None, pg.dsn_kwargs("md5_user", password=secret)),
            (None, pg.dsn_kwargs("scram_user", password=secret, sslmode="require")),
        ]
        if pg.has_tls and pg.ca_file:
            attempts.append((None, pg.dsn_kwargs(
                "scram_user", password=secret, sslmode="verify-full", sslrootcert=pg.ca_file)))
        for dsn, kwargs in attempts:
            with pytest.raises(DatabaseError) as excinfo:
                connect_raw(dsn, connect_timeout=5, **kwargs)
            errors.append(excinfo.value)
    assert_hidden(secret, *errors)


# -- Unix sockets -----------------------------------------------------------------


@AUTH
@pytest.mark.parametrize("role", ["trust_user", "postgres"])
def test_unix_socket_directory(pg: Server, role: str) -> None:
    need_roles(pg)
    directory = need_socket(pg)
    assert directory.startswith("/")
    with connect_raw(host=directory, port=pg.port, user=role, dbname="postgres") as conn:
        assert conn.params.uses_unix_socket
        assert conn.params.unix_socket_path == f"{directory}/.s.PGSQL.{pg.port}"
        rows = conn.execute("SELECT current_user, inet_server_addr() IS NULL, "
                            "current_setting('port')")
        assert rows == [(role, "t", str(pg.port))]
        assert ssl_in_use(conn) == "f"


@AUTH
def test_unix_socket_in_a_connection_string(pg: Server) -> None:
    need_roles(pg)
    directory = need_socket(pg)
    with connect_raw(f"host={directory} port={pg.port} user=trust_user dbname=pubsub") as conn:
        assert conn.execute("SELECT current_database(), inet_server_addr() IS NULL") == [
            ("pubsub", "t")]


@AUTH
def test_unix_socket_ignores_sslmode(pg: Server) -> None:
    """As libpq: TLS is never tried over a Unix socket, whatever sslmode says."""
    need_roles(pg)
    directory = need_socket(pg)
    with connect_raw(host=directory, port=pg.port, user="trust_user", dbname="postgres",
                     sslmode="require") as conn:
        assert ssl_in_use(conn) == "f"


@AUTH
def test_unix_socket_rejects_tls_user(pg: Server) -> None:
    need_roles(pg)
    directory = need_socket(pg)
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(host=directory, port=pg.port, user="tls_user", password="tls_pw",
                    dbname="postgres")
    assert excinfo.value.sqlstate == "28000"


@AUTH
def test_unix_socket_of_another_port_names_the_socket(pg: Server) -> None:
    directory = need_socket(pg)
    other = pg.port + 1 if pg.port < 65535 else pg.port - 1
    assert not os.path.exists(f"{directory}/.s.PGSQL.{other}")
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(host=directory, port=other, user="trust_user", connect_timeout=5)
    assert f"{directory}/.s.PGSQL.{other}" in message_of(excinfo)


# -- sslmode against a server with TLS --------------------------------------------


@TLS
def test_sslmode_disable_uses_no_tls(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    with connect_raw(**pg.dsn_kwargs("trust_user", sslmode="disable")) as conn:
        assert ssl_in_use(conn) == "f"
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg.dsn_kwargs("tls_user", sslmode="disable"))
    assert excinfo.value.sqlstate == "28000"
    assert "no encryption" in message_of(excinfo)


@TLS
def test_sslmode_allow_tries_plain_first(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    with connect_raw(**pg.dsn_kwargs("trust_user", sslmode="allow")) as conn:
        assert ssl_in_use(conn) == "f"


@TLS
def test_sslmode_allow_falls_back_to_tls(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    conn = connect_raw(**pg.dsn_kwargs("tls_user", sslmode="allow"))
    try:
        assert conn.closed == 0
        assert conn.execute(f"SELECT current_user, ({SSL_IN_USE})") == [("tls_user", "t")]
    finally:
        conn.close()


@TLS
@pytest.mark.parametrize("sslmode", ["prefer", "require"])
def test_sslmode_prefer_and_require_use_tls(pg: Server, sslmode: str) -> None:
    need_roles(pg)
    need_tls(pg)
    with connect_raw(**pg.dsn_kwargs("trust_user", sslmode=sslmode)) as conn:
        assert ssl_in_use(conn) == "t"
    with connect_raw(**pg.dsn_kwargs("tls_user", sslmode=sslmode)) as conn:
        assert conn.execute(f"SELECT current_user, ({SSL_IN_USE})") == [("tls_user", "t")]


@TLS
def test_default_sslmode_is_prefer(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    with connect_raw(**pg.dsn_kwargs("scram_user")) as conn:
        assert conn.params.sslmode == "prefer"
        assert ssl_in_use(conn) == "t"


@TLS
def test_sslmode_require_with_a_root_certificate_verifies_it(pg: Server) -> None:
    """libpq: with require, a root certificate that exists is used as with verify-ca."""
    need_roles(pg)
    need_tls(pg)
    assert pg.other_ca_file is not None
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg.dsn_kwargs("trust_user", sslmode="require",
                                    sslrootcert=pg.other_ca_file))
    assert "verif" in message_of(excinfo)
    with connect_raw(**pg.dsn_kwargs("trust_user", sslmode="require",
                                     sslrootcert=pg.ca_file)) as conn:
        assert ssl_in_use(conn) == "t"


@TLS
def test_sslmode_verify_ca(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    # verify-ca checks the chain, not the name: 127.0.0.1 is not in the certificate.
    kwargs = pg.dsn_kwargs("scram_user", host="127.0.0.1", sslmode="verify-ca",
                           sslrootcert=pg.ca_file)
    with connect_raw(**kwargs) as conn:
        assert conn.execute(f"SELECT current_user, ({SSL_IN_USE})") == [("scram_user", "t")]


@TLS
def test_sslmode_verify_ca_with_an_unrelated_ca_fails(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg.dsn_kwargs("scram_user", sslmode="verify-ca",
                                    sslrootcert=pg.other_ca_file))
    text = message_of(excinfo)
    assert "certificate" in text and "verif" in text
    assert excinfo.value.sqlstate is None  # the client refused, not the server


@TLS
def test_sslmode_verify_ca_with_a_missing_root_file_names_it(pg: Server, tmp_path: Any) -> None:
    need_roles(pg)
    need_tls(pg)
    missing = str(tmp_path / "no-such-dir" / "root.crt")
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg.dsn_kwargs("trust_user", sslmode="verify-ca", sslrootcert=missing))
    assert missing in message_of(excinfo)


@TLS
@pytest.mark.parametrize("sslmode", ["verify-ca", "verify-full"])
def test_verify_without_sslrootcert_names_the_default_file(
    pg: Server, tmp_path: Any, sslmode: str
) -> None:
    need_roles(pg)
    need_tls(pg)
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg.dsn_kwargs("trust_user", sslmode=sslmode))
    assert os.path.join(str(tmp_path), ".postgresql", "root.crt") in message_of(excinfo)


@TLS
def test_sslmode_verify_full_accepts_the_certificate_name(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    kwargs = pg.dsn_kwargs("tls_user", host="localhost", sslmode="verify-full",
                           sslrootcert=pg.ca_file)
    with connect_raw(**kwargs) as conn:
        assert conn.execute(f"SELECT current_user, ({SSL_IN_USE})") == [("tls_user", "t")]


@TLS
def test_sslmode_verify_full_checks_host_not_hostaddr(pg: Server) -> None:
    """hostaddr is dialled; host is the name the certificate must carry."""
    need_roles(pg)
    need_tls(pg)
    kwargs = pg.dsn_kwargs("trust_user", host="localhost", hostaddr="127.0.0.1",
                           sslmode="verify-full", sslrootcert=pg.ca_file)
    with connect_raw(**kwargs) as conn:
        assert conn.execute(f"SELECT inet_server_addr(), ({SSL_IN_USE})") == [
            ("127.0.0.1", "t")]


@TLS
def test_sslmode_verify_full_rejects_a_name_not_in_the_certificate(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg.dsn_kwargs("trust_user", host="127.0.0.1", sslmode="verify-full",
                                    sslrootcert=pg.ca_file))
    text = message_of(excinfo)
    assert "certificate" in text and "verif" in text
    assert re.search(r"mismatch|not valid for|does not match", text), text
    # The same chain is fine without the name check, so the name is what failed.
    with connect_raw(**pg.dsn_kwargs("trust_user", host="127.0.0.1", sslmode="verify-ca",
                                     sslrootcert=pg.ca_file)) as conn:
        assert ssl_in_use(conn) == "t"


# -- sslmode against a server without TLS -----------------------------------------


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer"])
def test_nossl_server_plain_modes_connect_without_tls(pg_nossl: Server, sslmode: str) -> None:
    need_roles(pg_nossl)
    with connect_raw(**pg_nossl.dsn_kwargs("scram_user", sslmode=sslmode)) as conn:
        assert conn.execute(f"SELECT current_user, ({SSL_IN_USE})") == [("scram_user", "f")]


@pytest.mark.parametrize("sslmode", ["require", "verify-ca", "verify-full"])
def test_nossl_server_refuses_modes_that_need_tls(
    pg: Server, pg_nossl: Server, sslmode: str
) -> None:
    need_roles(pg_nossl)
    need_tls(pg)  # only for a CA file that exists, so that the TLS refusal is what fails
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg_nossl.dsn_kwargs("trust_user", host="localhost", sslmode=sslmode,
                                          sslrootcert=pg.ca_file))
    text = message_of(excinfo)
    assert "TLS" in text or "SSL" in text
    assert sslmode in text


def test_nossl_server_tls_user_is_rejected_in_allow(pg_nossl: Server) -> None:
    need_roles(pg_nossl)
    with pytest.raises(OperationalError) as excinfo:
        connect_raw(**pg_nossl.dsn_kwargs("tls_user", sslmode="allow"))
    assert excinfo.value.sqlstate == "28000"


# -- what the server sees ---------------------------------------------------------


SESSION_SQL = ("SELECT current_setting('client_encoding'), a.application_name "
               "FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()")


def test_server_sees_utf8_and_application_name(pg: Server) -> None:
    need_roles(pg)
    kwargs = pg.dsn_kwargs("trust_user", application_name="pgwire connect test")
    with connect_raw(**kwargs) as conn:
        assert conn.execute(SESSION_SQL) == [("UTF8", "pgwire connect test")]
        assert conn.get_parameter_status("client_encoding") == "UTF8"
        assert conn.get_parameter_status("application_name") == "pgwire connect test"
        text = "é ☃ 𝄞 \u00a0"
        assert conn.execute("SELECT $1::text, length($1)", [text]) == [(text, str(len(text)))]


@pytest.fixture
def latin1_by_default(pg: Server) -> Iterator[str]:
    """trust_user gets client_encoding LATIN1 by default in pubsub, for one test."""
    need_roles(pg)
    pg.psql("ALTER ROLE trust_user IN DATABASE pubsub SET client_encoding = 'LATIN1'")
    try:
        yield "pubsub"
    finally:
        pg.psql("ALTER ROLE trust_user IN DATABASE pubsub RESET client_encoding")


def test_client_encoding_is_utf8_whatever_the_defaults(
    pg: Server, latin1_by_default: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start-up packet asks for UTF8, over the role's default and PGCLIENTENCODING."""
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    with connect_raw(**pg.dsn_kwargs("trust_user", dbname=latin1_by_default)) as conn:
        assert conn.execute(SESSION_SQL) == [("UTF8", "")]
        assert conn.get_parameter_status("client_encoding") == "UTF8"
        assert conn.execute("SELECT $1::text", ["\u20ac \u2603"]) == [("\u20ac \u2603",)]
    with connect_raw(**pg.dsn_kwargs("trust_user", dbname=latin1_by_default,
                                     client_encoding="utf8")) as conn:
        assert conn.execute(SESSION_SQL) == [("UTF8", "")]
    # The default is really there: psql, which does not ask for UTF8, gets LATIN1.
    assert pg.psql("SHOW client_encoding", role="trust_user",
                   dbname=latin1_by_default) == "LATIN1\n"


def test_client_encoding_other_than_utf8_is_refused_before_connecting() -> None:
    with listener() as (sock, port):
        with pytest.raises(DatabaseError, match="LATIN1"):
            connect_raw(host="127.0.0.1", port=port, user="u", client_encoding="LATIN1")
        assert_nothing_accepted(sock)


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"fallback_application_name": "fallback"}, "fallback"),
        ({"fallback_application_name": "fallback", "application_name": "main"}, "main"),
        ({"application_name": "main"}, "main"),
    ],
)
def test_fallback_application_name(pg: Server, given: Dict[str, str], expected: str) -> None:
    need_roles(pg)
    with connect_raw(**pg.dsn_kwargs("trust_user", **given)) as conn:
        assert conn.execute(SESSION_SQL) == [("UTF8", expected)]


def test_pgappname_wins_over_fallback(pg: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    need_roles(pg)
    monkeypatch.setenv("PGAPPNAME", "from-env")
    with connect_raw(**pg.dsn_kwargs("trust_user", fallback_application_name="fb")) as conn:
        assert conn.execute(SESSION_SQL) == [("UTF8", "from-env")]


def test_options_reach_the_server(pg: Server) -> None:
    need_roles(pg)
    options = "-c statement_timeout=4321 -c search_path=pubsub_nowhere"
    with connect_raw(**pg.dsn_kwargs("trust_user", options=options)) as conn:
        assert one(conn, "SHOW statement_timeout") == "4321ms"
        assert one(conn, "SHOW search_path") == "pubsub_nowhere"


@pytest.mark.parametrize("keyword", ["dbname", "database"])
def test_dbname_and_its_database_alias(pg: Server, keyword: str) -> None:
    need_roles(pg)
    kwargs = pg.dsn_kwargs("trust_user", dbname=None)
    kwargs[keyword] = "pubsub"
    with connect_raw(**kwargs) as conn:
        assert one(conn, "SELECT current_database()") == "pubsub"


# -- connection strings and URIs --------------------------------------------------


TRICKY_PASSWORD = "p@ss:wo/rd ' \\ é?&=#% x"


@pytest.fixture
def tricky_password(pg: Server) -> Iterator[str]:
    """password_user's password made hard to quote, for the duration of one test."""
    need_roles(pg)
    assert "$pw$" not in TRICKY_PASSWORD
    pg.psql(f"ALTER ROLE password_user PASSWORD $pw${TRICKY_PASSWORD}$pw$")
    try:
        yield TRICKY_PASSWORD
    finally:
        pg.psql(f"ALTER ROLE password_user PASSWORD '{ROLES['password_user']}'")


def _quote_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_key_value_string_with_quoted_password(pg: Server, tricky_password: str) -> None:
    dsn = (f"host=127.0.0.1 port={pg.port} user=password_user dbname=postgres "
           f"sslmode=disable password={_quote_value(tricky_password)}")
    with connect_raw(dsn) as conn:
        assert conn.params.password == tricky_password
        assert conn.execute(f"SELECT current_user, ({SSL_IN_USE})") == [("password_user", "f")]
        assert_hidden(tricky_password, conn, conn.params)


def test_key_value_string_with_simple_quoting(pg: Server) -> None:
    need_roles(pg)
    dsn = (f"  host = '127.0.0.1'  port='{pg.port}' user = 'scram_user' "
           "password = 'scram_pw' dbname='pubsub' sslmode = 'disable' ")
    with connect_raw(dsn) as conn:
        assert conn.execute("SELECT current_user, current_database()") == [
            ("scram_user", "pubsub")]


def test_uri_with_sslmode_disable(pg: Server) -> None:
    need_roles(pg)
    uri = f"postgresql://scram_user:scram_pw@127.0.0.1:{pg.port}/postgres?sslmode=disable"
    with connect_raw(uri) as conn:
        rows = conn.execute(f"SELECT current_user, current_database(), ({SSL_IN_USE})")
        assert rows == [("scram_user", "postgres", "f")]


def test_uri_with_percent_encoded_password(pg: Server, tricky_password: str) -> None:
    encoded = quote(tricky_password, safe="")
    assert "@" not in encoded and ":" not in encoded and "/" not in encoded
    uri = (f"postgresql://password_user:{encoded}@127.0.0.1:{pg.port}/pubsub"
           "?application_name=uri%20app&sslmode=disable")
    with connect_raw(uri) as conn:
        rows = conn.execute(f"SELECT current_user, current_database(), ({SSL_IN_USE})")
        assert rows == [("password_user", "pubsub", "f")]
        assert conn.execute(SESSION_SQL) == [("UTF8", "uri app")]
        assert_hidden(tricky_password, conn, conn.params)
        assert_hidden(encoded, conn, conn.params)


def test_postgres_scheme_uri(pg: Server) -> None:
    need_roles(pg)
    with connect_raw(f"postgres://md5_user:md5_pw@127.0.0.1:{pg.port}/pubsub") as conn:
        assert conn.execute("SELECT current_user, current_database()") == [
            ("md5_user", "pubsub")]


def test_uri_with_sslmode_require(pg: Server) -> None:
    need_roles(pg)
    need_tls(pg)
    uri = f"postgresql://tls_user:tls_pw@localhost:{pg.port}/postgres?sslmode=require"
    with connect_raw(uri) as conn:
        assert conn.execute(f"SELECT current_user, ({SSL_IN_USE})") == [("tls_user", "t")]


def test_uri_to_a_unix_socket(pg: Server) -> None:
    need_roles(pg)
    directory = need_socket(pg)
    uri = f"postgresql://trust_user@{quote(directory, safe='')}:{pg.port}/pubsub"
    with connect_raw(uri) as conn:
        assert conn.params.uses_unix_socket
        assert conn.execute("SELECT current_database(), inet_server_addr() IS NULL") == [
            ("pubsub", "t")]


def test_keywords_override_the_string(pg: Server) -> None:
    need_roles(pg)
    dsn = ("host=192.0.2.1 port=1 user=nobody password=nothing dbname=nodb "
           "sslmode=verify-full application_name=from-dsn")
    kwargs = dict(host="127.0.0.1", port=pg.port, user="scram_user", password="scram_pw",
                  dbname="pubsub", sslmode="disable")
    with connect_raw(dsn, **kwargs) as conn:
        rows = conn.execute("SELECT current_user, current_database()")
        assert rows == [("scram_user", "pubsub")]
        assert conn.execute(SESSION_SQL) == [("UTF8", "from-dsn")]  # not overridden


def test_keywords_override_a_uri(pg: Server) -> None:
    need_roles(pg)
    uri = "postgresql://nobody:nothing@192.0.2.1:1/nodb?sslmode=verify-full"
    with pgwire_pubsub.connect(uri, host="127.0.0.1", port=pg.port, user="md5_user",
                               password="md5_pw", dbname="postgres",
                               sslmode="disable") as pubsub:
        assert one(pubsub.conn, "SELECT current_user") == "md5_user"


def test_environment_fills_the_rest(pg: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    need_roles(pg)
    env = {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(pg.port),
        "PGUSER": "scram_user",
        "PGPASSWORD": "scram_pw",
        "PGDATABASE": "pubsub",
        "PGSSLMODE": "disable",
        "PGAPPNAME": "from-environment",
        "PGCONNECT_TIMEOUT": "7",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with connect_raw() as conn:
        assert conn.params.connect_timeout == 7
        rows = conn.execute(f"SELECT current_user, current_database(), ({SSL_IN_USE})")
        assert rows == [("scram_user", "pubsub", "f")]
        assert conn.execute(SESSION_SQL) == [("UTF8", "from-environment")]
        assert_hidden("scram_pw", conn, conn.params)


def test_string_and_keywords_win_over_the_environment(
    pg: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_roles(pg)
    for name, value in {"PGHOST": "192.0.2.1", "PGPORT": "1", "PGUSER": "nobody",
                        "PGPASSWORD": "nothing", "PGDATABASE": "nodb",
                        "PGSSLMODE": "verify-full", "PGAPPNAME": "env"}.items():
        monkeypatch.setenv(name, value)
    dsn = f"host=127.0.0.1 port={pg.port} user=md5_user password=md5_pw"
    with connect_raw(dsn, dbname="pubsub", sslmode="disable", application_name="kw") as conn:
        rows = conn.execute("SELECT current_user, current_database()")
        assert rows == [("md5_user", "pubsub")]
        assert conn.execute(SESSION_SQL) == [("UTF8", "kw")]


def test_pgsslmode_from_the_environment(pg: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    need_roles(pg)
    need_tls(pg)
    monkeypatch.setenv("PGSSLMODE", "require")
    with connect_raw(**pg.dsn_kwargs("trust_user")) as conn:
        assert ssl_in_use(conn) == "t"
    monkeypatch.setenv("PGSSLMODE", "disable")
    with connect_raw(**pg.dsn_kwargs("trust_user")) as conn:
        assert ssl_in_use(conn) == "f"


@contextlib.contextmanager
def listener() -> Iterator[Tuple[socket.socket, int]]:
    """A TCP socket listening on 127.0.0.1 that never accepts and never answers (it closes
    after TIMEOUT_GUARD seconds, which resets the connections waiting on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        hang_up = threading.Timer(TIMEOUT_GUARD, sock.close)
        hang_up.start()
        try:
            yield sock, sock.getsockname()[1]
        finally:
            hang_up.cancel()


def assert_nothing_accepted(sock: socket.socket) -> None:
    """No connection reached the listener (a finished connect() is queued at once)."""
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.accept()


@pytest.mark.parametrize(
    "make_call",
    [
        pytest.param(lambda port: ((f"host=127.0.0.1 port={port} user=u bogus_option=1",), {}),
                     id="key-value"),
        pytest.param(lambda port: ((f"postgresql://u@127.0.0.1:{port}/db?bogus_option=1",), {}),
                     id="uri"),
        pytest.param(lambda port: ((), dict(host="127.0.0.1", port=port, user="u",
                                            bogus_option="1")), id="keyword"),
    ],
)
def test_unknown_option_is_named_before_any_network_traffic(make_call: Any) -> None:
    with listener() as (sock, port):
        args, kwargs = make_call(port)
        with pytest.raises(ProgrammingError) as excinfo:
            connect_raw(*args, **kwargs)
        assert "bogus_option" in message_of(excinfo)
        assert_nothing_accepted(sock)


# -- connect_timeout --------------------------------------------------------------


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer", "require"])
def test_connect_timeout_bounds_a_server_that_never_answers(sslmode: str) -> None:
    with listener() as (_, port):
        start = time.monotonic()
        with pytest.raises(OperationalError) as excinfo:
            connect_raw(host="127.0.0.1", port=port, user="u", password="pw",
                        sslmode=sslmode, connect_timeout=1)
        elapsed = time.monotonic() - start
    assert "timeout" in message_of(excinfo)
    assert_on_time(elapsed, CONNECT_TIMEOUT_DUE, "connect_timeout")


@pytest.mark.parametrize("where", ["dsn", "env", "uri"])
def test_connect_timeout_from_string_or_environment(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with listener() as (_, port):
        if where == "env":
            monkeypatch.setenv("PGCONNECT_TIMEOUT", "1")
            dsn = f"host=127.0.0.1 port={port} user=u"
        elif where == "uri":
            dsn = f"postgresql://u@127.0.0.1:{port}/db?connect_timeout=1"
        else:
            dsn = f"host=127.0.0.1 port={port} user=u connect_timeout=1"
        start = time.monotonic()
        with pytest.raises(OperationalError, match="timeout"):
            connect_raw(dsn)
        assert_on_time(time.monotonic() - start, CONNECT_TIMEOUT_DUE, "connect_timeout")


@pytest.mark.parametrize("sslmode", ["prefer", "require"])
def test_connect_timeout_bounds_a_tls_handshake_that_never_ends(sslmode: str) -> None:
    seen: List[bytes] = []

    def script(conn: FakeConn) -> None:
        length, code = struct.unpack("!ii", conn.recv_exact(8))
        assert (length, code) == (8, SSL_REQUEST)
        conn.send(b"S")
        seen.append(conn.read_until_eof())  # the ClientHello, never answered

    with FakeBackend(script, timeout=TIMEOUT_GUARD) as srv:
        start = time.monotonic()
        with pytest.raises(OperationalError) as excinfo:
            connect_raw(host=srv.host, port=srv.port, user="u", sslmode=sslmode,
                        connect_timeout=1)
        elapsed = time.monotonic() - start
    assert re.search(r"time ?out|timed out", message_of(excinfo)), message_of(excinfo)
    assert_on_time(elapsed, CONNECT_TIMEOUT_DUE, "connect_timeout")
    assert seen and seen[0][:1] == b"\x16"  # a TLS handshake record was started


def test_connect_timeout_bounds_authentication_that_never_ends() -> None:
    def script(conn: FakeConn) -> None:
        conn.read_startup()
        conn.auth_request(3)  # cleartext password, then silence
        conn.read_until_eof()

    with FakeBackend(script, timeout=TIMEOUT_GUARD) as srv:
        start = time.monotonic()
        with pytest.raises(OperationalError, match="timeout"):
            connect_raw(host=srv.host, port=srv.port, user="u", password="pw",
                        sslmode="disable", connect_timeout=1)
        assert_on_time(time.monotonic() - start, CONNECT_TIMEOUT_DUE, "connect_timeout")


def test_connect_timeout_is_a_deadline_not_a_per_read_limit() -> None:
    """A server that keeps sending ParameterStatus but never ReadyForQuery."""
    ticks = threading.Event()  # never set: its wait() only paces the server

    def script(conn: FakeConn) -> None:
        conn.read_startup()
        conn.auth_ok()
        try:
            for _ in range(int(TIMEOUT_GUARD / 0.25)):
                conn.parameter_status("application_name", "still starting")
                ticks.wait(0.25)
        except OSError:
            return  # the client gave up and closed

    with FakeBackend(script, timeout=TIMEOUT_GUARD) as srv:
        start = time.monotonic()
        with pytest.raises(OperationalError, match="timeout"):
            connect_raw(host=srv.host, port=srv.port, user="u", sslmode="disable",
                        connect_timeout=1)
        assert_on_time(time.monotonic() - start, CONNECT_TIMEOUT_DUE, "connect_timeout")


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer"])
def test_refused_port_names_host_and_port(sslmode: str) -> None:
    sock, port = _refused_port()
    with sock, pytest.raises(OperationalError) as excinfo:
        connect_raw(host="127.0.0.1", port=port, user="u", sslmode=sslmode, connect_timeout=5)
    text = message_of(excinfo)
    assert '"127.0.0.1"' in text
    assert f"port {port}" in text
    assert "refused" in text.lower()


# -- close ------------------------------------------------------------------------


def test_close_sends_terminate_before_closing() -> None:
    received: List[Tuple[bytes, bytes]] = []

    def script(conn: FakeConn) -> None:
        conn.handshake()
        assert conn.read_query() == "SELECT 1"
        conn.send_message(b"C", b"SELECT 0\0")
        conn.ready()
        received.extend(split_messages(conn.read_until_eof()))

    with FakeBackend(script) as srv:
        conn = connect_raw(host=srv.host, port=srv.port, user="u", sslmode="disable",
                           connect_timeout=5)
        assert conn.execute("SELECT 1") == []
        conn.close()
        conn.close()  # a second close sends nothing more
        assert conn.closed == 1
    assert received == [(b"X", b"")]


@pytest.mark.parametrize("how", ["close", "with", "pubsub"])
def test_every_way_of_closing_sends_terminate_once(how: str) -> None:
    received: List[bytes] = []

    def script(conn: FakeConn) -> None:
        conn.handshake()
        received.append(conn.read_until_eof())

    with FakeBackend(script) as srv:
        kwargs: Any = dict(host=srv.host, port=srv.port, user="u", sslmode="disable",
                           connect_timeout=5)
        if how == "close":
            connect_raw(**kwargs).close()
        elif how == "with":
            with connect_raw(**kwargs):
                pass
        else:
            with pgwire_pubsub.connect(**kwargs) as pubsub:
                assert pubsub.conn.closed == 0
    assert received == [b"X\0\0\0\x04"]


def test_closed_connection_leaves_the_server(pg: Server, wait_for: Any) -> None:
    need_roles(pg)
    conn = connect_raw(**pg.dsn_kwargs("trust_user", application_name="pgwire-closing"))
    pid = conn.get_backend_pid()
    assert pid > 0
    conn.close()
    sql = f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
    wait_for(lambda: pg.psql(sql) == "0\n", message=f"backend {pid} to exit")


def test_direct_tls_against_an_older_server_fails_clearly(pg: Server) -> None:
    """PostgreSQL 15 does not speak direct TLS (17 added it); the default negotiation works."""
    need_roles(pg)
    need_tls(pg)
    version = connect_raw(**pg.dsn_kwargs("postgres"))
    try:
        if version.server_version >= 170000:
            pytest.skip("the server speaks direct TLS")
    finally:
        version.close()
    with pytest.raises(OperationalError, match=r"sslnegotiation=direct.*PostgreSQL 17"):
        connect_raw(**pg.dsn_kwargs("scram_user", sslmode="require", sslnegotiation="direct",
                                    connect_timeout=10))
    with connect_raw(**pg.dsn_kwargs("scram_user", sslmode="require",
                                     sslnegotiation="postgres")) as conn:
        assert conn.uses_tls
