"""Throwaway PostgreSQL servers: find the server binaries, run one in a temp dir, remove it.

``find_pg_bindir()`` looks for the binaries of the machine's PostgreSQL, ``pgserver_bindir()``
for those bundled in the ``pgserver`` wheel (``pip install 'pgwire-pubsub[server]'``).
``LocalServer(bindir)`` then runs a private cluster: a new temp dir, a free port,
trust authentication on 127.0.0.1 and on a Unix socket in that dir, ``fsync`` off.
As root it runs the binaries as the ``postgres`` system user (``nobody`` when there
is none), since PostgreSQL refuses to run as root; when that user cannot reach them
(a virtualenv under ``/root``), it runs a copy made in a temp dir.  ``cleanup()``
stops the server and removes the dirs.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Dict, Iterator, Optional, Tuple

from ._serverprograms import COMMAND_TIMEOUT, ProgramsUnreachable, ServerPrograms

__all__ = [
    "INSTALL_HINT",
    "LocalServer",
    "ServerError",
    "ServerPrograms",
    "ServerUnavailable",
    "find_pg_bindir",
    "pgserver_bindir",
]

INSTALL_HINT = (
    "no PostgreSQL server binaries (initdb, pg_ctl, postgres) were found. Install them, e.g.\n"
    "  apt-get install postgresql          (Debian, Ubuntu)\n"
    "  brew install postgresql             (macOS)\n"
    "  pip install 'pgwire-pubsub[server]'  (a PostgreSQL 16 bundled in a wheel: pgserver)\n"
    "or set PGWIRE_PG_BINDIR to the directory that holds them."
)
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"  # one per installed major version
RUN_AS_USERS = ("postgres", "nobody")  # as root, the first that exists runs the server
STOP_TIMEOUT = 30


class ServerUnavailable(Exception):
    """No server can be started here; the message says why and what to install."""


class ServerError(RuntimeError):
    """A server command failed; the message holds its output and the server log's tail."""


# -- finding the binaries ---------------------------------------------------


def find_pg_bindir() -> Optional[str]:
    """The directory holding initdb, pg_ctl and postgres, or None.

    In order: ``$PGWIRE_PG_BINDIR``; ``pg_config --bindir`` if initdb is there; the
    newest ``/usr/lib/postgresql/*/bin`` (Debian's layout); the directory of ``initdb``
    on ``PATH``.
    """
    env = os.environ.get("PGWIRE_PG_BINDIR")
    if env:
        return env
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             timeout=10, check=True, stdin=subprocess.DEVNULL).stdout.strip()
        if out and os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.SubprocessError):
        pass
    found = glob.glob(os.path.join(DEBIAN_BINDIRS, "initdb"))
    if found:
        return os.path.dirname(max(found, key=_version_of_bindir))
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _version_of_bindir(initdb: str) -> Tuple[int, ...]:
    """(15,) for .../postgresql/15/bin/initdb: numbers compare as numbers (9.6 < 10)."""
    version = os.path.basename(os.path.dirname(os.path.dirname(initdb)))
    return tuple(int(x) for x in re.findall(r"\d+", version))


def pgserver_bindir() -> Optional[str]:
    """The binaries bundled in the ``pgserver`` package, or None when it is not installed.

    Found without importing pgserver where possible: its import has side effects
    (a lock file path, warnings about ``XDG_RUNTIME_DIR``).
    """
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        bindir = os.path.join(location, "pginstall", "bin")
        if os.path.exists(os.path.join(bindir, "initdb")):
            return bindir
    try:  # another layout: ask the package itself
        path = getattr(importlib.import_module("pgserver"), "POSTGRES_BIN_PATH", None)
    except Exception:
        return None
    return str(path) if path is not None and os.path.isdir(str(path)) else None


def default_run_as() -> Optional[str]:
    """As root, the system user to run the server as; None when not root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    for name in RUN_AS_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ServerUnavailable(
        "running as root, and PostgreSQL refuses to run as root: create a 'postgres' "
        "user or run this as a normal user"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait (for us and for the commands we start) until the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


# -- a throwaway server -----------------------------------------------------


class LocalServer:
    """A private PostgreSQL cluster in a new temp dir, from the binaries in ``bindir``.

    ``with LocalServer(bindir) as server: connect(server.dsn())``.  Only the
    ``postgres`` role exists; every local connection is trusted.  ``run_as``: the
    system user that runs the binaries (default: ourselves, or as root the ``postgres``
    user, else ``nobody``); when it cannot reach them, ``start()`` copies them into a
    temp dir it can reach, which ``cleanup()`` removes.
    """

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, bindir: str, *, run_as: Optional[str] = None, prefix: str = "pgwire-",
                 settings: Optional[Dict[str, str]] = None) -> None:
        if not os.path.exists(os.path.join(bindir, "initdb")):
            raise ServerUnavailable(f"no initdb in {bindir}\n{INSTALL_HINT}")
        self.bindir = bindir
        self.run_as = run_as if run_as is not None else default_run_as()
        self.programs = ServerPrograms(bindir, self.run_as)
        self.prefix = prefix
        self.settings = dict(settings or {})
        self.tmpdir: Optional[str] = None
        self.port = 0

    # -- paths and connection strings ------------------------------------

    def _path(self, *parts: str) -> str:
        if self.tmpdir is None:
            raise RuntimeError("the server was not started")
        return os.path.join(self.tmpdir, *parts)

    @property
    def datadir(self) -> str:
        return self._path("data")

    @property
    def socket_dir(self) -> str:
        return self._path()

    def dsn(self, dbname: str = "postgres", unix_socket: bool = False) -> str:
        """A connection string for this server, over TCP or the Unix socket."""
        host = self.socket_dir if unix_socket else self.host
        quoted = "'" + host.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return f"host={quoted} port={self.port} user={self.user} dbname={dbname} sslmode=disable"

    def log(self) -> str:
        try:
            with open(self._path("postgres.log"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except (OSError, RuntimeError):
            return ""

    def version(self) -> str:
        """The server's version, e.g. ``16.2``."""
        # As ourselves, even as root: the server allows that for --version.
        out = self._run("postgres", "--version", as_self=True)  # postgres (PostgreSQL) 15.4 ...
        found = re.search(r"\)\s*(\d[^\s)]*)", out)
        return found.group(1) if found else out.strip()

    # -- running the binaries --------------------------------------------

    def _run(self, prog: str, *args: str, timeout: float = COMMAND_TIMEOUT,
             as_self: bool = False) -> str:
        try:
            returncode, stdout, stderr = self.programs.run(
                prog, *args, cwd=self.tmpdir or "/", timeout=timeout, as_self=as_self)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerError(f"{prog}: {exc}") from None
        if returncode != 0:
            who = f" (as user {self.run_as})" if self.run_as and not as_self else ""
            log = self.log()[-3000:]
            raise ServerError(f"{prog}{who} failed with exit code {returncode}: "
                              f"{(stderr or stdout).strip()}"
                              + (f"\n--- server log ---\n{log}" if log else ""))
        return stdout

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> LocalServer:
        """Create the cluster and start the server (waits until it accepts connections)."""
        if self.tmpdir is not None:
            raise RuntimeError("already started")
        self.tmpdir = tempfile.mkdtemp(prefix=self.prefix, dir=self._base_dir())
        try:
            self.programs.prepare(os.path.dirname(self.tmpdir), self.prefix)
            self._create()
        except ProgramsUnreachable as exc:
            self.cleanup()
            raise ServerUnavailable(str(exc)) from None
        except BaseException:
            self.cleanup()
            raise
        return self

    def _base_dir(self) -> Optional[str]:
        """Where the temp dir goes: the usual place, if the run-as user can get there."""
        base = tempfile.gettempdir()
        if self.run_as is not None and not os.stat(base).st_mode & 0o001 and os.path.isdir("/tmp"):
            return "/tmp"
        return base

    def _create(self) -> None:
        if self.run_as is not None:
            import pwd

            entry = pwd.getpwnam(self.run_as)
            os.chown(self._path(), entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", self.datadir, "--auth=trust", f"--username={self.user}",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        for attempt in range(3):
            self.port = free_port()
            self._write_conf()
            try:
                self._run("pg_ctl", "-D", self.datadir, "-l", self._path("postgres.log"),
                          "-w", "-t", "60", "start")
                return
            except ServerError as exc:
                if attempt == 2 or "could not bind" not in str(exc):
                    raise

    def _write_conf(self) -> None:
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "'" + self._path().replace("'", "''") + "'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "20",
            **self.settings,
        }
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# throwaway server settings (appended last, so they win)\n")
            f.writelines(f"{key} = {value}\n" for key, value in conf.items())

    def server_pid(self) -> Optional[int]:
        """The server's pid while one runs (from ``postmaster.pid``), else None."""
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                pid = int(f.readline())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, RuntimeError):
            return None

    def stop(self) -> None:
        """Stop the server (fast shutdown; immediate if that fails)."""
        if self.server_pid() is None:
            return
        pg_ctl = ("pg_ctl", "-D", self.datadir, "-w", "-t", str(STOP_TIMEOUT), "stop")
        try:
            self._run(*pg_ctl, "-m", "fast")
        except ServerError:
            self._run(*pg_ctl, "-m", "immediate")

    def cleanup(self) -> None:
        """Stop the server and remove the temp dir, whatever state they are in (also
        after an interrupted ``start()``); Ctrl-C waits until this is done."""
        if self.tmpdir is None:
            return
        with interrupts_ignored():
            with contextlib.suppress(ServerError, ServerUnavailable):
                self.stop()
            pid = self.server_pid()
            if pid is not None:  # pg_ctl could not stop it: do not leave it behind
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid)
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.programs.remove_copy()
            self.tmpdir = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
