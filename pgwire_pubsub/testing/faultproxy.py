"""A TCP proxy for fault injection between the client and a real PostgreSQL server.

    with FaultProxy("127.0.0.1", server_port) as proxy:
        connect(host="127.0.0.1", port=proxy.port, ...)  # or connect(proxy.dsn) with dsn_params
        proxy.blackhole()     # stop forwarding, keep the sockets open
        proxy.cut()           # close both directions of every connection at once
        proxy.trickle(0.001)  # from now on, deliver one byte at a time, with small pauses
        proxy.delay(0.2)      # from now on, hold every chunk for 0.2 s
        proxy.passthrough()   # back to normal

Everything runs in daemon threads with bounded waits; ``close()`` ends them all.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .pgcluster import make_uri

POLL = 0.05


class FaultProxy:
    def __init__(self, target_host: str, target_port: int,
                 dsn_params: Optional[Dict[str, Any]] = None) -> None:
        """``dsn_params``: the server's connection keywords (user, dbname...), for ``dsn``."""
        self.target = (target_host, target_port)
        self.dsn_params = dict(dsn_params or {})
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: List[Tuple[socket.socket, socket.socket]] = []
        self._mode = "pass"
        self._pause = 0.0
        self._stopped = threading.Event()
        self.connections = 0
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def dsn(self) -> str:
        """A ``postgresql://`` URI of the server's ``dsn_params`` through the proxy."""
        return make_uri({**self.dsn_params, "host": self.host, "port": self.port})

    # -- the faults ----------------------------------------------------------
    def passthrough(self) -> None:
        self._set("pass", 0.0)

    def blackhole(self) -> None:
        self._set("blackhole", 0.0)

    def trickle(self, pause: float = 0.0005) -> None:
        self._set("trickle", pause)

    def delay(self, seconds: float) -> None:
        self._set("delay", seconds)

    def cut(self) -> None:
        """Close every proxied connection, both directions at once (new ones still work)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _close(sock)

    def _set(self, mode: str, pause: float) -> None:
        with self._lock:
            self._mode, self._pause = mode, pause

    # -- plumbing ------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopped.is_set():
            ready, _, _ = select.select([self._listener], [], [], POLL)
            if not ready:
                continue
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                continue
            with self._lock:
                self._pairs.append((client, server))
                self.connections += 1
            for a, b in ((client, server), (server, client)):
                thread = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._stopped.is_set():
                with self._lock:
                    mode, pause = self._mode, self._pause
                if source.fileno() < 0:
                    return
                if mode == "blackhole":  # hold everything, keep both sockets open
                    self._stopped.wait(POLL)
                    continue
                ready, _, _ = select.select([source], [], [], POLL)
                if not ready:
                    continue
                data = source.recv(65536)
                if not data:
                    _close(sink)
                    return
                if mode == "trickle":
                    for i in range(len(data)):
                        sink.sendall(data[i : i + 1])
                        time.sleep(pause)  # the fault itself: bytes delivered slowly
                else:
                    if mode == "delay":
                        time.sleep(pause)  # the fault itself: latency
                    sink.sendall(data)
        except (OSError, ValueError):
            _close(sink)

    def close(self) -> None:
        self._stopped.set()
        self.cut()
        _close(self._listener)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close(sock: Optional[socket.socket]) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
