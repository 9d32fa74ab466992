"""Unit tests for connection string parsing and parameter resolution."""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
from typing import Dict, Iterator
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgwire_pubsub import conninfo
from pgwire_pubsub.conninfo import SSLMODES, ConnParams, make_params, parse_dsn
from pgwire_pubsub.errors import NotSupportedError, OperationalError, ProgrammingError

ENV_VARS = {
    "PGHOST": "envhost",
    "PGPORT": "6000",
    "PGUSER": "envuser",
    "PGPASSWORD": "envpass",
    "PGDATABASE": "envdb",
    "PGSSLMODE": "require",
    "PGSSLROOTCERT": "/env/root.crt",
    "PGAPPNAME": "envapp",
    "PGCONNECT_TIMEOUT": "7",
    "PGOPTIONS": "-c search_path=env",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No PG* variable from the outer environment, and a known OS user."""
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(getpass, "getuser", lambda: "osuser")
    yield


def set_env(monkeypatch: pytest.MonkeyPatch, values: Dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


# -- key=value strings ------------------------------------------------------


def test_keyword_value_basic() -> None:
    assert parse_dsn("host=localhost port=5433 dbname=app user=bob") == {
        "host": "localhost",
        "port": "5433",
        "dbname": "app",
        "user": "bob",
    }


def test_empty_string_has_no_keywords() -> None:
    assert parse_dsn("") == {}
    assert parse_dsn(" \t\n ") == {}


def test_whitespace_around_equals_and_between_pairs() -> None:
    assert parse_dsn("  host =\tlocalhost\n\nport\t= 5433  ") == {
        "host": "localhost",
        "port": "5433",
    }


def test_quoted_value_keeps_spaces_and_equals() -> None:
    assert parse_dsn("options='-c a=b  -c c=d' user=x") == {
        "options": "-c a=b  -c c=d",
        "user": "x",
    }


def test_quoted_value_escapes() -> None:
    assert parse_dsn(r"password='it\'s a \\ test'") == {"password": "it's a \\ test"}


def test_quoted_value_escape_of_ordinary_char_keeps_the_char() -> None:
    assert parse_dsn(r"password='a\bc'") == {"password": "abc"}


def test_bare_value_backslash_escapes_next_char() -> None:
    assert parse_dsn(r"password=a\ b\\c\'d user=x") == {"password": "a b\\c'd", "user": "x"}


def test_bare_value_may_contain_quotes_and_equals() -> None:
    assert parse_dsn("password=a'b=c") == {"password": "a'b=c"}


def test_next_pair_may_follow_closing_quote_directly() -> None:
    assert parse_dsn("host='h'port=1") == {"host": "h", "port": "1"}


def test_empty_values() -> None:
    assert parse_dsn("password=''  host='' user=") == {"password": "", "host": "", "user": ""}


def test_value_starts_after_spaces_following_equals() -> None:
    # As in libpq, "user= dbname=x" gives user the value "dbname=x".
    assert parse_dsn("user= dbname=x") == {"user": "dbname=x"}


def test_last_duplicate_wins() -> None:
    assert parse_dsn("host=a host=b") == {"host": "b"}


def test_missing_equals_names_the_keyword() -> None:
    with pytest.raises(ProgrammingError, match='missing "=" after "localhost"'):
        parse_dsn("localhost")
    with pytest.raises(ProgrammingError, match='missing "=" after "host"'):
        parse_dsn("host localhost")


def test_unterminated_quote() -> None:
    with pytest.raises(ProgrammingError, match="unterminated quoted string"):
        parse_dsn("password='abc")


def test_backslash_before_end_of_quoted_value_is_unterminated() -> None:
    with pytest.raises(ProgrammingError, match="unterminated quoted string"):
        parse_dsn("password='abc\\")


def test_unknown_keyword_is_named() -> None:
    with pytest.raises(ProgrammingError, match='invalid connection option "foo"'):
        parse_dsn("host=a foo=1")


def test_database_keyword_is_not_accepted_in_a_string() -> None:
    # libpq (and so psycopg2.connect("database=x")) reject it; only the kwarg is an alias.
    with pytest.raises(ProgrammingError, match='invalid connection option "database"'):
        parse_dsn("database=x")


def test_errors_are_invalid_dsn_programming_errors() -> None:
    with pytest.raises(ProgrammingError, match=r"^invalid dsn: "):
        parse_dsn("nonsense")


def test_nul_character_is_rejected() -> None:
    with pytest.raises(ProgrammingError, match="NUL"):
        parse_dsn("host=a\0b")


def quote_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


safe_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"))
keyword_dicts = st.dictionaries(st.sampled_from(sorted(conninfo._KNOWN)), safe_text)


@given(values=keyword_dicts, separator=st.sampled_from([" ", "\t", "\n", " \r\n  "]))
def test_quoted_key_value_round_trip(values: Dict[str, str], separator: str) -> None:
    dsn = separator.join(f"{key}={quote_value(value)}" for key, value in values.items())
    assert parse_dsn(separator + dsn + separator) == values


@given(values=st.dictionaries(st.sampled_from(sorted(conninfo._KNOWN)), safe_text.filter(bool)))
def test_bare_escaped_key_value_round_trip(values: Dict[str, str]) -> None:
    def escape(value: str) -> str:
        return "".join("\\" + c if c in " \t\n\r\f\v\\'" else c for c in value)

    dsn = " ".join(f"{key}={escape(value)}" for key, value in values.items())
    assert parse_dsn(dsn) == values


# -- URIs -------------------------------------------------------------------


def test_full_uri() -> None:
    assert parse_dsn("postgresql://bob:secret@db.example.com:5433/app?application_name=x") == {
        "user": "bob",
        "password": "secret",
        "host": "db.example.com",
        "port": "5433",
        "dbname": "app",
        "application_name": "x",
    }


def test_short_scheme() -> None:
    assert parse_dsn("postgres://h/d") == {"host": "h", "dbname": "d"}


def test_other_scheme_is_not_a_uri() -> None:
    with pytest.raises(ProgrammingError, match='missing "="'):
        parse_dsn("mysql://h/d")


def test_uri_with_nothing_after_the_scheme() -> None:
    assert parse_dsn("postgresql://") == {}


def test_uri_empty_parts_stay_unset() -> None:
    assert parse_dsn("postgresql:///app") == {"dbname": "app"}
    assert parse_dsn("postgresql://h/") == {"host": "h"}
    assert parse_dsn("postgresql://:5433") == {"port": "5433"}
    assert parse_dsn("postgresql://@h") == {"host": "h"}
    assert parse_dsn("postgresql://bob:@h") == {"user": "bob", "host": "h"}


def test_uri_user_without_password() -> None:
    assert parse_dsn("postgresql://bob@h") == {"user": "bob", "host": "h"}


def test_uri_password_may_contain_colons() -> None:
    assert parse_dsn("postgresql://bob:a:b@h")["password"] == "a:b"


def test_uri_percent_decoding_everywhere() -> None:
    assert parse_dsn("postgresql://b%40b:p%3As%2Fs%20w@h%2Dx/my%20db?options=-c%20a%3Db") == {
        "user": "b@b",
        "password": "p:s/s w",
        "host": "h-x",
        "dbname": "my db",
        "options": "-c a=b",
    }


def test_uri_percent_decoding_is_utf8_and_case_insensitive() -> None:
    assert parse_dsn("postgresql:///caf%C3%a9")["dbname"] == "café"


def test_uri_ipv6_host() -> None:
    assert parse_dsn("postgresql://[::1]:5433/db") == {
        "host": "::1",
        "port": "5433",
        "dbname": "db",
    }
    assert parse_dsn("postgresql://[2001:db8::7]") == {"host": "2001:db8::7"}
    assert parse_dsn("postgresql://[::1]?sslmode=disable") == {"host": "::1", "sslmode": "disable"}


def test_uri_unix_socket_directory_as_host() -> None:
    assert parse_dsn("postgresql://%2Fvar%2Frun%2Fpostgresql/db") == {
        "host": "/var/run/postgresql",
        "dbname": "db",
    }


def test_uri_socket_directory_as_query_parameter() -> None:
    assert parse_dsn("postgresql:///db?host=/tmp/sock&port=5555") == {
        "dbname": "db",
        "host": "/tmp/sock",
        "port": "5555",
    }


def test_uri_several_hosts() -> None:
    assert parse_dsn("postgresql://h1:1,h2:2/db") == {
        "host": "h1,h2",
        "port": "1,2",
        "dbname": "db",
    }
    assert parse_dsn("postgresql://h1,[::1]:2") == {"host": "h1,::1", "port": ",2"}


def test_uri_query_parameters() -> None:
    assert parse_dsn("postgresql://h?sslmode=verify-full&sslrootcert=%2Fca.pem&") == {
        "host": "h",
        "sslmode": "verify-full",
        "sslrootcert": "/ca.pem",
    }


def test_uri_ssl_true_means_sslmode_require() -> None:
    assert parse_dsn("postgresql://h?ssl=true") == {"host": "h", "sslmode": "require"}


def test_uri_ssl_other_than_true_is_an_unknown_option() -> None:
    with pytest.raises(ProgrammingError, match='invalid connection option "ssl"'):
        parse_dsn("postgresql://h?ssl=false")


def test_uri_query_overrides_earlier_parts() -> None:
    assert parse_dsn("postgresql://h/a?dbname=b")["dbname"] == "b"


def test_uri_unknown_query_parameter_is_named() -> None:
    with pytest.raises(ProgrammingError, match='invalid connection option "bogus"'):
        parse_dsn("postgresql://h?bogus=1")


def test_uri_query_parameter_without_equals() -> None:
    with pytest.raises(ProgrammingError, match=r'missing key/value separator "=".*"sslmode"'):
        parse_dsn("postgresql://h?sslmode")
    with pytest.raises(ProgrammingError, match="missing key/value separator"):
        parse_dsn("postgresql://h?port=1&&user=u")


def test_uri_query_parameter_with_two_equals() -> None:
    with pytest.raises(ProgrammingError, match=r'extra key/value separator "=".*"options"'):
        parse_dsn("postgresql://h?options=a=b")


@pytest.mark.parametrize(
    ("uri", "token"),
    [
        ("postgresql://h/db%zz", "%zz"),
        ("postgresql://h/db%4", "%4"),
        ("postgresql://h/db%", "%"),
        ("postgresql://us%g1er@h", "%g1"),
        ("postgresql://h?application_name=%x1", "%x1"),
    ],
)
def test_uri_bad_percent_escape_names_the_token(uri: str, token: str) -> None:
    with pytest.raises(
        ProgrammingError, match=re.escape(f'invalid percent-encoded token: "{token}"')
    ):
        parse_dsn(uri)


def test_uri_percent_00_is_forbidden() -> None:
    with pytest.raises(ProgrammingError, match="%00"):
        parse_dsn("postgresql://h/a%00b")


def test_uri_invalid_utf8_is_rejected() -> None:
    with pytest.raises(ProgrammingError, match="UTF-8"):
        parse_dsn("postgresql://h/%ff")


def test_uri_decoding_error_does_not_echo_the_password() -> None:
    with pytest.raises(ProgrammingError) as info:
        parse_dsn("postgresql://bob:sup3rsecret%00@h")
    assert "sup3rsecret" not in str(info.value)


def test_uri_ipv6_errors() -> None:
    with pytest.raises(ProgrammingError, match=r'missing "\]"'):
        parse_dsn("postgresql://[::1/db")
    with pytest.raises(ProgrammingError, match="may not be empty"):
        parse_dsn("postgresql://[]/db")
    with pytest.raises(ProgrammingError, match='unexpected character "x"'):
        parse_dsn("postgresql://[::1]x/db")


@given(values=keyword_dicts)
def test_uri_query_round_trip(values: Dict[str, str]) -> None:
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in values.items())
    assert parse_dsn("postgresql://?" + query) == values


# -- resolution -------------------------------------------------------------


@pytest.fixture
def socket_dir_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os.path, "isdir", lambda path: path == "/var/run/postgresql")


def test_defaults(socket_dir_exists: None) -> None:
    assert make_params() == ConnParams(
        host="/var/run/postgresql",
        port=5432,
        user="osuser",
        dbname="osuser",
        password=None,
        connect_timeout=None,
        application_name=None,
        options=None,
        sslmode="prefer",
        sslrootcert=None,
        hostaddr=None,
    )


def test_default_socket_dir_falls_back_to_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os.path, "isdir", lambda path: False)
    params = make_params()
    assert params.host == "/tmp"
    assert params.uses_unix_socket
    assert params.unix_socket_path == "/tmp/.s.PGSQL.5432"


def test_default_dbname_is_the_resolved_user() -> None:
    assert make_params(user="carol").dbname == "carol"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, ENV_VARS)
    params = make_params()
    assert params == ConnParams(
        host="envhost",
        port=6000,
        user="envuser",
        dbname="envdb",
        password="envpass",
        connect_timeout=7.0,
        application_name="envapp",
        options="-c search_path=env",
        sslmode="require",
        sslrootcert="/env/root.crt",
    )


def test_dsn_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, ENV_VARS)
    params = make_params("host=dsnhost dbname=dsndb password=dsnpass")
    assert (params.host, params.dbname, params.password) == ("dsnhost", "dsndb", "dsnpass")
    assert params.user == "envuser"


def test_kwargs_beat_dsn_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, ENV_VARS)
    params = make_params("postgresql://dsnuser@dsnhost:5000/dsndb", host="kwhost", port=5001)
    assert (params.host, params.port, params.user, params.dbname) == (
        "kwhost",
        5001,
        "dsnuser",
        "dsndb",
    )


def test_empty_value_uses_the_default_not_the_environment(
    monkeypatch: pytest.MonkeyPatch, socket_dir_exists: None
) -> None:
    # libpq only consults the environment for keywords not given at all.
    set_env(monkeypatch, ENV_VARS)
    params = make_params("host='' port='' password=''")
    assert (params.host, params.port, params.password) == ("/var/run/postgresql", 5432, None)


def test_empty_environment_variable_uses_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPORT", "")
    monkeypatch.setenv("PGUSER", "")
    params = make_params()
    assert (params.port, params.user) == (5432, "osuser")


def test_database_is_an_alias_of_dbname() -> None:
    assert make_params(database="aliased").dbname == "aliased"
    assert make_params("dbname=fromdsn", database="aliased").dbname == "aliased"


def test_database_and_dbname_together_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="database"):
        make_params(database="a", dbname="b")


def test_none_kwargs_are_ignored() -> None:
    params = make_params("host=dsnhost", host=None, password=None, database=None, nonsense=None)
    assert params.host == "dsnhost"
    assert params.password is None


def test_int_kwargs_are_accepted() -> None:
    params = make_params(port=5433, connect_timeout=3)
    assert (params.port, params.connect_timeout) == (5433, 3.0)


def test_unknown_kwarg_is_named() -> None:
    with pytest.raises(ProgrammingError, match='invalid connection option "sslcompression2"'):
        make_params(sslcompression2="1")


def test_unknown_keyword_in_dsn_fails_make_params() -> None:
    with pytest.raises(ProgrammingError, match='invalid connection option "foo"'):
        make_params("foo=bar")


def test_nul_in_kwarg_is_rejected() -> None:
    with pytest.raises(ProgrammingError, match="NUL"):
        make_params(password="a\0b")


@pytest.mark.parametrize("mode", SSLMODES)
def test_every_sslmode_is_accepted(mode: str) -> None:
    assert make_params(sslmode=mode).sslmode == mode


@pytest.mark.parametrize("source", ["kwarg", "dsn", "env"])
def test_invalid_sslmode(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    if source == "env":
        monkeypatch.setenv("PGSSLMODE", "bogus")
    expected = (
        'invalid sslmode value: "bogus"; expected one of '
        "disable, allow, prefer, require, verify-ca, verify-full"
    )
    with pytest.raises(ProgrammingError, match=expected):
        if source == "kwarg":
            make_params(sslmode="bogus")
        elif source == "dsn":
            make_params("sslmode=bogus")
        else:
            make_params()


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1", "54x", "5.4", "5_432"])
def test_invalid_port(port: str) -> None:
    with pytest.raises(ProgrammingError, match=re.escape(f'invalid port number: "{port}"')):
        make_params(port=port)


@pytest.mark.parametrize(("text", "port"), [("1", 1), ("65535", 65535), (" 5433 ", 5433)])
def test_valid_port(text: str, port: int) -> None:
    assert make_params(port=text).port == port


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 10.0), (" 5 ", 5.0), ("2", 2.0), ("1", 2.0), ("0", None), ("-3", None)],
)
def test_connect_timeout(text: str, seconds: object) -> None:
    assert make_params(connect_timeout=text).connect_timeout == seconds


def test_connect_timeout_unset_means_no_limit() -> None:
    assert make_params().connect_timeout is None


@pytest.mark.parametrize("text", ["abc", "1.5", "3s", "99999999999"])
def test_invalid_connect_timeout(text: str) -> None:
    with pytest.raises(
        ProgrammingError, match=re.escape(f'"{text}" for connection option "connect_timeout"')
    ):
        make_params(connect_timeout=text)


@pytest.mark.parametrize("encoding", ["UTF8", "utf8", "utf-8", "UTF-8"])
def test_client_encoding_utf8_is_accepted(encoding: str) -> None:
    assert make_params(client_encoding=encoding).startup_parameters()["client_encoding"] == "UTF8"


def test_other_client_encoding_is_rejected() -> None:
    with pytest.raises(ProgrammingError, match=r'"LATIN1".*always uses UTF8'):
        make_params("client_encoding=LATIN1")


def test_fallback_application_name() -> None:
    assert make_params(fallback_application_name="fb").application_name == "fb"
    both = make_params(application_name="app", fallback_application_name="fb")
    assert both.application_name == "app"


def test_fallback_application_name_loses_to_pgappname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGAPPNAME", "envapp")
    assert make_params(fallback_application_name="fb").application_name == "envapp"


@pytest.mark.parametrize(
    "kwargs",
    [{"host": "a,b"}, {"port": "1,2"}, {"hostaddr": "10.0.0.1,10.0.0.2"}],
)
def test_several_hosts_are_not_supported(kwargs: Dict[str, str]) -> None:
    with pytest.raises(NotSupportedError, match="several hosts"):
        make_params(**kwargs)


def test_several_hosts_in_uri_are_not_supported() -> None:
    with pytest.raises(NotSupportedError):
        make_params("postgresql://h1:1,h2:2/db")


def test_hostaddr_is_dialled_instead_of_the_default_socket() -> None:
    params = make_params(hostaddr="127.0.0.1")
    assert (params.host, params.hostaddr) == ("127.0.0.1", "127.0.0.1")
    assert not params.uses_unix_socket


def test_hostaddr_with_socket_host_is_not_a_unix_socket() -> None:
    params = make_params(host="/tmp", hostaddr="::1")
    assert params.host == "/tmp"
    assert not params.uses_unix_socket


def test_invalid_hostaddr() -> None:
    with pytest.raises(
        ProgrammingError, match=re.escape('could not parse network address "db.local"')
    ):
        make_params(hostaddr="db.local")


def test_unknown_os_user_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> str:
        raise KeyError("getpwuid(): uid not found: 1234")

    monkeypatch.setattr(getpass, "getuser", fail)
    with pytest.raises(OperationalError, match="PGUSER"):
        make_params(host="h")
    assert make_params(user="given").user == "given"


# -- ConnParams -------------------------------------------------------------


def test_password_never_shown() -> None:
    params = make_params("password=hunter2 host=h")
    assert params.password == "hunter2"
    for text in (repr(params), str(params), f"{params}", repr([params])):
        assert "hunter2" not in text
        assert "password='***'" in text


def test_repr_without_password_says_none() -> None:
    text = repr(make_params(host="h", user="u"))
    assert "password=None" in text
    assert text.startswith("ConnParams(host='h', port=5432, user='u', dbname='u'")


def test_conn_params_are_frozen() -> None:
    params = make_params(host="h")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.host = "other"  # type: ignore[misc]


def test_startup_parameters_minimal() -> None:
    params = make_params(host="h", user="u", dbname="d")
    assert params.startup_parameters() == {"user": "u", "database": "d", "client_encoding": "UTF8"}


def test_startup_parameters_full() -> None:
    params = make_params(
        host="h", user="u", dbname="d", application_name="app", options="-c x=1", password="pw"
    )
    assert params.startup_parameters() == {
        "user": "u",
        "database": "d",
        "options": "-c x=1",
        "application_name": "app",
        "client_encoding": "UTF8",
    }


def test_unix_socket_host_keeps_sslmode() -> None:
    params = make_params(host="/run/pg", port=5433, sslmode="require")
    assert params.uses_unix_socket
    assert params.sslmode == "require"
    assert params.unix_socket_path == "/run/pg/.s.PGSQL.5433"


def test_tcp_host_is_not_a_unix_socket() -> None:
    assert not make_params(host="db.example.com").uses_unix_socket
    assert not make_params("postgresql://[::1]").uses_unix_socket


def test_empty_os_user_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "")
    with pytest.raises(OperationalError, match="PGUSER"):
        make_params(host="h")
