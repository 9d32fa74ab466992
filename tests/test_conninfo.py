"""Unit tests for connection string parsing and parameter resolution."""

from __future__ import annotations

import dataclasses
import getpass
import locale
import os
import re
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgwire_pubsub.conninfo import (
    SSLMODES,
    ConnParams,
    HostSpec,
    RequireAuth,
    make_params,
    parse_dsn,
)
from pgwire_pubsub.conninfo import _options as options
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
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No PG* variable from outside, an empty home and system directory, a known OS user."""
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path / "etc"))
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
keyword_dicts = st.dictionaries(st.sampled_from(sorted(options.KNOWN)), safe_text)


@given(values=keyword_dicts, separator=st.sampled_from([" ", "\t", "\n", " \r\n  "]))
def test_quoted_key_value_round_trip(values: Dict[str, str], separator: str) -> None:
    dsn = separator.join(f"{key}={quote_value(value)}" for key, value in values.items())
    assert parse_dsn(separator + dsn + separator) == values


@given(values=st.dictionaries(st.sampled_from(sorted(options.KNOWN)), safe_text.filter(bool)))
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
    with pytest.raises(ProgrammingError, match='"dbname" is not valid UTF-8'):
        parse_dsn("postgresql://h/%ff")
    with pytest.raises(ProgrammingError, match='invalid connection option "\ufffd"'):
        parse_dsn("postgresql://h?%ff=1")


def test_uri_requiressl_alias_replaces_any_value() -> None:
    # libpq decodes first, then replaces the value: even bytes that are not UTF-8.
    assert parse_dsn("postgresql://h?requiressl=%ff") == {"host": "h", "sslmode": "prefer"}


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


def test_uri_literal_spaces_around_a_part_are_trimmed() -> None:
    # libpq 18's conninfo_uri_decode skips literal spaces around each decoded part.
    assert parse_dsn("postgresql:// bob @h/ db ?application_name= x ") == {
        "user": "bob",
        "host": "h",
        "dbname": "db",
        "application_name": "x",
    }


def test_uri_literal_space_inside_a_part_is_an_error() -> None:
    with pytest.raises(ProgrammingError, match="unexpected spaces"):
        parse_dsn("postgresql://h/a b")
    with pytest.raises(ProgrammingError, match="unexpected spaces"):
        parse_dsn("postgresql://h?application_name=a b")
    assert parse_dsn("postgresql://h/a%20b")["dbname"] == "a b"


def test_uri_percent_encoded_comma_separates_hosts() -> None:
    assert parse_dsn("postgresql://a%2Cb")["host"] == "a,b"


@given(values=keyword_dicts)
def test_uri_query_round_trip(values: Dict[str, str]) -> None:
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in values.items())
    assert parse_dsn("postgresql://?" + query) == values


# -- resolution -------------------------------------------------------------


@pytest.fixture
def socket_dir_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os.path, "isdir", lambda path: path == "/var/run/postgresql")


def home() -> Path:
    return Path(os.environ["HOME"])


def write_service(text: str) -> None:
    (home() / ".pg_service.conf").write_text(text)


def test_defaults(socket_dir_exists: None) -> None:
    params = make_params()
    assert params == ConnParams(
        hosts=(HostSpec("/var/run/postgresql", None, 5432),),
        user="osuser",
        dbname="osuser",
        passfile=str(home() / ".pgpass"),
        host_passwords=(None,),
    )
    # The dataclass defaults above are libpq's: spelled out so that they cannot drift.
    assert (params.sslmode, params.sslnegotiation, params.channel_binding) == (
        "prefer",
        "postgres",
        "prefer",
    )
    assert (params.ssl_min_protocol_version, params.ssl_max_protocol_version) == ("TLSv1.2", None)
    assert (params.target_session_attrs, params.load_balance_hosts) == ("any", "disable")
    assert (params.keepalives, params.sslsni, params.require_auth) == (True, True, None)
    assert (params.password, params.options, params.settings, params.service) == (
        None,
        None,
        (),
        None,
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
        hosts=(HostSpec("envhost", None, 6000),),
        user="envuser",
        dbname="envdb",
        password="envpass",
        passfile=str(home() / ".pgpass"),
        connect_timeout=7.0,
        application_name="envapp",
        options="-c search_path=env",
        sslmode="require",
        sslrootcert="/env/root.crt",
    )


# Each environment variable with a value, the attribute it sets and what it becomes.
ENV_TABLE = [
    ("PGHOST", "envhost", "host", "envhost"),
    ("PGHOSTADDR", "127.0.0.2", "hostaddr", "127.0.0.2"),
    ("PGPORT", "6000", "port", 6000),
    ("PGDATABASE", "envdb", "dbname", "envdb"),
    ("PGUSER", "envuser", "user", "envuser"),
    ("PGPASSWORD", "envpass", "password", "envpass"),
    ("PGPASSFILE", "/some/pgpass", "passfile", "/some/pgpass"),
    ("PGSERVICE", "svc", "service", "svc"),
    ("PGOPTIONS", "-c x=1", "options", "-c x=1"),
    ("PGAPPNAME", "envapp", "application_name", "envapp"),
    ("PGCONNECT_TIMEOUT", "7", "connect_timeout", 7.0),
    ("PGSSLMODE", "verify-ca", "sslmode", "verify-ca"),
    ("PGREQUIRESSL", "1", "sslmode", "require"),
    ("PGSSLNEGOTIATION", "direct", "sslnegotiation", "direct"),
    ("PGSSLCERT", "/c.crt", "sslcert", "/c.crt"),
    ("PGSSLKEY", "/c.key", "sslkey", "/c.key"),
    ("PGSSLROOTCERT", "/root.crt", "sslrootcert", "/root.crt"),
    ("PGSSLCRL", "/c.crl", "sslcrl", "/c.crl"),
    ("PGSSLCRLDIR", "/crls", "sslcrldir", "/crls"),
    ("PGSSLSNI", "0", "sslsni", False),
    ("PGSSLMINPROTOCOLVERSION", "TLSv1.3", "ssl_min_protocol_version", "TLSv1.3"),
    ("PGSSLMAXPROTOCOLVERSION", "TLSv1.2", "ssl_max_protocol_version", "TLSv1.2"),
    ("PGCHANNELBINDING", "require", "channel_binding", "require"),
    ("PGREQUIREAUTH", "!md5,!password", "require_auth", RequireAuth(("md5", "password"), True)),
    ("PGTARGETSESSIONATTRS", "read-only", "target_session_attrs", "read-only"),
    ("PGLOADBALANCEHOSTS", "random", "load_balance_hosts", "random"),
    ("PGMINPROTOCOLVERSION", "3.2", "min_protocol_version", (3, 2)),
    ("PGMAXPROTOCOLVERSION", "latest", "max_protocol_version", (3, 2)),
    ("PGTZ", "Europe/Paris", "settings", (("timezone", "Europe/Paris"),)),
    ("PGDATESTYLE", "ISO, DMY", "settings", (("datestyle", "ISO, DMY"),)),
    ("PGGEQO", "off", "settings", (("geqo", "off"),)),
]
# Variables whose accepted values change nothing here, and what one of them refuses.
ENV_NOT_SUPPORTED = [
    ("PGGSSENCMODE", "require"),
    ("PGKRBSRVNAME", "postgres2"),
    ("PGGSSLIB", "gssapi"),
    ("PGGSSDELEGATION", "1"),
    ("PGREQUIREPEER", "postgres"),
    ("PGSSLCOMPRESSION", "1"),
    ("PGSSLCERTMODE", "require"),
]
ENV_ACCEPTED = [
    ("PGGSSENCMODE", "prefer"),
    ("PGGSSENCMODE", "disable"),
    ("PGGSSDELEGATION", "0"),
    ("PGSSLCOMPRESSION", "0"),
    ("PGSSLCERTMODE", "disable"),
    ("PGCLIENTENCODING", "UTF8"),
    ("PGSERVICEFILE", "/nowhere/pg_service.conf"),
    ("PGSYSCONFDIR", "/nowhere"),
]


@pytest.mark.parametrize(("var", "value", "attribute", "expected"), ENV_TABLE)
def test_each_environment_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, attribute: str, expected: object
) -> None:
    monkeypatch.setenv(var, value)
    if var == "PGSERVICE":
        write_service("[svc]\n")
    if var == "PGSSLNEGOTIATION":
        monkeypatch.setenv("PGSSLMODE", "require")  # direct needs it
    assert getattr(make_params(), attribute) == expected


@pytest.mark.parametrize(("var", "value"), ENV_NOT_SUPPORTED)
def test_environment_variable_not_supported(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(NotSupportedError, match=re.escape(value) + ".*not supported"):
        make_params()


@pytest.mark.parametrize(("var", "value"), ENV_ACCEPTED)
def test_environment_variable_accepted(
    monkeypatch: pytest.MonkeyPatch, socket_dir_exists: None, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    assert make_params().host == "/var/run/postgresql"


def test_every_environment_variable_of_the_table_is_tested() -> None:
    in_table = {option.envvar for option in options.OPTIONS if option.envvar}
    tested = {row[0] for row in ENV_TABLE + ENV_NOT_SUPPORTED + ENV_ACCEPTED}
    assert in_table <= tested


def test_pgrequiressl_loses_to_pgsslmode_and_ignores_other_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGREQUIRESSL", "1")
    monkeypatch.setenv("PGSSLMODE", "allow")
    assert make_params().sslmode == "allow"
    monkeypatch.delenv("PGSSLMODE")
    monkeypatch.setenv("PGREQUIRESSL", "0")
    assert make_params().sslmode == "prefer"
    monkeypatch.setenv("PGREQUIRESSL", "1")
    assert make_params("sslmode=disable").sslmode == "disable"


def test_environment_settings_go_into_the_startup_packet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGTZ", "UTC")
    monkeypatch.setenv("PGDATESTYLE", "ISO, MDY")
    monkeypatch.setenv("PGGEQO", "DEFAULT")  # "default" (any case) sends nothing
    params = make_params(user="u", dbname="d", application_name="a")
    assert list(params.startup_parameters().items()) == [
        ("user", "u"),
        ("database", "d"),
        ("application_name", "a"),
        ("client_encoding", "UTF8"),
        ("datestyle", "ISO, MDY"),
        ("timezone", "UTC"),
    ]


LAYERS = ("kwarg", "string", "service", "env")


@pytest.mark.parametrize(
    "present",
    [tuple(layer for i, layer in enumerate(LAYERS) if mask >> i & 1) for mask in range(16)],
)
def test_precedence_chain(monkeypatch: pytest.MonkeyPatch, present: Tuple[str, ...]) -> None:
    """keyword > string > service > environment > default, for every mix of layers."""
    value = {"kwarg": "verify-full", "string": "verify-ca", "service": "require", "env": "allow"}
    write_service(f"[svc]\nsslmode={value['service']}\n" if "service" in present else "[svc]\n")
    if "env" in present:
        monkeypatch.setenv("PGSSLMODE", value["env"])
    dsn = f"service=svc sslmode={value['string']}" if "string" in present else "service=svc"
    kwargs = {"sslmode": value["kwarg"]} if "kwarg" in present else {}
    expected = value[present[0]] if present else "prefer"
    assert make_params(dsn, **kwargs).sslmode == expected


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


@pytest.mark.parametrize(
    ("var", "keyword"),
    [
        ("PGSSLMODE", "sslmode"),
        ("PGCHANNELBINDING", "channel_binding"),
        ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ],
)
def test_empty_value_of_a_choice_is_invalid_as_in_libpq(
    monkeypatch: pytest.MonkeyPatch, var: str, keyword: str
) -> None:
    with pytest.raises(ProgrammingError, match=f'invalid {keyword} value: ""'):
        make_params(f"{keyword}=''")
    monkeypatch.setenv(var, "")
    with pytest.raises(ProgrammingError, match=f'invalid {keyword} value: ""'):
        make_params()


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


def test_deprecated_requiressl_keyword() -> None:
    assert parse_dsn("requiressl=1") == {"sslmode": "require"}
    assert parse_dsn("requiressl=0") == {"sslmode": "prefer"}
    assert parse_dsn("postgresql://h?requiressl=1") == {"host": "h", "sslmode": "require"}
    assert make_params(requiressl="1").sslmode == "require"


# -- values -----------------------------------------------------------------


@pytest.mark.parametrize("mode", SSLMODES)
def test_every_sslmode_is_accepted(mode: str) -> None:
    assert make_params(sslmode=mode).sslmode == mode


@pytest.mark.parametrize("source", ["kwarg", "dsn", "env", "service"])
def test_invalid_sslmode(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    if source == "env":
        monkeypatch.setenv("PGSSLMODE", "bogus")
    write_service("[svc]\nsslmode=bogus\n")
    expected = (
        'invalid sslmode value: "bogus"; expected one of '
        "disable, allow, prefer, require, verify-ca, verify-full"
    )
    with pytest.raises(ProgrammingError, match=expected):
        if source == "kwarg":
            make_params(sslmode="bogus")
        elif source == "dsn":
            make_params("sslmode=bogus")
        elif source == "service":
            make_params(service="svc")
        else:
            make_params()


# keyword=value that libpq refuses, and what the error must say (beyond naming both).
INVALID_VALUES = [
    ("sslnegotiation", "Direct", "expected one of postgres, direct"),
    ("channel_binding", "always", "expected one of disable, prefer, require"),
    ("target_session_attrs", "ANY", "any, read-write, read-only, primary, standby, prefer-standby"),
    ("load_balance_hosts", "round-robin", "expected one of disable, random"),
    ("gssencmode", "maybe", "expected one of disable, prefer, require"),
    ("sslcertmode", "sometimes", "expected one of disable, allow, require"),
    ("ssl_min_protocol_version", "TLSv1.4", "TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
    ("ssl_max_protocol_version", "SSLv3", "TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"),
    ("min_protocol_version", "3.1", "expected one of 3.0, 3.2, latest"),
    ("max_protocol_version", "", "expected one of 3.0, 3.2, latest"),
    ("require_auth", "kerberos", "password, md5, gss, sspi, scram-sha-256, oauth, none"),
    ("require_auth", "SCRAM-SHA-256", "password, md5"),
    ("replication", "maybe", "expected one of database, true, false"),
    ("keepalives", "yes", "invalid integer value"),
    ("keepalives_idle", "1.5", "invalid integer value"),
    ("keepalives_interval", "", "invalid integer value"),
    ("keepalives_count", "2147483648", "invalid integer value"),
    ("tcp_user_timeout", "10ms", "invalid integer value"),
    ("connect_timeout", "", "invalid integer value"),
    ("client_encoding", "LATIN1", "always uses UTF8"),
]


@pytest.mark.parametrize(("keyword", "value", "expected"), INVALID_VALUES)
def test_invalid_value_names_keyword_and_value(keyword: str, value: str, expected: str) -> None:
    with pytest.raises(ProgrammingError) as info:
        make_params(**{keyword: value})
    message = str(info.value)
    assert keyword in message
    assert f'"{value}"' in message
    assert expected in message


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_direct_sslnegotiation_needs_a_strong_sslmode(mode: str) -> None:
    with pytest.raises(
        ProgrammingError,
        match=f'weak sslmode "{mode}" may not be used with sslnegotiation=direct',
    ):
        make_params(sslnegotiation="direct", sslmode=mode)


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_direct_sslnegotiation_with_a_strong_sslmode(mode: str) -> None:
    params = make_params(sslnegotiation="direct", sslmode=mode)
    assert (params.sslnegotiation, params.sslmode) == ("direct", mode)


def test_direct_sslnegotiation_with_the_default_sslmode_is_weak() -> None:
    with pytest.raises(ProgrammingError, match='weak sslmode "prefer"'):
        make_params(sslnegotiation="direct")


def test_sslrootcert_system_makes_verify_full_the_default() -> None:
    params = make_params(sslrootcert="system")
    assert (params.sslrootcert, params.sslmode) == ("system", "verify-full")


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca"])
def test_sslrootcert_system_with_a_weaker_sslmode_is_an_error(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    with pytest.raises(
        ProgrammingError,
        match=f'weak sslmode "{mode}" may not be used with sslrootcert=system',
    ):
        make_params(sslrootcert="system", sslmode=mode)
    monkeypatch.setenv("PGSSLMODE", mode)  # an sslmode from the environment counts as given
    with pytest.raises(ProgrammingError, match=f'weak sslmode "{mode}"'):
        make_params(sslrootcert="system")


def test_pgrequiressl_counts_as_given_for_sslrootcert_system(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGREQUIRESSL", "1")
    with pytest.raises(ProgrammingError, match='weak sslmode "require"'):
        make_params(sslrootcert="system")


@pytest.mark.parametrize(
    ("low", "high"), [("TLSv1.3", "TLSv1.2"), ("TLSv1.1", "TLSv1"), ("tlsv1.2", "TLSV1.1")]
)
def test_tls_version_range_must_not_be_empty(low: str, high: str) -> None:
    with pytest.raises(ProgrammingError, match=r"ssl_min_protocol_version.*ssl_max_protocol"):
        make_params(ssl_min_protocol_version=low, ssl_max_protocol_version=high)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        ("TLSv1", "TLSv1", ("TLSv1", "TLSv1")),
        ("tlsv1.3", "TLSV1.3", ("TLSv1.3", "TLSv1.3")),
        ("", "", (None, None)),  # empty: no bound, as in libpq
        ("TLSv1.1", None, ("TLSv1.1", None)),
    ],
)
def test_tls_versions(
    low: str, high: Optional[str], expected: Tuple[Optional[str], Optional[str]]
) -> None:
    params = make_params(ssl_min_protocol_version=low, ssl_max_protocol_version=high)
    assert (params.ssl_min_protocol_version, params.ssl_max_protocol_version) == expected


def test_protocol_version_range() -> None:
    with pytest.raises(ProgrammingError, match='"min_protocol_version" is greater than'):
        make_params(min_protocol_version="latest", max_protocol_version="3.0")
    make_params(min_protocol_version="3.0", max_protocol_version="3.2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password", RequireAuth(("password",))),
        ("scram-sha-256,md5", RequireAuth(("scram-sha-256", "md5"))),
        ("!password,!md5", RequireAuth(("password", "md5"), negated=True)),
        ("none,scram-sha-256", RequireAuth(("none", "scram-sha-256"))),
        ("gss,sspi", RequireAuth(("gss", "sspi"))),
        ("", None),
    ],
)
def test_require_auth_is_parsed(text: str, expected: Optional[RequireAuth]) -> None:
    assert make_params(require_auth=text).require_auth == expected


def test_require_auth_allows() -> None:
    allow = RequireAuth(("scram-sha-256", "none"))
    assert allow.allows("scram-sha-256") and allow.allows("none")
    assert not allow.allows("md5") and not allow.allows("password")
    deny = RequireAuth(("password", "none"), negated=True)
    assert deny.allows("scram-sha-256") and deny.allows("md5")
    assert not deny.allows("password") and not deny.allows("none")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("password,!md5", 'negative require_auth method "!md5" cannot be mixed'),
        ("!password,md5", 'require_auth method "md5" cannot be mixed with negative methods'),
        ("md5,md5", 'require_auth method "md5" is specified more than once'),
        ("!none,!none", 'require_auth method "!none" is specified more than once'),
        ("password,", 'invalid require_auth value: ""'),
        ("!", 'invalid require_auth value: ""'),
    ],
)
def test_require_auth_errors(text: str, message: str) -> None:
    with pytest.raises(ProgrammingError, match=re.escape(message)):
        make_params(require_auth=text)


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False), ("", False)])
def test_sslsni_is_on_only_for_1_as_libpq_reads_it(value: str, expected: bool) -> None:
    assert make_params(sslsni=value).sslsni is expected


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("keepalives", "0", False),
        ("keepalives", " 5 ", True),
        ("keepalives_idle", "30", 30),
        ("keepalives_interval", "3", 3),
        ("keepalives_count", "+4", 4),
        ("tcp_user_timeout", "1500", 1500),
        ("tcp_user_timeout", "-3", 0),  # libpq sets a negative value as 0
    ],
)
def test_tcp_options(keyword: str, value: str, expected: object) -> None:
    assert getattr(make_params(**{keyword: value}), keyword) == expected


def test_tcp_user_timeout_is_not_read_with_keepalives_off() -> None:
    assert make_params(keepalives="0", tcp_user_timeout="x").tcp_user_timeout is None
    with pytest.raises(ProgrammingError, match='"x" for connection option "tcp_user_timeout"'):
        make_params(tcp_user_timeout="x")


@pytest.mark.parametrize("keyword", ["keepalives_idle", "keepalives_interval", "keepalives_count"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_keepalive_settings_below_1_are_refused_while_keepalives_are_on(
    keyword: str, value: str
) -> None:
    # libpq hands them to setsockopt(), which refuses them.
    with pytest.raises(ProgrammingError, match=f'invalid {keyword} value: "{value}"'):
        make_params(**{keyword: value})
    # With keepalives off, libpq does not read them at all.
    assert getattr(make_params(keepalives="0", **{keyword: value}), keyword) is None
    assert getattr(make_params(keepalives="0", **{keyword: "x"}), keyword) is None


@pytest.mark.parametrize(
    ("keyword", "values"),
    [
        ("channel_binding", ("disable", "prefer", "require")),
        ("target_session_attrs", options.TARGET_SESSION_ATTRS),
        ("load_balance_hosts", ("disable", "random")),
    ],
)
def test_accepted_choices_are_exposed(keyword: str, values: Tuple[str, ...]) -> None:
    for value in values:
        assert getattr(make_params(**{keyword: value}), keyword) == value


def test_ssl_files_are_exposed_and_the_key_password_hidden() -> None:
    params = make_params(
        sslcert="/c.crt", sslkey="/c.key", sslpassword="k3ypass", sslcrl="/c.crl", sslcrldir="/d"
    )
    assert (params.sslcert, params.sslkey, params.sslcrl, params.sslcrldir) == (
        "/c.crt",
        "/c.key",
        "/c.crl",
        "/d",
    )
    assert params.sslpassword == "k3ypass"
    assert "k3ypass" not in repr(params)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("gssencmode", "require"),
        ("krbsrvname", "postgres"),
        ("gsslib", "gssapi"),
        ("gssdelegation", "1"),
        ("requirepeer", "postgres"),
        ("replication", "true"),
        ("replication", "database"),
        ("replication", "on"),
        ("replication", "Y"),
        ("sslcompression", "1"),
        ("sslcertmode", "require"),
        ("oauth_issuer", "https://issuer.example"),
        ("oauth_client_id", "me"),
        ("oauth_scope", "openid"),
        ("sslkeylogfile", "/tmp/keys"),
    ],
)
def test_not_supported_names_keyword_and_value(keyword: str, value: str) -> None:
    with pytest.raises(NotSupportedError) as info:
        make_params(**{keyword: value})
    message = str(info.value)
    assert message.startswith(f'{keyword}="{value}" is not supported by pgwire_pubsub: ')


@pytest.mark.parametrize("keyword", ["scram_client_key", "scram_server_key", "oauth_client_secret"])
def test_not_supported_secret_is_not_shown(keyword: str) -> None:
    with pytest.raises(NotSupportedError, match=f"^{keyword} is not supported") as info:
        make_params(**{keyword: "s3cr3tvalue"})
    assert "s3cr3tvalue" not in str(info.value)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("gssencmode", "disable"),
        ("gssencmode", "prefer"),  # libpq's default: without GSSAPI it goes on without it
        ("gssdelegation", "0"),
        ("sslcompression", "0"),
        ("sslcertmode", "allow"),
        ("sslcertmode", "disable"),
        ("replication", "false"),
        ("replication", "off"),
        ("replication", "0"),
        ("replication", "n"),
        ("krbsrvname", ""),
        ("requirepeer", ""),
        ("min_protocol_version", "3.0"),
    ],
)
def test_values_that_change_nothing_are_accepted(keyword: str, value: str) -> None:
    make_params(**{keyword: value})


def test_not_supported_from_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    write_service("[svc]\ngssencmode=require\n")
    with pytest.raises(NotSupportedError, match="gssencmode"):
        make_params(service="svc")


@pytest.mark.parametrize(("text", "port"), [("1", 1), ("65535", 65535), (" 5433 ", 5433)])
def test_valid_port(text: str, port: int) -> None:
    assert make_params(port=text).port == port


@pytest.mark.parametrize("port", ["0", "65536", "-1", "2147483648"])
def test_port_out_of_range(port: str) -> None:
    message = (
        f'invalid port number: "{port}"'
        if port != "2147483648"
        else f'invalid integer value "{port}" for connection option "port"'
    )
    with pytest.raises(ProgrammingError, match=re.escape(message)):
        make_params(port=port)


@pytest.mark.parametrize("port", ["abc", "54x", "5.4", "5_432", "0x10"])
def test_port_not_an_integer(port: str) -> None:
    message = f'invalid integer value "{port}" for connection option "port"'
    with pytest.raises(ProgrammingError, match=re.escape(message)):
        make_params(port=port)


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


@pytest.mark.parametrize("encoding", ["UTF8", "utf8", "utf-8", "UTF-8", "unicode", "Utf_8"])
def test_client_encoding_utf8_is_accepted(encoding: str) -> None:
    assert make_params(client_encoding=encoding).startup_parameters()["client_encoding"] == "UTF8"


def test_other_client_encoding_is_rejected() -> None:
    with pytest.raises(ProgrammingError, match=r'"LATIN1".*always uses UTF8'):
        make_params("client_encoding=LATIN1")


def test_client_encoding_auto_follows_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locale, "nl_langinfo", lambda item: "UTF-8")
    make_params(client_encoding="auto")
    monkeypatch.setattr(locale, "nl_langinfo", lambda item: "ISO-8859-1")
    with pytest.raises(ProgrammingError, match='"auto"'):
        make_params(client_encoding="auto")


def test_pgclientencoding_other_than_utf8_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    assert make_params().startup_parameters()["client_encoding"] == "UTF8"
    write_service("[svc]\nclient_encoding=LATIN1\n")  # but not from a service
    with pytest.raises(ProgrammingError, match="LATIN1"):
        make_params(service="svc")


def test_fallback_application_name() -> None:
    assert make_params(fallback_application_name="fb").application_name == "fb"
    both = make_params(application_name="app", fallback_application_name="fb")
    assert both.application_name == "app"


def test_fallback_application_name_loses_to_pgappname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGAPPNAME", "envapp")
    assert make_params(fallback_application_name="fb").application_name == "envapp"


# -- several hosts ----------------------------------------------------------


def test_several_hosts_and_ports() -> None:
    params = make_params("host=a,b,/sock port=5432,5433,5434")
    assert params.hosts == (
        HostSpec("a", None, 5432),
        HostSpec("b", None, 5433),
        HostSpec("/sock", None, 5434),
    )
    assert [h.uses_unix_socket for h in params.hosts] == [False, False, True]
    # The single-host attributes are the first host's.
    assert (params.host, params.port, params.hostaddr, params.uses_unix_socket) == (
        "a",
        5432,
        None,
        False,
    )


def test_one_port_for_every_host() -> None:
    params = make_params(host="a,b,c", port="6000")
    assert [h.port for h in params.hosts] == [6000, 6000, 6000]


def test_empty_port_entry_is_the_default_port() -> None:
    assert [h.port for h in make_params(host="a,b", port="6000,").hosts] == [6000, 5432]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "a,b", "port": "1,2,3"}, "could not match 3 port numbers to 2 hosts"),
        ({"host": "a", "port": "1,2"}, "could not match 2 port numbers to 1 hosts"),
        ({"port": "1,"}, "could not match 2 port numbers to 1 hosts"),
        (
            {"host": "a,b", "hostaddr": "127.0.0.1"},
            "could not match 2 host names to 1 hostaddr values",
        ),
        (
            {"host": "a", "hostaddr": "127.0.0.1,127.0.0.2"},
            "could not match 1 host names to 2 hostaddr values",
        ),
    ],
)
def test_host_lists_must_match(kwargs: Dict[str, str], message: str) -> None:
    with pytest.raises(ProgrammingError, match=message):
        make_params(**kwargs)


def test_hostaddr_list_pairs_with_host_list() -> None:
    params = make_params(host="a,/sock", hostaddr="127.0.0.1,", port="1,2")
    assert params.hosts == (HostSpec("a", "127.0.0.1", 1), HostSpec("/sock", None, 2))
    assert params.hosts[1].unix_socket_path == "/sock/.s.PGSQL.2"


def test_hostaddr_list_alone() -> None:
    params = make_params(hostaddr="127.0.0.1,::1")
    assert params.hosts == (HostSpec("127.0.0.1", "127.0.0.1", 5432), HostSpec("::1", "::1", 5432))


def test_empty_host_entry_is_the_default_socket_dir(socket_dir_exists: None) -> None:
    params = make_params(host=",b")
    assert params.hosts[0] == HostSpec("/var/run/postgresql", None, 5432)
    assert params.hosts[0].uses_unix_socket


def test_several_hosts_in_a_uri() -> None:
    params = make_params("postgresql://h1:1,[::1]:2,h3/db")
    assert params.hosts == (
        HostSpec("h1", None, 1),
        HostSpec("::1", None, 2),
        HostSpec("h3", None, 5432),
    )


def test_bad_port_of_a_later_host_is_named() -> None:
    with pytest.raises(ProgrammingError, match='invalid port number: "70000"'):
        make_params(host="a,b", port="1,70000")


def test_bad_hostaddr_in_a_list_is_named() -> None:
    with pytest.raises(ProgrammingError, match=re.escape('network address "db.local"')):
        make_params(hostaddr="127.0.0.1,db.local")


def test_abstract_socket_host() -> None:
    host = make_params(host="@pgsock", port=5433).hosts[0]
    assert host.uses_unix_socket
    assert host.unix_socket_path == "\0pgsock/.s.PGSQL.5433"


def test_host_spec_is_frozen_and_hashable() -> None:
    host = HostSpec("h", None, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        host.port = 2  # type: ignore[misc]
    assert {host: 1}[HostSpec("h", None, 1)] == 1


def test_hostaddr_is_dialled_instead_of_the_default_socket() -> None:
    params = make_params(hostaddr="127.0.0.1")
    assert (params.host, params.hostaddr) == ("127.0.0.1", "127.0.0.1")
    assert not params.uses_unix_socket


def test_hostaddr_with_socket_host_is_not_a_unix_socket() -> None:
    params = make_params(host="/tmp", hostaddr="::1")
    assert params.host == "/tmp"
    assert not params.uses_unix_socket


@pytest.mark.parametrize("address", ["db.local", "::1%nope", " 127.0.0.1", "256.0.0.1"])
def test_invalid_hostaddr(address: str) -> None:
    with pytest.raises(
        ProgrammingError, match=re.escape(f'could not parse network address "{address}"')
    ):
        make_params(hostaddr=address)


def test_hostaddr_accepts_what_getaddrinfo_reads_numerically() -> None:
    assert make_params(hostaddr="127.1").hostaddr == "127.1"  # as libpq, via getaddrinfo


def test_unknown_os_user_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> str:
        raise KeyError("getpwuid(): uid not found: 1234")

    monkeypatch.setattr(getpass, "getuser", fail)
    with pytest.raises(OperationalError, match="PGUSER"):
        make_params(host="h")
    assert make_params(user="given").user == "given"


def test_password_for_uses_the_explicit_password_for_every_host() -> None:
    params = make_params(host="a,b", password="pw")
    assert [params.password_for(h) for h in params.hosts] == ["pw", "pw"]


def test_password_for_a_foreign_host_is_an_error() -> None:
    params = make_params(host="a")
    with pytest.raises(ValueError, match="not one of"):
        params.password_for(HostSpec("b"))


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
    assert text.startswith(
        "ConnParams(hosts=(HostSpec(host='h', hostaddr=None, port=5432),), user='u', dbname='u'"
    )


def test_conn_params_are_frozen() -> None:
    params = make_params(host="h")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.hosts = ()  # type: ignore[misc]


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
