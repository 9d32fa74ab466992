"""A real PostgreSQL server for tests, from whatever this machine offers, and fresh databases.

``start_server()`` returns the first available of: the server named by
``PGWIRE_TEST_DSN``; a throwaway cluster of the local server binaries
(``PGWIRE_PG_BINDIR``, ``pg_config``, Debian's ``/usr/lib/postgresql/*/bin``,
``PATH``); one of the binaries bundled in the ``pgserver`` package; a
``postgres`` container through testcontainers when a Docker engine answers.
``Database.create(server)`` makes a database of its own on it for one test.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any, Dict

from .. import connect
from .pgcluster import (
    Cluster,
    ContainerServer,
    ExternalServer,
    Server,
    Unavailable,
    docker_available,
    find_pg_bindir,
    make_uri,
)

__all__ = ["Database", "start_server"]


def start_server(tls: bool = True) -> Server:
    """A running server (``cleanup()`` stops it); ``Unavailable`` says why there is none.

    ``tls``: a local cluster serves TLS with a throwaway CA (``ca_file``); without it,
    ``ssl = off``.  A server named by ``PGWIRE_TEST_DSN`` is taken as it is, so asking
    for no TLS there raises ``Unavailable``.
    """
    dsn = os.environ.get("PGWIRE_TEST_DSN")
    if dsn:
        if not tls:
            raise Unavailable("PGWIRE_TEST_DSN is set; no TLS-less local server is started")
        return ExternalServer(dsn)
    if find_pg_bindir() is not None:
        return Cluster(tls=tls).start()
    from ..localserver import pgserver_bindir

    bundled = pgserver_bindir()
    if bundled is not None:
        return Cluster(tls=False, bindir=bundled).start()
    if docker_available():
        return ContainerServer()  # postgres:15 image: TLS is off
    raise Unavailable("no PostgreSQL: set PGWIRE_TEST_DSN, install the PostgreSQL server "
                      "binaries (or PGWIRE_PG_BINDIR), pip install pgserver, or run a Docker "
                      "engine")


class Database:
    """A database of its own on ``server`` (its superuser's), dropped by ``drop()``.

    ``dsn`` is a ``postgresql://`` URI of it (libpq, asyncpg and this library accept
    it); ``dsn_params()`` the same as keywords for ``pgwire_pubsub.connect``.
    """

    def __init__(self, server: Server, dbname: str, owned: bool) -> None:
        self.server = server
        self.dbname = dbname
        self.owned = owned  # created here (so dropped here), or the server's own
        self.host, self.port = server.host, server.port

    @classmethod
    def create(cls, server: Server) -> Database:
        """A new, empty database; the server's own one if it may not create any (an
        external server without CREATEDB)."""
        dbname = f"pgwire_test_{uuid.uuid4().hex[:12]}"
        try:
            _execute(server, f'CREATE DATABASE "{dbname}"')
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != "42501":  # insufficient_privilege
                raise
            return cls(server, str(server.dsn_kwargs().get("dbname", "postgres")), False)
        return cls(server, dbname, True)

    def dsn_params(self, **over: Any) -> Dict[str, Any]:
        return self.server.dsn_kwargs(dbname=self.dbname, **over)

    @property
    def dsn(self) -> str:
        return make_uri(self.dsn_params())

    def psql(self, sql: str, **over: Any) -> str:
        """Run ``sql`` with psql in this database; return its output."""
        return self.server.psql(sql, dbname=self.dbname, **over)

    def drop(self) -> None:
        if not self.owned:
            return
        try:  # PostgreSQL 13 and later end the sessions still connected
            _execute(self.server, f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        except Exception:
            _execute(self.server, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  f"WHERE datname = '{self.dbname}'")
            _execute(self.server, f'DROP DATABASE IF EXISTS "{self.dbname}"')

    def __repr__(self) -> str:
        return f"Database({self.dbname!r} on {self.host}:{self.port})"


def _execute(server: Server, sql: str) -> None:
    pubsub = connect(**server.dsn_kwargs())
    with contextlib.closing(pubsub):
        pubsub.conn.execute(sql)
