"""The password file: when it is read, which line matches, and when it is ignored."""

from __future__ import annotations

import getpass
import logging
import os
from pathlib import Path
from typing import Dict, Iterator, Optional

import pytest

from pgwire_pubsub.conninfo import ConnParams, make_params
from pgwire_pubsub.conninfo import _passfile as passfile

DEFAULT_DIR = "/var/run/postgresql"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path / "etc"))
    monkeypatch.setattr(getpass, "getuser", lambda: "osuser")
    monkeypatch.setattr(os.path, "isdir", lambda path: path == DEFAULT_DIR)
    yield


def pgpass(text: str, mode: int = 0o600) -> Path:
    path = Path(os.environ["HOME"]) / ".pgpass"
    path.write_text(text)
    path.chmod(mode)
    return path


def first_password(params: ConnParams) -> Optional[str]:
    return params.password_for(params.hosts[0])


def found(text: str, **kwargs: object) -> Optional[str]:
    """The password the file ``text`` gives for the connection ``kwargs``."""
    pgpass(text)
    kwargs.setdefault("dbname", "db")
    kwargs.setdefault("user", "u")
    return first_password(make_params(None, **kwargs))


# -- when the file is read --------------------------------------------------------


def test_default_file_in_home() -> None:
    pgpass("h:5432:db:u:secret\n")
    params = make_params(host="h", dbname="db", user="u")
    assert params.passfile == os.path.join(os.environ["HOME"], ".pgpass")
    assert first_password(params) == "secret"
    assert params.password is None  # .password is only the explicit one


def test_pgpassfile_and_the_passfile_keyword(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pgpass("*:*:*:*:from-home\n")
    env_file, keyword_file = tmp_path / "env.pgpass", tmp_path / "kw.pgpass"
    for path, password in ((env_file, "from-env"), (keyword_file, "from-keyword")):
        path.write_text(f"*:*:*:*:{password}\n")
        path.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(env_file))
    assert first_password(make_params(host="h")) == "from-env"
    assert first_password(make_params(host="h", passfile=str(keyword_file))) == "from-keyword"
    assert first_password(make_params(f"host=h passfile={keyword_file}")) == "from-keyword"


@pytest.mark.parametrize("how", ["keyword", "string", "env", "uri"])
def test_explicit_password_skips_the_file(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    pgpass("*:*:*:*:from-file\n")
    if how == "env":
        monkeypatch.setenv("PGPASSWORD", "explicit")
    dsn = {"string": "password=explicit", "uri": "postgresql://u:explicit@h"}.get(how)
    params = make_params(dsn, host="h", **({"password": "explicit"} if how == "keyword" else {}))
    assert params.password == "explicit"
    assert params.password_for(params.hosts[0]) == "explicit"
    assert params.host_passwords == ()


def test_explicit_password_from_a_service_skips_the_file() -> None:
    pgpass("*:*:*:*:from-file\n")
    Path(os.environ["HOME"], ".pg_service.conf").write_text("[s]\npassword=from-service\n")
    assert first_password(make_params(service="s")) == "from-service"


def test_empty_password_reads_the_file() -> None:
    pgpass("*:*:*:*:from-file\n")
    assert first_password(make_params("password=''", host="h")) == "from-file"


def test_missing_file_is_no_password(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        assert first_password(make_params(host="h")) is None
    assert caplog.records == []


# -- which line matches -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("h:5432:db:u:pw", "pw"),
        ("*:5432:db:u:pw", "pw"),
        ("h:*:db:u:pw", "pw"),
        ("h:5432:*:u:pw", "pw"),
        ("h:5432:db:*:pw", "pw"),
        ("*:*:*:*:pw", "pw"),
        ("H:5432:db:u:pw", None),  # host names are compared exactly
        ("h:5433:db:u:pw", None),
        ("h:5432:db2:u:pw", None),
        ("h:5432:db:u2:pw", None),
        ("*h:5432:db:u:pw", None),  # "*" is a wildcard only as the whole field
        ("h*:5432:db:u:pw", None),
        ("*x5432:db:u:pw", None),  # "*x5432" is not "*" followed by a port field
        ("h:5432:db:u", None),  # no password field
        ("h:5432:db", None),
        ("h:5432:db:u:", ""),
        ("h:5432:db:u:pw:extra:fields", "pw"),  # the password ends at the next ":"
        ("h:5432:db:u:p\\:w\\\\x", "p:w\\x"),
        ("h:5432:db:u:pw\\", "pw\\"),  # a trailing backslash stays
        ("h:5432:db:u:pw\r", "pw"),  # CR LF line ends
        ("  h:5432:db:u:pw", None),  # no white space trimming
    ],
)
def test_line_matching(line: str, expected: Optional[str]) -> None:
    assert found(line + "\n", host="h") == expected


@pytest.mark.parametrize(
    ("line", "kwargs"),
    [
        ("my\\:host:5432:db:u:pw", {"hostaddr": "127.0.0.1", "host": "my:host"}),
        ("h:5432:d\\:b:u:pw", {"host": "h", "dbname": "d:b"}),
        ("h:5432:db:back\\\\slash:pw", {"host": "h", "user": "back\\slash"}),
        ("h:5432:db:\\u:pw", {"host": "h"}),  # an escaped ordinary character is itself
    ],
)
def test_escapes_in_the_fields(line: str, kwargs: Dict[str, str]) -> None:
    assert found(line + "\n", **kwargs) == "pw"


def test_first_matching_line_wins() -> None:
    text = "other:*:*:*:no\nh:*:*:*:first\n*:*:*:*:second\n"
    assert found(text, host="h") == "first"
    assert found(text, host="x") == "second"


def test_comments() -> None:
    text = "# h:5432:db:u:commented\nh:5432:db:u:real\n"
    assert found(text, host="h") == "real"
    # Only a "#" in the first column starts a comment.
    assert found(" #h:5432:db:u:x\n#h:5432:db:u:y\n", host=" #h") == "x"


def test_file_without_final_newline_and_blank_lines() -> None:
    assert found("\n\nh:5432:db:u:pw", host="h") == "pw"


def test_default_port_and_port_as_text() -> None:
    assert found("h:5432:db:u:default\n", host="h") == "default"
    assert found("h:5432:db:u:pw\n", host="h", port="05432") is None  # compared as text
    assert found("h:05432:db:u:pw\n", host="h", port="05432") == "pw"


def test_defaults_for_user_and_dbname_are_used() -> None:
    pgpass("h:5432:osuser:osuser:pw\n")
    assert first_password(make_params(host="h")) == "pw"


# -- sockets and addresses -------------------------------------------------------


def test_default_socket_directory_matches_localhost() -> None:
    text = "localhost:5432:db:u:local\n"
    assert found(text) == "local"  # no host: the default socket directory
    assert found(text, host="") == "local"
    assert found(text, host=DEFAULT_DIR) == "local"
    assert found(text, host=DEFAULT_DIR + "/") is None  # libpq compares the text


def test_other_socket_directory_matches_as_written() -> None:
    text = "localhost:5432:db:u:local\n/tmp/pg:5432:db:u:tmp\n"
    assert found(text, host="/tmp/pg") == "tmp"
    assert found(text, host="/other") is None


def test_hostaddr_alone_matches_the_address() -> None:
    assert found("127.0.0.1:5432:db:u:addr\n", hostaddr="127.0.0.1") == "addr"


def test_host_name_is_matched_even_with_hostaddr() -> None:
    assert found("127.0.0.1:*:*:*:addr\nname:*:*:*:name\n", host="name", hostaddr="127.0.0.1") == (
        "name"
    )


def test_each_host_gets_its_own_password() -> None:
    pgpass("a:5432:db:u:pw-a\nb:6000:db:u:pw-b\nlocalhost:5432:db:u:pw-local\n")
    params = make_params(host="a,b,,c", port="5432,6000,5432,5432", dbname="db", user="u")
    assert [params.password_for(h) for h in params.hosts] == ["pw-a", "pw-b", "pw-local", None]
    assert params.password is None


# -- when the file is ignored ----------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o610, 0o601, 0o620, 0o602, 0o700 | 0o070])
def test_group_or_world_access_ignores_the_file(
    caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path = pgpass("*:*:*:*:pw\n", mode)
    with caplog.at_level(logging.WARNING, logger="pgwire_pubsub"):
        assert first_password(make_params(host="h")) is None
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "pgwire_pubsub",
            "WARNING",
            f'password file "{path}" has group or world access;'
            " permissions should be u=rw (0600) or less",
        )
    ]


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_owner_only_access_is_fine(caplog: pytest.LogCaptureFixture, mode: int) -> None:
    pgpass("*:*:*:*:pw\n", mode)
    with caplog.at_level(logging.WARNING):
        assert first_password(make_params(host="h")) == "pw"
    assert caplog.records == []


def test_directory_is_not_a_plain_file(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    directory = tmp_path / "adir"
    directory.mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING, logger="pgwire_pubsub"):
        assert first_password(make_params(host="h", passfile=str(directory))) is None
    assert [r.getMessage() for r in caplog.records] == [
        f'password file "{directory}" is not a plain file'
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_not_a_plain_file_and_does_not_block(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with caplog.at_level(logging.WARNING, logger="pgwire_pubsub"):
        assert first_password(make_params(host="h", passfile=str(fifo))) is None
    assert "is not a plain file" in caplog.text


def test_symlink_to_a_private_file_is_followed(tmp_path: Path) -> None:
    target = pgpass("*:*:*:*:pw\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert first_password(make_params(host="h", passfile=str(link))) == "pw"


def test_the_warning_is_given_for_each_host(caplog: pytest.LogCaptureFixture) -> None:
    pgpass("*:*:*:*:pw\n", 0o644)
    with caplog.at_level(logging.WARNING, logger="pgwire_pubsub"):
        make_params(host="a,b")
    assert len(caplog.records) == 2


# -- secrecy -----------------------------------------------------------------------


def test_file_passwords_are_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    pgpass("*:*:*:*:t0psecret\n")
    with caplog.at_level(logging.DEBUG):
        params = make_params(host="a,b")
    assert params.host_passwords == ("t0psecret", "t0psecret")
    for text in (repr(params), str(params), caplog.text):
        assert "t0psecret" not in text
    assert "host_passwords=('***', '***')" in repr(params)


# -- the lookup function itself ------------------------------------------------------


def test_lookup_needs_a_dbname_and_a_user(tmp_path: Path) -> None:
    path = pgpass("*:*:*:*:pw\n")
    assert passfile.lookup(str(path), "h", "1", "", "u", DEFAULT_DIR) is None
    assert passfile.lookup(str(path), "h", "1", "db", "", DEFAULT_DIR) is None
    assert passfile.lookup(str(path), "h", "1", "db", "u", DEFAULT_DIR) == "pw"


def test_lookup_of_an_unreadable_path(tmp_path: Path) -> None:
    assert passfile.lookup(str(tmp_path / "nope"), "h", "", "db", "u", DEFAULT_DIR) is None


def test_default_path() -> None:
    assert passfile.default_path({"HOME": "/h"}) == "/h/.pgpass"
