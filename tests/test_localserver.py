"""Throwaway servers: where the binaries are found, and a server's whole life."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import stat
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator, List

import pytest

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import localserver
from pgwire_pubsub.localserver import (
    LocalServer,
    ServerError,
    ServerPrograms,
    ServerUnavailable,
    find_pg_bindir,
    pgserver_bindir,
)
from pgwire_pubsub.testing.pgcluster import wait_for

TIMEOUT = 10  # seconds: a failure guard only


# -- find_pg_bindir's order -------------------------------------------------


def make_bindir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "initdb").write_text("")
    return path


def fake_pg_config(bindir: Path, reports: Path) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "pg_config"
    script.write_text(f"#!/bin/sh\necho '{reports}'\n")
    script.chmod(0o755)


@pytest.fixture
def no_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing to find: no variable, an empty PATH, no Debian directories."""
    monkeypatch.delenv("PGWIRE_PG_BINDIR", raising=False)
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.setattr(localserver, "DEBIAN_BINDIRS", str(tmp_path / "debian" / "*" / "bin"))
    return tmp_path


def test_nothing_found(no_binaries: Path) -> None:
    assert find_pg_bindir() is None


def test_the_variable_comes_first(no_binaries: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pg_config(no_binaries / "path", make_bindir(no_binaries / "from_pg_config"))
    make_bindir(no_binaries / "debian" / "15" / "bin")
    monkeypatch.setenv("PGWIRE_PG_BINDIR", "/chosen/bin")
    assert find_pg_bindir() == "/chosen/bin"


def test_pg_config_comes_before_debian_directories(no_binaries: Path) -> None:
    chosen = make_bindir(no_binaries / "from_pg_config")
    fake_pg_config(no_binaries / "path", chosen)
    make_bindir(no_binaries / "debian" / "15" / "bin")
    assert find_pg_bindir() == str(chosen)


def test_pg_config_without_initdb_is_passed_over(no_binaries: Path) -> None:
    client_only = no_binaries / "client_only"
    client_only.mkdir()
    fake_pg_config(no_binaries / "path", client_only)
    debian = make_bindir(no_binaries / "debian" / "15" / "bin")
    assert find_pg_bindir() == str(debian)


def test_the_newest_debian_version_wins_numerically(no_binaries: Path) -> None:
    for version in ("9.6", "10", "9.5"):
        make_bindir(no_binaries / "debian" / version / "bin")
    assert find_pg_bindir() == str(no_binaries / "debian" / "10" / "bin")  # not "9.6"


def test_initdb_on_path_comes_last(no_binaries: Path) -> None:
    initdb = no_binaries / "path" / "initdb"
    initdb.write_text("#!/bin/sh\n")
    initdb.chmod(0o755)
    assert find_pg_bindir() == str(no_binaries / "path")
    debian = make_bindir(no_binaries / "debian" / "16" / "bin")
    assert find_pg_bindir() == str(debian)


def test_pgcluster_still_offers_find_pg_bindir() -> None:
    from pgwire_pubsub.testing import pgcluster

    assert pgcluster.find_pg_bindir is find_pg_bindir


# -- pgserver's binaries ------------------------------------------------------


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory first on sys.path, for a fake pgserver; the real state comes back after."""
    saved = sys.modules.pop("pgserver", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("pgserver", None)
    if saved is not None:
        sys.modules["pgserver"] = saved


def test_pgserver_binaries_are_found_without_importing_it(fake_site: Path) -> None:
    package = fake_site / "pgserver"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    bindir = make_bindir(package / "pginstall" / "bin")
    assert pgserver_bindir() == str(bindir)
    assert "pgserver" not in sys.modules


def test_a_pgserver_without_binaries_is_none(fake_site: Path) -> None:
    (fake_site / "pgserver.py").write_text("")
    assert pgserver_bindir() is None


# -- a server's life ---------------------------------------------------------


def test_a_directory_without_initdb_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ServerUnavailable) as info:
        LocalServer(str(tmp_path))
    assert "apt-get install postgresql" in str(info.value)
    assert "pip install 'pgwire-pubsub[server]'" in str(info.value)


def local_bindir() -> str:
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries here")
    return bindir


def owner_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("Uid:"))
    return int(line.split()[1])


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    return False


def round_trip(dsn: str) -> None:
    with pgpubsub.connect(dsn) as listener, pgpubsub.connect(dsn) as notifier:
        listener.listen("local")
        notifier.notify("local", "über")
        event = listener.get_event(select_timeout=TIMEOUT)
        assert event == pgpubsub.Notify(notifier.conn.get_backend_pid(), "local", "über")


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(local_bindir(), prefix=f"pgwire-test-{uuid.uuid4().hex[:6]}-") as srv:
        yield srv


def test_a_throwaway_server_serves_tcp_and_its_unix_socket(server: LocalServer) -> None:
    assert server.tmpdir is not None and os.path.isdir(server.tmpdir)
    round_trip(server.dsn())
    round_trip(server.dsn(unix_socket=True))
    with pgpubsub.connect(server.dsn()) as ps:
        rows = ps.conn.execute("SELECT current_setting('fsync'), current_setting('port')")
    assert [tuple(row) for row in rows] == [("off", str(server.port))]


def test_cleanup_stops_the_server_and_removes_its_directory(server: LocalServer) -> None:
    pid = server.server_pid()
    tmpdir = server.tmpdir
    assert pid is not None and tmpdir is not None
    server.cleanup()
    assert not os.path.exists(tmpdir)
    wait_for(lambda: process_gone(pid), TIMEOUT, message="the server to exit")
    server.cleanup()  # again: nothing to do


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_as_root_the_server_runs_as_another_user(server: LocalServer) -> None:
    pid = server.server_pid()
    assert pid is not None and server.run_as == "postgres"
    assert owner_uid(pid) == pwd.getpwnam("postgres").pw_uid


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_as_root_without_a_postgres_user_nobody_runs_it() -> None:
    with LocalServer(local_bindir(), run_as="nobody") as srv:
        pid = srv.server_pid()
        assert pid is not None and owner_uid(pid) == pwd.getpwnam("nobody").pw_uid
        round_trip(srv.dsn())


def leftovers(prefix: str) -> List[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*"))


def test_a_failed_start_leaves_nothing_behind() -> None:
    prefix = f"pgwire-test-{uuid.uuid4().hex[:6]}-"
    srv = LocalServer(local_bindir(), prefix=prefix, settings={"shared_buffers": "'bogus'"})
    with pytest.raises(ServerError, match="pg_ctl"):
        srv.start()
    assert srv.tmpdir is None
    assert leftovers(prefix) == []


@pytest.mark.skipif(pgserver_bindir() is None, reason="pgserver is not installed")
def test_pgservers_binaries_run_a_throwaway_server() -> None:
    bindir = pgserver_bindir()
    assert bindir is not None
    with LocalServer(bindir) as srv:
        assert srv.version().startswith("16.")
        round_trip(srv.dsn())


# -- as root: reaching the binaries as another user -------------------------

needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="needs root")


def executable_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/exe")


@needs_root
def test_as_root_the_server_starts_without_sbin_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The PATH of cron and of su without -: runuser (in /usr/sbin) is not on it."""
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    with LocalServer(local_bindir()) as srv:
        pid = srv.server_pid()
        assert pid is not None and owner_uid(pid) == pwd.getpwnam("postgres").pw_uid
        round_trip(srv.dsn())


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory under /tmp that every user can enter (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="pgwire-test-shared-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@needs_root
def test_the_run_as_user_has_its_own_groups_and_home(shared_dir: Path) -> None:
    script = shared_dir / "initdb"
    script.write_text('#!/bin/sh\nid -u; id -g; id -G; echo "$HOME $USER $LOGNAME"\n')
    script.chmod(0o755)
    entry = pwd.getpwnam("postgres")
    code, out, err = ServerPrograms(str(shared_dir), "postgres").run("initdb")
    assert code == 0, err
    uid, gid, groups, home = out.splitlines()
    assert (int(uid), int(gid)) == (entry.pw_uid, entry.pw_gid)
    assert sorted(map(int, groups.split())) == sorted(set(os.getgrouplist("postgres",
                                                                          entry.pw_gid)))
    assert home == f"{entry.pw_dir} postgres postgres"


@needs_root
def test_binaries_only_root_can_reach_run_from_a_copy(root_only_copy: Any) -> None:
    """As with a clone or virtualenv under /root (mode 0700)."""
    prefix = f"pgwire-test-{uuid.uuid4().hex[:6]}-"
    private = root_only_copy(local_bindir())
    os.chmod(os.path.join(private, "postgres"), 0o777)  # as an odd umask may leave it
    with LocalServer(private, prefix=prefix) as srv:
        pid = srv.server_pid()
        assert pid is not None and srv.programs.copy is not None
        assert executable_of(pid).startswith(srv.programs.copy + os.sep)
        # No other user may change what the server runs:
        assert stat.S_IMODE(os.stat(executable_of(pid)).st_mode) == 0o755
        assert os.stat(executable_of(pid)).st_uid == 0
        round_trip(srv.dsn())
        assert srv.version() == LocalServer(local_bindir()).version()
    assert leftovers(prefix) == []
    assert os.path.isfile(os.path.join(private, "initdb"))  # the original is left alone


@needs_root
def test_pgservers_binaries_only_root_can_reach_run_from_a_copy(root_only_copy: Any) -> None:
    bindir = pgserver_bindir()
    if bindir is None:
        pytest.skip("pgserver is not installed")
    prefix = f"pgwire-test-{uuid.uuid4().hex[:6]}-"
    with LocalServer(root_only_copy(bindir), prefix=prefix) as srv:
        assert srv.version().startswith("16.")
        round_trip(srv.dsn())
    assert leftovers(prefix) == []


@needs_root
def test_binaries_that_even_a_copy_cannot_run_say_what_to_do(root_only_copy: Any,
                                                              shared_dir: Path) -> None:
    broken = shared_dir / "broken" / "bin"
    broken.mkdir(parents=True)
    for name in ("initdb", "postgres"):
        (broken / name).write_text("#!/bin/sh\necho 'cannot run here' >&2; exit 3\n")
        (broken / name).chmod(0o755)
    prefix = f"pgwire-test-{uuid.uuid4().hex[:6]}-"
    srv = LocalServer(root_only_copy(str(broken)), prefix=prefix)
    with pytest.raises(ServerUnavailable) as info:
        srv.start()
    message = str(info.value)
    assert "'postgres' user" in message and "cannot run here" in message
    assert "apt-get install postgresql" in message and "not under /root" in message
    assert srv.tmpdir is None and leftovers(prefix) == []
