"""Differential tests: this package's connection-string handling against libpq itself.

libpq comes from psycopg's binary wheel (the ``test`` extra; CPython only, so
this module is skipped where psycopg cannot be imported). Three comparisons:

1. ``parse_dsn`` against ``PQconninfoParse`` (``pq.Conninfo.parse``): the same
   keywords and values, or both refusing the string.
2. ``make_params`` against libpq's value checks: ``PQconnectdb`` of the same
   options plus ``hostaddr=127.0.0.1 port=1``, where nothing listens, so that
   libpq either refuses an option or gets to "connection refused".
3. The resolution order (string, service file, environment, defaults) against
   ``PQconninfo`` of a connection started to a Unix socket that does not exist.

Deliberate differences, filtered out where they would show:

- NOT_UTF8: percent-decoded URI bytes that are not UTF-8 are kept by libpq;
  ``parse_dsn`` refuses them, since its values are ``str``.
- NOT_SUPPORTED: a value libpq accepts but this client cannot honour raises
  ``NotSupportedError``; that counts as matching whatever libpq said.
- SERVER_CHECKED: ``replication`` and ``client_encoding`` are checked by the
  server in libpq's case; make_params checks them itself, refusing what the
  server would refuse (``replication``) or what this client cannot speak
  (an encoding other than UTF8).
- Keywords only one side knows (a libpq older or newer than this package's
  table) are left out of generated strings, and hand-written cases using
  them are skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pgwire_pubsub.conninfo import _options as options
from pgwire_pubsub.conninfo import _params as conninfo
from pgwire_pubsub.conninfo import make_params, parse_dsn
from pgwire_pubsub.errors import NotSupportedError, ProgrammingError

psycopg = pytest.importorskip("psycopg", reason="psycopg (libpq) installs on CPython only")
pq = psycopg.pq

LIBPQ_VERSION: int = pq.version()
LIBPQ_KEYWORDS = frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())
SHARED_KEYWORDS = sorted(options.KNOWN & LIBPQ_KEYWORDS)

NOT_UTF8 = "NOT_UTF8"
Parsed = Union[None, str, Dict[str, str]]


def libpq_parse(dsn: str) -> Parsed:
    """libpq's keywords for ``dsn``, None if it refuses it, NOT_UTF8 for non-UTF-8 values."""
    try:
        options = pq.Conninfo.parse(dsn.encode("utf-8"))
    except psycopg.OperationalError:
        return None
    try:
        return {o.keyword.decode(): o.val.decode("utf-8") for o in options if o.val is not None}
    except UnicodeDecodeError:
        return NOT_UTF8


def our_parse(dsn: str) -> Parsed:
    try:
        return parse_dsn(dsn)
    except ProgrammingError:
        return None


def assert_same_parse(dsn: str) -> None:
    theirs = libpq_parse(dsn)
    ours = our_parse(dsn)
    if theirs == NOT_UTF8:
        assert ours is None, f"{dsn!r}: see NOT_UTF8"
    else:
        assert ours == theirs, f"{dsn!r}: ours {ours!r}, libpq {theirs!r}"


# libpq 18 trims literal spaces around URI parts and refuses them inside.
URI_SPACES_CHECKED = libpq_parse("postgresql://h/a b") is None


def uses_unshared_keyword(dsn: str) -> bool:
    words = set(re.findall(r"[a-z_]+(?==)", dsn))
    return bool(words & (options.KNOWN ^ LIBPQ_KEYWORDS))


def test_libpq_is_recent_enough() -> None:
    # require_auth and load_balance_hosts arrived in libpq 16.
    assert LIBPQ_VERSION >= 160000, LIBPQ_VERSION
    assert {"require_auth", "load_balance_hosts"} <= LIBPQ_KEYWORDS


# -- 1. parsing --------------------------------------------------------------------

PARSE_CASES = [
    # key=value strings
    "",
    "   ",
    "host=localhost port=5432 dbname=app user=bob",
    "host = localhost",
    "host= localhost",
    "host =localhost",
    "\thost=a\nport=1\r\n",
    "host='a b'",
    "host='a\\'b'",
    "password='it\\'s \\\\ x'",
    "password='a\\bc'",
    "password=a\\ b",
    "password=a'b=c",
    "host='h'port=1",
    "host=''",
    "host=",
    "user= dbname=x",
    "host=a host=b",
    "host",
    "host localhost",
    "=x",
    "host='abc",
    "host='abc\\",
    "host=a\\",
    "foo=1",
    "host=a foo=1",
    "database=x",
    "requiressl=1",
    "requiressl=0 sslmode=require",
    "sslmode=require requiressl=1",
    "host=a,b,c port=1,2,3",
    "host=/tmp hostaddr=127.0.0.1",
    "application_name='café ☃'",
    "options='-c search_path=a,b'",
    "host=a\x0bport=1",
    "host=a\u00a0b",
    "host=a\u2003port=1",
    "service=x",
    "sslnegotiation=direct sslmode=require",
    "require_auth=!password,!md5 load_balance_hosts=random",
    "keepalives=0 keepalives_idle=10",
    "host=a port",
    "'host'=a",
    "host=%41",
    # URIs
    "postgresql://",
    "postgres://",
    "postgresql://bob:secret@db.example.com:5433/app?application_name=x",
    "postgresql://h/d",
    "postgresql:///app",
    "postgresql://h/",
    "postgresql://:5433",
    "postgresql://@h",
    "postgresql://bob:@h",
    "postgresql://bob:a:b@h",
    "postgresql://b%40b:p%3As%2Fs%20w@h%2Dx/my%20db?options=-c%20a%3Db",
    "postgresql:///caf%C3%a9",
    "postgresql://[::1]:5433/db",
    "postgresql://[2001:db8::7]",
    "postgresql://[::1]?sslmode=disable",
    "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
    "postgresql:///db?host=/tmp/sock&port=5555",
    "postgresql://h1:1,h2:2/db",
    "postgresql://h1,[::1]:2",
    "postgresql://h?sslmode=verify-full&sslrootcert=%2Fca.pem&",
    "postgresql://h?ssl=true",
    "postgresql://h?ssl=false",
    "postgresql://h?ssl=true&sslmode=disable",
    "postgresql://h/a?dbname=b",
    "postgresql://h?bogus=1",
    "postgresql://h?sslmode",
    "postgresql://h?port=1&&user=u",
    "postgresql://h?&",
    "postgresql://h?",
    "postgresql://h?=x",
    "postgresql://h?options=a=b",
    "postgresql://h/db%zz",
    "postgresql://h/db%4",
    "postgresql://h/db%",
    "postgresql://us%g1er@h",
    "postgresql://h/a%00b",
    "postgresql://h/%ff",
    "postgresql://[::1/db",
    "postgresql://[]/db",
    "postgresql://[::1]x/db",
    "postgresql://h#frag",
    "postgresql://h?application_name=%E2%98%83",
    "postgresql://a%2Cb",
    "postgresql://h:5432,:5433",
    "postgresql://u@h@x",
    "postgresql://h?requiressl=1",
    "postgresql://h?%20port=1",
    "postgresql://h?port%3D1=2",
    "postgres://h:abc/d",
    "postgresql://h/d?target_session_attrs=read-write&load_balance_hosts=random",
    "postgresql://user@/db",
    "postgresql://h?sslmode=require&sslmode=disable",
    "postgresql://%2Ftmp%2Fa,%2Ftmp%2Fb:5433/d",
    "postgresql:/h",
    "POSTGRESQL://h",
    " postgresql://h",
    "postgresql://h/ db ",
    "postgresql:// bob @h?application_name= x ",
    "postgresql://h/a b",
    "postgresql://h?options=-c x=1",
    "postgresql://h?application_name=a b",
    "postgresql://h/a%zz b",
]


@pytest.mark.parametrize("dsn", PARSE_CASES)
def test_parse_like_libpq(dsn: str) -> None:
    if uses_unshared_keyword(dsn):
        pytest.skip("a keyword only one side knows")
    if dsn.startswith("postgres") and " " in dsn and not URI_SPACES_CHECKED:
        pytest.skip("this libpq predates the checks of spaces in URIs")
    assert_same_parse(dsn)


def test_the_table_has_both_outcomes() -> None:
    outcomes = [libpq_parse(dsn) is None for dsn in PARSE_CASES]
    assert outcomes.count(True) >= 20 and outcomes.count(False) >= 40


# Characters that matter to one syntax or the other, and some that should not.
TRICKY = " \t\n'\\=%,:/@?&[]#é☃\u00a0"
values = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=12) | st.text(
    st.sampled_from(TRICKY + "ab01"), max_size=12
)
keys = st.sampled_from(SHARED_KEYWORDS) | st.sampled_from(
    ["", "bogus", "Host", "ssl", "requiressl"]
)


def quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def bare(value: str) -> str:
    return "".join("\\" + c if c in " \t\n\r\f\v\\" else c for c in value)


STYLES: List[Callable[[str], str]] = [quoted, bare, lambda value: value]


@st.composite
def keyword_value_strings(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        key, value = draw(keys), draw(values)
        style = draw(st.sampled_from(STYLES))
        equals = draw(st.sampled_from(["=", " = ", "=\t", "= "]))
        parts.append(f"{key}{equals}{style(value)}")
    separators = st.sampled_from([" ", "\t", "\n", "  ", "\r\n", ""])
    return draw(separators).join(parts) + draw(separators)


@st.composite
def uris(draw: st.DrawFn) -> str:
    piece = st.text(st.sampled_from("ab1é%2F0:@[],/ "), max_size=6)
    uri = draw(st.sampled_from(["postgresql://", "postgres://"]))
    if draw(st.booleans()):
        uri += draw(piece) + draw(st.sampled_from(["@", ":pw@", ":@"]))
    for index in range(draw(st.integers(1, 3))):
        host = draw(st.sampled_from(["", "h", "[::1]", "[", "%2Ftmp", "a%2Cb"]) | piece)
        uri += ("," if index else "") + host
        if draw(st.booleans()):
            uri += ":" + draw(st.text(st.sampled_from("0159x% "), max_size=5))
    if draw(st.booleans()):
        uri += "/" + draw(piece)
    if draw(st.booleans()):
        pairs = st.tuples(keys, st.text(st.sampled_from("ab%20=&é+ "), max_size=6))
        query = [f"{k}={v}" for k, v in draw(st.lists(pairs, max_size=3))]
        uri += "?" + "&".join(query) + draw(st.sampled_from(["", "&", "&x"]))
    return uri


NOISE = ["host", "port", "dbname", "=", "'", "\\", " ", "\t", "a", "é", ",", "%", "%4", "%41"]


@settings(max_examples=400, deadline=None)
@given(dsn=keyword_value_strings() | st.lists(st.sampled_from(NOISE)).map("".join))
def test_generated_keyword_value_strings_parse_like_libpq(dsn: str) -> None:
    assert_same_parse(dsn)


@settings(max_examples=400, deadline=None)
@given(
    dsn=uris()
    | st.builds(
        str.__add__,
        st.sampled_from(["postgresql://", "postgres://"]),
        st.text(st.sampled_from("ab1:/@?&=,[]%2F0 é#+"), max_size=25),
    )
)
def test_generated_uris_parse_like_libpq(dsn: str) -> None:
    assume(URI_SPACES_CHECKED or " " not in dsn)
    assert_same_parse(dsn)


# -- 2. value checks -----------------------------------------------------------------

# For each keyword: values libpq accepts and values it refuses, in the spellings
# that tell a real check from a lenient one. Nothing here makes libpq connect
# anywhere but 127.0.0.1 port 1, or look for a service file.
VALUE_POOL: Dict[str, Tuple[str, ...]] = {
    "sslmode": (*options.SSLMODES, "", "PREFER", "bogus"),
    "sslnegotiation": ("postgres", "direct", "", "Direct"),
    "channel_binding": ("disable", "prefer", "require", "", "Require"),
    "target_session_attrs": (*options.TARGET_SESSION_ATTRS, "", "ANY", "primary "),
    "load_balance_hosts": ("disable", "random", "", "Random"),
    "gssencmode": ("disable", "prefer", "require", "", "x"),
    "sslcertmode": ("disable", "allow", "require", "", "x"),
    "ssl_min_protocol_version": (*options.TLS_VERSIONS, "", "tlsv1.3", "TLSv1.4", "SSLv3"),
    "ssl_max_protocol_version": (*options.TLS_VERSIONS, "", "tlsv1.1", "TLSv1.0"),
    "sslrootcert": ("system", "/nonexistent/root.crt", ""),
    "require_auth": (
        "password",
        "md5,scram-sha-256",
        "!password",
        "!none,!md5",
        "password,!md5",
        "!md5,md5",
        "md5,md5",
        "none",
        "",
        ",",
        "SCRAM-SHA-256",
        "gss,sspi",
        "!gss,!sspi",
    ),
    "sslsni": ("0", "1", "", "2", "yes"),
    "sslcompression": ("0", "1", "", "x"),
    "gssdelegation": ("0", "1", ""),
    "keepalives": ("0", "1", "", "x", " 5 ", "2147483648"),
    "keepalives_idle": ("10", "-1", "", "1.5", "+3"),
    "keepalives_interval": ("10", "0", "x"),
    "keepalives_count": ("3", "-2147483648", "-2147483649"),
    "tcp_user_timeout": ("1000", "", "1e3"),
    "connect_timeout": ("10", "0", "-1", "1", "", "x", "99999999999", " 7 "),
    "port": ("1", "0", "65536", "abc", " 1 ", "1,1", "1,x", "+1"),
    "hostaddr": ("127.0.0.1", "127.1", "db.local", "256.1.1.1", "127.0.0.1,127.0.0.1", "1::x"),
    "min_protocol_version": ("3.0", "3.2", "latest", "", "3.1"),
    "max_protocol_version": ("3.0", "3.2", "latest", "", "3.1"),
    "krbsrvname": ("", "postgres"),
    "gsslib": ("", "gssapi"),
    "requirepeer": ("", "postgres"),
    "replication": ("false", "0", "off", "true", "database", "maybe", ""),
    "client_encoding": ("UTF8", "utf-8", "auto", "LATIN1", ""),
    "options": ("", "-c x=1"),
    "application_name": ("", "app ☃"),
    "sslcert": ("", "/nonexistent/c.crt"),
}
SERVER_CHECKED = {"replication", "client_encoding"}
REFUSED = ("Connection refused", "Network is unreachable", "Cannot assign requested address")


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path))
    monkeypatch.setenv("PGUSER", "nobody")
    yield


def libpq_accepts(options: Dict[str, str]) -> bool:
    """Whether libpq gets past its checks of ``options`` to a refused TCP connection."""
    probe = {"hostaddr": "127.0.0.1", "port": "1", **options}
    dsn = " ".join(f"{key}={quoted(value)}" for key, value in probe.items())
    conn = pq.PGconn.connect(dsn.encode("utf-8"))
    try:
        message = conn.error_message.decode("utf-8", "replace")
    finally:
        conn.finish()
    return any(f"failed: {reason}" in message for reason in REFUSED)


def our_outcome(options: Dict[str, str]) -> str:
    try:
        make_params(**{"hostaddr": "127.0.0.1", "port": "1", **options})
    except NotSupportedError:
        return "not supported"
    except ProgrammingError:
        return "refused"
    return "accepted"


def assert_same_checks(options: Dict[str, str]) -> None:
    theirs = "accepted" if libpq_accepts(options) else "refused"
    ours = our_outcome(options)
    if ours == "not supported":  # see NOT_SUPPORTED
        return
    if ours == "refused" and theirs == "accepted" and SERVER_CHECKED & set(options):
        return  # see SERVER_CHECKED
    assert ours == theirs, f"{options!r}: ours {ours}, libpq {theirs}"


CHECKED_KEYWORDS = sorted(set(VALUE_POOL) & LIBPQ_KEYWORDS)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [(keyword, value) for keyword in CHECKED_KEYWORDS for value in VALUE_POOL[keyword]],
)
def test_each_value_is_checked_like_libpq(bare_environment: None, keyword: str, value: str) -> None:
    assert_same_checks({keyword: value})


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    options=st.lists(st.sampled_from(CHECKED_KEYWORDS), max_size=4, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({k: st.sampled_from(VALUE_POOL[k]) for k in chosen})
    )
)
def test_combined_values_are_checked_like_libpq(
    bare_environment: None, options: Dict[str, str]
) -> None:
    assert_same_checks(options)


# -- 3. resolution order ---------------------------------------------------------------

# Keywords with values that are all valid, so that libpq fills every field.
RESOLVED_POOL: Dict[str, Tuple[str, ...]] = {
    "host": ("/nonexistent/kw", "/nonexistent/kw2,/nonexistent/kw3"),
    "port": ("1", "2", ""),
    "application_name": ("app1", "app2", ""),
    "options": ("-c a=1", ""),
    "sslmode": ("disable", "require", "verify-full"),
    "sslrootcert": ("system", "/nonexistent/root.crt"),
    "target_session_attrs": ("any", "read-write"),
    "dbname": ("db1", "db2", ""),
}
ENV_OF = {option.keyword: option.envvar or "" for option in options.OPTIONS}
layer = st.lists(st.sampled_from(sorted(RESOLVED_POOL)), unique=True).flatmap(
    lambda chosen: st.fixed_dictionaries({k: st.sampled_from(RESOLVED_POOL[k]) for k in chosen})
)


def libpq_resolved(dsn: str) -> Optional[Dict[str, str]]:
    conn = pq.PGconn.connect_start(dsn.encode("utf-8"))
    try:
        message = conn.error_message.decode("utf-8", "replace")
        if "service" in message:
            return None
        return {o.keyword.decode(): o.val.decode() for o in conn.info if o.val is not None}
    finally:
        conn.finish()


def service_text(values: Dict[str, str]) -> str:
    return "[svc]\n" + "".join(f"{key}={value}\n" for key, value in values.items())


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    string=layer,
    user_service=st.none() | layer,
    system_service=st.none() | layer,
    env=layer,
    requiressl=st.booleans(),
)
def test_resolution_order_is_libpqs(
    tmp_path: Path,
    bare_environment: None,
    string: Dict[str, str],
    user_service: Optional[Dict[str, str]],
    system_service: Optional[Dict[str, str]],
    env: Dict[str, str],
    requiressl: bool,
) -> None:
    user_file, system_file = tmp_path / "user.conf", tmp_path / "pg_service.conf"
    for path, content in ((user_file, user_service), (system_file, system_service)):
        path.write_text(service_text(content) if content is not None else "[other]\n")
    environ: Dict[str, str] = {
        "PGSERVICEFILE": str(user_file),
        "PGSYSCONFDIR": str(tmp_path),
        "PGUSER": "nobody",
        "PGHOST": "/nonexistent/env-fallback",  # never the default socket directory
        **({"PGREQUIRESSL": "1"} if requiressl else {}),
        **{ENV_OF[key]: value for key, value in env.items()},
    }
    dsn = " ".join(f"{k}={quoted(v)}" for k, v in {**string, "service": "svc"}.items())
    with exactly_these_pg_variables(environ):
        theirs = libpq_resolved(dsn)
        try:
            ours: Optional[Dict[str, str]] = conninfo._resolve(parse_dsn(dsn), dict(os.environ))
        except ProgrammingError:
            ours = None
    if theirs is None or ours is None:
        assert theirs is None and ours is None, (theirs, ours)
        return
    for key in RESOLVED_POOL:
        if key == "dbname" and not ours.get(key):
            assert theirs[key] == "nobody"  # filled from the user by connectOptions2
        else:
            assert ours.get(key) == theirs.get(key), (key, ours, theirs)


@contextlib.contextmanager
def exactly_these_pg_variables(environ: Dict[str, str]) -> Iterator[None]:
    """os.environ with these PG* variables and no other, for one generated example."""
    saved = dict(os.environ)
    for name in [name for name in os.environ if name.startswith("PG")]:
        del os.environ[name]
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_resolution_helpers_agree_on_a_simple_case(
    monkeypatch: pytest.MonkeyPatch, bare_environment: None
) -> None:
    # A fixed point for the property test above, so that it cannot pass vacuously.
    monkeypatch.setenv("PGAPPNAME", "from-env")
    theirs = libpq_resolved("host=/nonexistent/x port=7")
    assert theirs is not None
    assert theirs["application_name"] == "from-env"
    assert theirs["port"] == "7"
    ours = conninfo._resolve(parse_dsn("host=/nonexistent/x port=7"), dict(os.environ))
    assert (ours["application_name"], ours["port"]) == ("from-env", "7")


def probe_values() -> List[Tuple[str, str]]:
    return [(k, v) for k in CHECKED_KEYWORDS for v in VALUE_POOL[k]]


def test_the_value_pool_has_both_outcomes(bare_environment: None) -> None:
    outcomes = [libpq_accepts({k: v}) for k, v in probe_values()]
    assert outcomes.count(True) >= 40 and outcomes.count(False) >= 25


def test_a_value_replaced_later_in_the_uri_need_not_be_utf8() -> None:
    """libpq checks only the values that remain: a path's dbname replaced by ?dbname=."""
    assert_same_parse("postgresql://,/,%F0?dbname=")
    assert_same_parse("postgresql://h/%F0?dbname=db")
    assert our_parse("postgresql://h/%F0") is None
