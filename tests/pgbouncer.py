"""A throwaway PgBouncer in front of a test server (no pytest dependency).

    with PgBouncer(cluster, databases={"txn": "dbname=pubsub pool_mode=transaction"}) as bouncer:
        connect(host=bouncer.host, port=bouncer.port, dbname="txn", user="postgres")

Its ``pgbouncer.ini`` and ``userlist.txt`` go in a temp dir owned by the ``postgres`` user
(PgBouncer refuses to run as root); it listens on a free port of 127.0.0.1 only (no Unix
socket), with ``auth_type = trust``, and runs in the foreground until ``stop()``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

RUN_AS = "postgres"
START_TIMEOUT = 15.0


class Unavailable(Exception):
    """PgBouncer cannot be started here; the message says why."""


def find_pgbouncer() -> Optional[str]:
    """The pgbouncer binary (Debian installs it in /usr/sbin), or None."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    for candidate in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/bin/pgbouncer"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class PgBouncer:
    """PgBouncer forwarding to ``server_host:server_port`` as the ``postgres`` role.

    ``databases`` maps a client-side database name to the rest of its ``[databases]`` line
    (e.g. ``"dbname=pubsub pool_mode=transaction"``); host, port and user are added.
    ``settings`` go in the ``[pgbouncer]`` section, over the defaults here.
    """

    host = "127.0.0.1"

    def __init__(self, server_host: str, server_port: int, databases: Dict[str, str],
                 settings: Optional[Dict[str, str]] = None, user: str = "postgres") -> None:
        binary = find_pgbouncer()
        if binary is None:
            raise Unavailable("pgbouncer is not installed")
        self.binary = binary
        self.server_host = server_host
        self.server_port = server_port
        self.databases = dict(databases)
        self.settings = dict(settings or {})
        self.user = user
        self.port = 0
        self.tmpdir: Optional[str] = None
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._owner: Optional[pwd.struct_passwd] = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam(RUN_AS)
            except KeyError:
                raise Unavailable(f"running as root but there is no {RUN_AS!r} user") from None

    def _path(self, name: str) -> str:
        assert self.tmpdir is not None
        return os.path.join(self.tmpdir, name)

    def _write(self, name: str, text: str) -> None:
        with open(self._path(name), "w") as f:
            f.write(text)
        self._chown(self._path(name))

    def _chown(self, path: str) -> None:
        if self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def log(self) -> str:
        try:
            with open(self._path("pgbouncer.log"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except (OSError, AssertionError):
            return ""

    def start(self) -> PgBouncer:
        self.tmpdir = tempfile.mkdtemp(prefix="pgwire-bouncer-", dir="/tmp")
        os.chmod(self.tmpdir, 0o755)
        self._chown(self.tmpdir)
        self.port = _free_port()
        lines: List[str] = ["[databases]"]
        for name, rest in self.databases.items():
            lines.append(f"{name} = host={self.server_host} port={self.server_port} "
                         f"user={self.user} {rest}")
        conf = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": self._path("userlist.txt"),
            "logfile": self._path("pgbouncer.log"),
            "pidfile": "",
            "admin_users": self.user,
            "pool_mode": "session",
            # whatever a client sends at start-up, PgBouncer must not refuse the login
            "ignore_startup_parameters": "extra_float_digits,options,search_path",
        }
        conf.update(self.settings)
        lines.append("[pgbouncer]")
        lines += [f"{k} = {v}" for k, v in conf.items()]
        self._write("pgbouncer.ini", "\n".join(lines) + "\n")
        self._write("userlist.txt", f'"{self.user}" ""\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        with open(self._path("stderr.log"), "wb") as stderr:
            if self._owner is not None:
                self.proc = subprocess.Popen(
                    [self.binary, self._path("pgbouncer.ini")], cwd=self.tmpdir, env=env,
                    stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                    user=self._owner.pw_uid, group=self._owner.pw_gid, extra_groups=[])
            else:
                self.proc = subprocess.Popen(
                    [self.binary, self._path("pgbouncer.ini")], cwd=self.tmpdir, env=env,
                    stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(self.host, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = self.log()
                with open(self._path("stderr.log"), errors="replace") as f:
                    output += f.read()
                self.stop()
                raise RuntimeError(f"pgbouncer did not start:\n{output[-3000:]}")
            time.sleep(0.02)  # polling for the port, with a deadline
        return self

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.proc = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
