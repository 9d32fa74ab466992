"""A fake PostgreSQL backend on a local port: scripted, or a small in-memory pub/sub server.

    with FakeBackend() as fake:                  # the pub/sub server
        pubsub = pgwire_pubsub.connect(fake.dsn)  # psql, psycopg, asyncpg... as well

    def script(conn: FakeConn) -> None:          # scripted: one call per connection
        conn.handshake()
        assert isinstance(conn.receive(), Query)
        conn.send(b"garbage")                    # any bytes (send_messages: typed ones)

    with FakeBackend(script) as fake: ...

Each connection is served in a thread of its own.  By default the pub/sub
server answers LISTEN, UNLISTEN, NOTIFY, ``SELECT pg_notify(...)``, ``SELECT
1``, BEGIN/COMMIT/ROLLBACK and a few more (see _fakesession.py) with
PostgreSQL's semantics, and anything else with an error (SQLSTATE 0A000).
In scripted mode an exception in the script is kept in ``error`` and raised
again on exit unless ``check=False``; ``connections`` (default: no limit) is
how many connections are accepted before the port closes.

Faults, in both modes, for every connection: ``cut()`` closes them now,
``blackhole()`` stops answering (what would be sent is held),
``trickle(pause)`` sends byte by byte, ``passthrough()`` ends the last two
(and sends what was held), ``send_raw(data)`` sends any bytes, and
``reject_authentication()`` fails every authentication that follows.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import ssl
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ..errors import ProtocolViolation
from . import _fakeauth, _fakesession
from ._fakehub import Hub
from .fakeconn import (
    CANCEL_REQUEST,
    GSSENC_REQUEST,
    PROTOCOL_3_0,
    SSL_REQUEST,
    FakeConn,
    split_messages,
)
from .pgcluster import make_uri

__all__ = ["CANCEL_REQUEST", "GSSENC_REQUEST", "PROTOCOL_3_0", "SSL_REQUEST", "FakeBackend",
           "FakeConn", "split_messages"]

POLL = 0.05
Script = Callable[[FakeConn], None]


class FakeBackend:
    host = "127.0.0.1"

    def __init__(self, script: Optional[Script] = None, *, connections: Optional[int] = None,
                 auth: str = "trust", user: str = "postgres", password: Optional[str] = None,
                 database: str = "postgres", unix_socket: bool = False,
                 expect_ssl_request: Optional[bool] = None, ssl_response: bytes = b"N",
                 ssl_context: Optional[ssl.SSLContext] = None, timeout: float = 10.0,
                 check: bool = True) -> None:
        """``auth``: trust, password, md5 or scram-sha-256, checking ``user`` and
        ``password``.  ``expect_ssl_request``: whether an SSLRequest may come (answered
        with ``ssl_response``, then TLS through ``ssl_context`` for ``b"S"``); by default
        it may in the pub/sub mode only.  ``timeout``: how long a script waits for the
        client (the pub/sub server waits for ever)."""
        self.script = script
        self.connections = connections
        self.auth = _fakeauth.check_method(auth)
        self.user, self.password, self.database = user, password, database
        self.expect_ssl_request = (script is None) if expect_ssl_request is None \
            else expect_ssl_request
        self.ssl_response, self.ssl_context = ssl_response, ssl_context
        self.timeout, self.check = timeout, check
        self.error: Optional[BaseException] = None
        self.accepted = 0
        self.conns: List[FakeConn] = []  # every connection accepted, in order
        self.hub = Hub() if script is None else None
        # the faults
        self.answering = True
        self.trickle_pause: Optional[float] = None
        self.rejecting_authentication = False
        self._lock = threading.Lock()
        self._open: List[FakeConn] = []
        self._threads: List[threading.Thread] = []
        self._stop = threading.Event()
        self._listeners = [socket.create_server((self.host, 0))]
        self.port: int = self._listeners[0].getsockname()[1]
        self.socket_dir: Optional[str] = None
        if unix_socket:
            self.socket_dir = tempfile.mkdtemp(prefix="pgwire-fake-")
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.bind(os.path.join(self.socket_dir, f".s.PGSQL.{self.port}"))
            unix.listen(16)
            self._listeners.append(unix)
        self._acceptor = threading.Thread(target=self._accept, name="fakebackend", daemon=True)

    # -- where it is ---------------------------------------------------------------

    def dsn_params(self, **over: Any) -> Dict[str, Any]:
        """Connection keywords (host, port, user, password, dbname, and sslmode=disable when
        no SSLRequest is expected); an override of None drops a key."""
        params = {"host": self.host, "port": self.port, "user": self.user,
                  "password": self.password, "dbname": self.database,
                  "sslmode": None if self.expect_ssl_request else "disable", **over}
        return {k: v for k, v in params.items() if v is not None}

    @property
    def dsn(self) -> str:
        """A ``postgresql://`` URI of the TCP port, which libpq (psql, psycopg), asyncpg and
        this library all accept."""
        return make_uri(self.dsn_params())

    @property
    def unix_dsn(self) -> str:
        """The same through the Unix socket (``unix_socket=True``)."""
        if self.socket_dir is None:
            raise ValueError("this FakeBackend has no Unix socket: pass unix_socket=True")
        return make_uri(self.dsn_params(host=self.socket_dir))

    # -- the faults ------------------------------------------------------------------

    def cut(self) -> None:
        """Close every open connection now (new ones are still accepted)."""
        for conn in self._open_conns():
            conn.close()

    def blackhole(self) -> None:
        """Stop answering: nothing more is sent (it is held), connections stay open."""
        self.answering = False

    def trickle(self, pause: float = 0.0) -> None:
        """From now on send byte by byte, ``pause`` seconds apart."""
        self.trickle_pause = pause

    def passthrough(self) -> None:
        """Back to normal: send what was held, whole messages again."""
        self.answering, self.trickle_pause = True, None
        for conn in self._open_conns():
            with contextlib.suppress(OSError):
                conn.release()

    def send_raw(self, data: bytes) -> None:
        """Send ``data`` as it is on every open connection."""
        for conn in self._open_conns():
            with contextlib.suppress(OSError):
                conn.send(data)

    def reject_authentication(self, reject: bool = True) -> None:
        """Fail every authentication from now on (FATAL 28P01), or no longer."""
        self.rejecting_authentication = reject

    def _open_conns(self) -> List[FakeConn]:
        with self._lock:
            return list(self._open)

    # -- serving ---------------------------------------------------------------------

    def _accept(self) -> None:
        try:
            while self.connections is None or self.accepted < self.connections:
                ready, _, _ = select.select(self._listeners, [], [], POLL)
                if not ready and self._stop.is_set():  # only once no connection is waiting
                    break
                for listener in ready:
                    with contextlib.suppress(OSError):
                        self._start(listener.accept()[0])
        finally:
            for listener in self._listeners:
                listener.close()

    def _start(self, sock: socket.socket) -> None:
        conn = FakeConn(sock, self, self.accepted)
        with self._lock:
            self.accepted += 1
            self.conns.append(conn)
            self._open.append(conn)
        thread = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                  name=f"fakebackend-{conn.index}")
        self._threads.append(thread)
        thread.start()

    def _serve(self, conn: FakeConn) -> None:
        try:
            if self.script is not None:
                self.script(conn)
            else:
                assert self.hub is not None
                _fakesession.serve(conn, self.hub)
        except BaseException as exc:
            # The pub/sub server's client may go away (or break the protocol, and be told);
            # a script's connection, when closed here (cut).
            gone = (self.script is None or conn.closed) and isinstance(
                exc, (EOFError, OSError, ProtocolViolation))
            if not gone:
                with self._lock:
                    self.error = self.error or exc
        finally:
            conn.close()
            with self._lock:
                self._open.remove(conn)

    def start(self) -> FakeBackend:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end the connections (a script gets ``timeout`` to finish)."""
        self._stop.set()
        if self.script is None:
            self.cut()
        deadline = time.monotonic() + (self.timeout + 2 if self.script is not None else 5)
        self._acceptor.join(max(0.0, deadline - time.monotonic()))
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            self.cut()
            for thread in self._threads:
                thread.join(2)
            self.error = self.error or TimeoutError("fake backend script did not finish")
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self) -> FakeBackend:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop()
        if self.check and exc_type is None and self.error is not None:
            raise self.error
