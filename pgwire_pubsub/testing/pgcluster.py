"""Throwaway PostgreSQL servers for tests (no pytest dependency; ``postgres.start_server``
picks one).

* ``Cluster``: a private cluster built from the local server binaries in a temp dir,
  with TLS, one role per authentication method and an explicit pg_hba.conf.
* ``ExternalServer``: a server named by the ``PGWIRE_TEST_DSN`` environment variable.
* ``ContainerServer``: ``postgres:15`` through testcontainers, when Docker answers.

All three offer ``dsn_kwargs()``, ``dsn()``, ``psql()`` and ``popen_psql()``, plus the
capability flags ``has_roles``, ``has_tls`` and ``can_restart`` so tests can skip.

The helpers that go with them (``wait_for``, ``LineReader``, ``in_thread``, ``lit``,
connection strings) live in ``_support`` and are offered here too; the TLS material of a
cluster (a CA, certificates, CRLs) in ``_tlsmaterial``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Optional, Tuple, TypeVar

from pgwire_pubsub.localserver import ServerPrograms

# Re-exported: tests import it from here (test_localserver checks it stays offered).
from pgwire_pubsub.localserver import find_pg_bindir as find_pg_bindir

from ._support import LineReader as LineReader
from ._support import _free_port
from ._support import find_psql as find_psql
from ._support import has_ipv6_loopback as has_ipv6_loopback
from ._support import in_thread as in_thread
from ._support import lit as lit
from ._support import make_dsn as make_dsn
from ._support import make_uri as make_uri
from ._support import parse_dsn as parse_dsn
from ._support import wait_for as wait_for
from ._tlsmaterial import CERT_USER as CERT_USER
from ._tlsmaterial import CLIENT_KEY_PASSPHRASE as CLIENT_KEY_PASSPHRASE
from ._tlsmaterial import OTHER_CN as OTHER_CN
from ._tlsmaterial import TlsMaterial

T = TypeVar("T")

# role -> password (None: no password); auth method of each role in pg_hba.conf
ROLES: Dict[str, Optional[str]] = {
    "trust_user": None,
    "password_user": "password_pw",
    "md5_user": "md5_pw",
    "scram_user": "scram_pw",
    "tls_user": "tls_pw",
    "postgres": None,
}
AUTH_METHOD: Dict[str, str] = {
    "trust_user": "trust",
    "password_user": "password",
    "md5_user": "md5",
    "scram_user": "scram-sha-256",
    "tls_user": "scram-sha-256",  # hostssl only; hostnossl and local are rejected
    "postgres": "trust",
}
auth_method = AUTH_METHOD

# A role that logs in with a client certificate only (hostssl ... cert). It is kept out
# of ROLES and AUTH_METHOD, whose roles every client can log in as without a certificate.

PSQL_FLAGS = ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
_RUN_AS = "postgres"


class Unavailable(Exception):
    """No PostgreSQL server can be provided; the message says why."""


class PsqlError(RuntimeError):
    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(f"psql exited with {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


class Server:
    """What every test server offers; subclasses fill in ``_base_params``."""

    has_roles = False
    has_tls = False
    can_restart = False
    ca_file: Optional[str] = None
    other_ca_file: Optional[str] = None
    socket_dir: Optional[str] = None
    # Client certificates signed by ca_file, and CRLs issued by it (a Cluster with TLS):
    has_client_certs = False
    client_cert_file: Optional[str] = None  # CN=cert_user
    client_key_file: Optional[str] = None  # its key, unencrypted, mode 0600
    client_encrypted_key_file: Optional[str] = None  # the same key, CLIENT_KEY_PASSPHRASE
    client_key_passphrase: Optional[str] = None
    other_cn_cert_file: Optional[str] = None  # CN=not_cert_user, also signed by ca_file
    other_cn_key_file: Optional[str] = None
    crl_file: Optional[str] = None  # a CRL of ca_file that revokes nothing
    revoked_crl_file: Optional[str] = None  # a CRL of ca_file that revokes server_cert_file
    crl_dir: Optional[str] = None  # a hashed directory holding crl_file
    revoked_crl_dir: Optional[str] = None  # a hashed directory holding revoked_crl_file
    host = "127.0.0.1"
    port = 0

    def _base_params(self, role: str) -> Dict[str, Any]:
        raise NotImplementedError

    def dsn_kwargs(self, role: str = "postgres", **over: Any) -> Dict[str, Any]:
        """Keyword arguments for ``pgwire_pubsub.connect``; an override of None drops a key."""
        params = self._base_params(role)
        params.update(over)
        return {k: v for k, v in params.items() if v is not None}

    def dsn(self, role: str = "postgres", **over: Any) -> str:
        """The same connection as a libpq key=value string."""
        return make_dsn(self.dsn_kwargs(role, **over))

    def _psql_command(self, role: str, dbname: str, over: Dict[str, Any],
                      extra: List[str]) -> Tuple[List[str], Dict[str, str]]:
        psql = find_psql()
        if psql is None:
            raise Unavailable("psql not found")
        params = self.dsn_kwargs(role, dbname=dbname, **over)
        password = params.pop("password", None)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if password is not None:
            env["PGPASSWORD"] = str(password)
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        return [psql, *PSQL_FLAGS, *extra, "-d", make_dsn(params)], env

    def psql(self, sql: str, role: str = "postgres", dbname: str = "postgres",
             timeout: float = 30, **over: Any) -> str:
        """Run ``sql`` with psql as ``role``; return stdout, raise PsqlError on failure.

        ``over`` overrides connection keywords (host, password, sslmode, sslrootcert...).
        """
        argv, env = self._psql_command(role, dbname, over, ["-c", sql])
        proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise PsqlError(proc.returncode, proc.stderr)
        return proc.stdout

    def popen_psql(self, role: str = "postgres", dbname: str = "postgres",
                   args: Tuple[str, ...] = (), **over: Any) -> subprocess.Popen[str]:
        """A long-running psql reading SQL from its stdin pipe (text, line-buffered)."""
        argv, env = self._psql_command(role, dbname, over, list(args))
        return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, bufsize=1)

    def restart(self, mode: str = "fast") -> None:
        raise Unavailable(f"{type(self).__name__} cannot restart")

    def cleanup(self) -> None:
        pass

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


_live: List[Cluster] = []


@atexit.register
def _cleanup_all() -> None:  # safety net for interrupted sessions
    for cluster in list(_live):
        cluster.cleanup(mode="immediate")


class Cluster(TlsMaterial, Server):
    """A private PostgreSQL cluster in a temp dir, built from the local binaries."""

    has_roles = True
    can_restart = True

    def __init__(self, tls: bool = True, bindir: Optional[str] = None,
                 settings: Optional[Dict[str, str]] = None) -> None:
        self.tls = self.has_tls = tls
        found = bindir or find_pg_bindir()
        if found is None:
            raise Unavailable("PostgreSQL server binaries (initdb) not found")
        self.bindir: str = found
        self.settings = dict(settings or {})
        self.ipv6 = has_ipv6_loopback()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                pwd.getpwnam(_RUN_AS)
            except KeyError:
                raise Unavailable(f"running as root but there is no {_RUN_AS!r} user") from None
        # As root, run as _RUN_AS, from a copy when that user cannot reach bindir.
        self.programs = ServerPrograms(self.bindir, _RUN_AS if self.as_root else None)
        self.tmpdir: Optional[str] = None
        self.running = False

    # -- paths ---------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        assert self.tmpdir is not None, "cluster not started"
        return os.path.join(self.tmpdir, *parts)

    @property
    def datadir(self) -> str:
        return self._path("data")

    @property
    def logfile(self) -> str:
        return self._path("postgres.log")

    def log(self) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- running the binaries -------------------------------------------------
    def _run(self, prog: str, *args: str, timeout: float = 120) -> str:
        returncode, stdout, stderr = self.programs.run(prog, *args, cwd=self.tmpdir or "/",
                                                       timeout=timeout)
        if returncode != 0:
            raise RuntimeError(f"{prog} failed ({returncode}): {stderr.strip()}\n"
                               f"--- server log ---\n{self.log()[-3000:]}")
        return stdout

    def _chown(self, path: str) -> None:
        if self.as_root:
            pw = pwd.getpwnam(_RUN_AS)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> Cluster:
        if self.running:
            return self
        if self.tmpdir is None:
            self._create()
            _live.append(self)
        else:
            self._pg_ctl_start()
        return self

    def _create(self) -> None:
        self.tmpdir = self.socket_dir = tempfile.mkdtemp(prefix="pgwire-test-", dir="/tmp")
        os.chmod(self.tmpdir, 0o755)
        self._chown(self.tmpdir)
        self.programs.prepare("/tmp", "pgwire-test-")
        self._run("initdb", "-D", self.datadir, "--auth=trust", "--username=postgres",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        if self.tls:
            self._make_certs()
        self._write_hba()
        self._start_on_free_port()
        self._create_roles()

    def _start_on_free_port(self) -> None:
        """Configure a free port and start; another process may take it first, so retry."""
        for attempt in range(3):
            self.port = _free_port(self.ipv6)
            self._write_conf()
            try:
                self._pg_ctl_start()
                return
            except RuntimeError:
                if attempt == 2 or "could not bind" not in self.log():
                    raise

    def _pg_ctl_start(self) -> None:
        self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "60", "stop")
            self.running = False

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast`` or ``immediate``) and start again on the same port."""
        self.stop(mode)
        self._pg_ctl_start()

    def cleanup(self, mode: str = "fast") -> None:
        try:
            self.stop(mode)
        except Exception:
            if mode != "immediate":
                self.stop("immediate")
        finally:
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = self.socket_dir = None
            self.programs.remove_copy()
            if self in _live:
                _live.remove(self)

    def __enter__(self) -> Cluster:
        return self.start()

    # -- configuration ---------------------------------------------------------
    def _write_conf(self) -> None:
        listen = "127.0.0.1,::1" if self.ipv6 else "127.0.0.1"
        conf = {
            "listen_addresses": f"'{listen}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.tmpdir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
            "shared_buffers": "16MB",
            "log_connections": "on",
            "ssl": "on" if self.tls else "off",
        }
        if self.tls:
            conf.update(ssl_cert_file=f"'{self.server_cert_file}'",
                        ssl_key_file=f"'{self.server_key_file}'")
            conf.update(ssl_ca_file=f"'{self.ca_file}'")  # verifies client certificates
        conf.update(self.settings)
        # appended last, so these win over initdb's defaults (and earlier attempts)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# pgwire test settings\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())

    def _write_hba(self) -> None:
        nets = ["127.0.0.1/32", "::1/128"]
        lines = ["# TYPE     DATABASE  USER  ADDRESS  METHOD"]
        for role, method in AUTH_METHOD.items():
            if role == "tls_user":
                lines.append(f"local all {role} reject")
                lines += [f"hostssl all {role} {net} {method}" for net in nets]
                lines += [f"hostnossl all {role} {net} reject" for net in nets]
            else:
                lines.append(f"local all {role} {method}")
                lines += [f"host all {role} {net} {method}" for net in nets]
        if self.tls:  # CERT_USER: a client certificate with CN=cert_user, over TLS only
            lines.append(f"local all {CERT_USER} reject")
            lines += [f"hostssl all {CERT_USER} {net} cert" for net in nets]
            lines += [f"hostnossl all {CERT_USER} {net} reject" for net in nets]
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def _create_roles(self) -> None:
        stmts = []
        for role, password in ROLES.items():
            if role == "postgres":
                continue
            enc = "md5" if AUTH_METHOD[role] == "md5" else "scram-sha-256"
            stmts.append(f"SET password_encryption = '{enc}'")
            pw = f" PASSWORD '{password}'" if password else ""
            stmts.append(f"CREATE ROLE {role} LOGIN{pw}")
        self.psql("; ".join(stmts))
        if self.tls:
            self.psql(f"CREATE ROLE {CERT_USER} LOGIN")
        self.psql("CREATE DATABASE pubsub")
        for db in ("postgres", "pubsub"):
            self.psql("GRANT ALL ON SCHEMA public TO PUBLIC", dbname=db)

    def _base_params(self, role: str) -> Dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": role,
                "password": ROLES.get(role), "dbname": "postgres"}


class ExternalServer(Server):
    """A server given by a DSN (``PGWIRE_TEST_DSN``); its own user stands for 'postgres'.

    The special roles, TLS and restarts are not available (tests skip on the flags),
    except that ``PGWIRE_TEST_SSLROOTCERT`` names a CA file and turns ``has_tls`` on.
    """

    def __init__(self, dsn: str) -> None:
        self.params = parse_dsn(dsn)
        self.host = self.params.get("host", "127.0.0.1")
        self.port = int(self.params.get("port", "5432"))
        self.ca_file = os.environ.get("PGWIRE_TEST_SSLROOTCERT") or None
        self.has_tls = self.ca_file is not None

    def _base_params(self, role: str) -> Dict[str, Any]:
        params: Dict[str, Any] = {"dbname": "postgres", **self.params, "port": self.port}
        if role != "postgres":
            params.update(user=role, password=ROLES.get(role))
        return params


def docker_available(timeout: float = 3.0) -> bool:
    """True if the testcontainers package imports and a Docker engine answers."""
    try:
        import docker  # type: ignore[import-untyped]
        import testcontainers.postgres  # noqa: F401

        docker.from_env(timeout=int(timeout)).ping()
        return True
    except Exception:
        return False


class ContainerServer(Server):
    """``postgres:15`` in Docker via testcontainers (no TLS, no special roles, no restart)."""

    def __init__(self) -> None:
        from testcontainers.postgres import PostgresContainer

        self.container = PostgresContainer("postgres:15", username="postgres",
                                           password="postgres", dbname="postgres")
        self.container.start()
        self.host = self.container.get_container_host_ip()
        self.port = int(self.container.get_exposed_port(5432))

    def _base_params(self, role: str) -> Dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": "postgres",
                "password": "postgres", "dbname": "postgres"}

    def psql(self, sql: str, role: str = "postgres", dbname: str = "postgres",
             timeout: float = 30, **over: Any) -> str:
        if find_psql() is not None:
            return super().psql(sql, role, dbname, timeout, **over)
        code, out = self.container.get_wrapped_container().exec_run(
            ["psql", *PSQL_FLAGS, "-U", "postgres", "-d", dbname, "-c", sql], demux=True)
        if code != 0:
            raise PsqlError(code, (out[1] or b"").decode())
        return (out[0] or b"").decode()

    def cleanup(self) -> None:
        self.container.stop()
