"""Connection service files: where they are looked for, how they are read, what they set."""

from __future__ import annotations

import getpass
import os
import pwd
import re
from pathlib import Path
from typing import Iterator

import pytest

from pgwire_pubsub.conninfo import _servicefile as servicefile
from pgwire_pubsub.conninfo import make_params
from pgwire_pubsub.conninfo._options import KNOWN
from pgwire_pubsub.errors import ProgrammingError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("PG"):
            monkeypatch.delenv(name)
    (tmp_path / "home").mkdir()
    (tmp_path / "etc").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path / "etc"))
    monkeypatch.setattr(getpass, "getuser", lambda: "osuser")
    yield


def user_file(text: str) -> Path:
    path = Path(os.environ["HOME"]) / ".pg_service.conf"
    path.write_text(text)
    return path


def system_file(text: str) -> Path:
    path = Path(os.environ["PGSYSCONFDIR"]) / "pg_service.conf"
    path.write_text(text)
    return path


# -- where the service is found ------------------------------------------------


def test_service_from_the_user_file() -> None:
    user_file("[main]\nhost=db.example\nport=6543\ndbname=app\nuser=bob\n")
    params = make_params(service="main")
    assert (params.host, params.port, params.dbname, params.user) == (
        "db.example",
        6543,
        "app",
        "bob",
    )
    assert params.service == "main"


def test_pgservice_names_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    user_file("[a]\nhost=from-a\n[b]\nhost=from-b\n")
    monkeypatch.setenv("PGSERVICE", "b")
    assert make_params().host == "from-b"
    assert make_params(service="a").host == "from-a"  # the keyword wins over PGSERVICE
    assert make_params("service=a").host == "from-a"


def test_pgservicefile_replaces_the_home_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    user_file("[main]\nhost=from-home\n")
    other = tmp_path / "other.conf"
    other.write_text("[main]\nhost=from-pgservicefile\n")
    monkeypatch.setenv("PGSERVICEFILE", str(other))
    assert make_params(service="main").host == "from-pgservicefile"


def test_missing_pgservicefile_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "missing.conf"
    monkeypatch.setenv("PGSERVICEFILE", str(missing))
    system_file("[main]\nhost=from-system\n")
    with pytest.raises(ProgrammingError, match=re.escape(f'service file "{missing}" not found')):
        make_params(service="main")


def test_system_file_when_the_user_file_lacks_the_service() -> None:
    user_file("[other]\nhost=from-user\n")
    system_file("[main]\nhost=from-system\n")
    assert make_params(service="main").host == "from-system"


def test_system_file_when_there_is_no_user_file() -> None:
    system_file("[main]\nhost=from-system\n")
    assert make_params(service="main").host == "from-system"


def test_user_file_wins_and_the_system_file_is_not_merged() -> None:
    user_file("[main]\nhost=from-user\n")
    system_file("[main]\nhost=from-system\nport=7777\n")
    params = make_params(service="main")
    assert (params.host, params.port) == ("from-user", 5432)


def test_default_system_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PGSYSCONFDIR")
    monkeypatch.setattr(servicefile, "SYSCONFDIR", str(tmp_path / "etc"))
    (tmp_path / "etc" / "pg_service.conf").write_text("[main]\nhost=from-default-dir\n")
    assert make_params(service="main").host == "from-default-dir"


def test_the_compiled_in_directory_is_debians() -> None:
    assert servicefile.SYSCONFDIR == "/etc/postgresql-common"


def test_service_not_found() -> None:
    user_file("[other]\nhost=x\n")
    system_file("[another]\nhost=y\n")
    with pytest.raises(ProgrammingError, match='definition of service "main" not found'):
        make_params(service="main")


def test_service_not_found_without_any_file() -> None:
    with pytest.raises(ProgrammingError, match='definition of service "main" not found'):
        make_params(service="main")


def test_empty_service_name_is_looked_up_too() -> None:
    # libpq only skips the lookup when no service is given at all.
    with pytest.raises(ProgrammingError, match='definition of service "" not found'):
        make_params(service="")


def test_pgservice_unset_means_no_lookup() -> None:
    user_file("[main]\nhost=from-user\n")
    assert make_params(host="h").host == "h"


# -- precedence -----------------------------------------------------------------


def test_service_fills_only_what_the_string_and_keywords_leave_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_file("[main]\nhost=svc-host\nport=1111\ndbname=svc-db\napplication_name=svc-app\n")
    monkeypatch.setenv("PGAPPNAME", "env-app")
    monkeypatch.setenv("PGUSER", "env-user")
    params = make_params("service=main port=2222", dbname="kw-db")
    assert (params.host, params.port, params.dbname) == ("svc-host", 2222, "kw-db")
    assert params.application_name == "svc-app"  # the service beats the environment
    assert params.user == "env-user"  # the environment fills what the service leaves


def test_empty_value_in_the_string_blocks_the_service(socket_dir: str) -> None:
    user_file("[main]\nhost=svc-host\n")
    assert make_params("service=main host=''").host == socket_dir


def test_empty_value_in_the_service_blocks_the_environment(
    monkeypatch: pytest.MonkeyPatch, socket_dir: str
) -> None:
    user_file("[main]\nhost=\n")
    monkeypatch.setenv("PGHOST", "env-host")
    assert make_params(service="main").host == socket_dir


@pytest.fixture
def socket_dir(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(os.path, "isdir", lambda path: path == "/var/run/postgresql")
    return "/var/run/postgresql"


def test_service_values_are_validated() -> None:
    user_file("[main]\nport=notaport\n")
    with pytest.raises(ProgrammingError, match='"notaport" for connection option "port"'):
        make_params(service="main")


# -- reading a file -------------------------------------------------------------


def test_comments_blank_lines_and_surrounding_space() -> None:
    user_file(
        "# a comment\n\n   \t\n  [main]  \n  host=spaced-host  \n\t# indented comment\n"
        "options=-c a=b\n"
    )
    params = make_params(service="main")
    assert params.host == "spaced-host"
    assert params.options == "-c a=b"  # split at the first "=" only


def test_crlf_line_endings() -> None:
    user_file("[main]\r\nhost=crlf-host\r\n")
    assert make_params(service="main").host == "crlf-host"


def test_text_after_the_closing_bracket_is_ignored() -> None:
    user_file("[main] trailing words\nhost=h1\n")
    assert make_params(service="main").host == "h1"


def test_spaces_inside_the_brackets_do_not_match() -> None:
    user_file("[ main ]\nhost=h1\n")
    with pytest.raises(ProgrammingError, match="not found"):
        make_params(service="main")


def test_a_longer_section_name_does_not_match() -> None:
    user_file("[mainly]\nhost=h1\n")
    with pytest.raises(ProgrammingError, match="not found"):
        make_params(service="main")


def test_first_value_of_a_repeated_keyword_wins() -> None:
    user_file("[main]\nhost=first\nhost=second\n")
    assert make_params(service="main").host == "first"


def test_only_the_first_section_of_that_name_counts() -> None:
    user_file("[main]\nhost=first\n[other]\n[main]\nport=7777\n")
    params = make_params(service="main")
    assert (params.host, params.port) == ("first", 5432)


def test_lines_outside_the_section_are_not_checked() -> None:
    user_file("[other]\nthis is not valid\nbogus=1\n[main]\nhost=h\n")
    assert make_params(service="main").host == "h"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("noequals", "syntax error"),
        ("bogus=1", "syntax error"),
        ("host = spaced", "syntax error"),  # libpq does not trim around "="
        ("requiressl=1", "syntax error"),  # the alias exists only in strings
        ("service=other", "nested service specifications not supported"),
    ],
)
def test_bad_lines_name_the_file_and_line(line: str, message: str) -> None:
    path = user_file(f"# header\n[main]\nhost=h\n{line}\n")
    with pytest.raises(ProgrammingError, match=re.escape(f'{message} in service file "{path}"')):
        make_params(service="main")
    with pytest.raises(ProgrammingError, match=r", line 4$"):
        make_params(service="main")


def test_line_too_long() -> None:
    # libpq reads lines into a 1024-byte buffer: 1023 bytes with the newline are too many.
    path = user_file("[main]\nhost=/" + "x" * 1016 + "\n")
    with pytest.raises(
        ProgrammingError, match=re.escape(f'line 2 too long in service file "{path}"')
    ):
        make_params(service="main")
    user_file("[main]\nhost=/" + "x" * 1015 + "\n")
    assert make_params(service="main").host == "/" + "x" * 1015


def test_read_service_directly(tmp_path: Path) -> None:
    path = tmp_path / "s.conf"
    path.write_text("[a]\nhost=h\nport=1\n[b]\n")
    assert servicefile.read_service(str(path), "a", KNOWN) == {"host": "h", "port": "1"}
    assert servicefile.read_service(str(path), "b", KNOWN) == {}
    assert servicefile.read_service(str(path), "c", KNOWN) is None


def test_home_directory_prefers_home(monkeypatch: pytest.MonkeyPatch) -> None:
    assert servicefile.home_directory({"HOME": "/some/home"}) == "/some/home"
    # With HOME empty or unset, libpq asks the password database.
    assert servicefile.home_directory({"HOME": ""}) == pwd.getpwuid(os.getuid()).pw_dir
    assert servicefile.home_directory({}) == pwd.getpwuid(os.getuid()).pw_dir
