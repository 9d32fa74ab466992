"""Runs the shared opening procedure (``_shared.opening``) with blocking sockets."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any, Generator, List, Optional, Tuple, TypeVar

from .._shared.opening import Opened, cancel, open_session
from .._shared.requests import Address, Connect, Deadline, Disconnect, Resolve, StartTLS
from ..conninfo import ConnParams
from .socketio import SocketIO, remaining

T = TypeVar("T")


class Opener:
    """Performs one opening's requests; ``io`` is the stream of the current attempt."""

    def __init__(self) -> None:
        self.io: Optional[SocketIO] = None
        self.deadline: Optional[float] = None

    def open(self, params: ConnParams) -> Tuple[SocketIO, Opened]:
        try:
            opened: Opened = self.run(open_session(params))
        except BaseException:
            self._disconnect()  # an interrupt (Ctrl-C) skips the procedure's own cleanup
            raise
        assert self.io is not None
        return self.io, opened

    def cancel(self, params: ConnParams, opened: Opened) -> None:
        try:
            self.run(cancel(params, opened))
        finally:
            self._disconnect()

    def run(self, procedure: Generator[Any, Any, T]) -> T:
        value: Any = None
        error: Optional[BaseException] = None
        while True:
            try:
                request = procedure.throw(error) if error is not None else procedure.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = error = None
            try:
                value = self._perform(request)
            except Exception as exc:  # the procedure decides; interrupts end the opening
                error = exc

    def _perform(self, request: Any) -> Any:
        io = self.io
        if request is None:
            assert io is not None
            io.feed(self.deadline)
        elif type(request) is bytes:
            assert io is not None
            io.sendall(request, self.deadline)
        elif isinstance(request, Connect):
            self.io = SocketIO(self._connect(request), request.machine)
        elif isinstance(request, StartTLS):
            assert io is not None
            io.sock.settimeout(remaining(self.deadline))
            io.sock = request.context.wrap_socket(
                io.sock, server_hostname=request.server_hostname)
            return io.sock
        elif isinstance(request, Resolve):
            return _resolve(request.host, request.port)
        elif isinstance(request, Deadline):
            self.deadline = None if request.seconds is None else time.monotonic() + request.seconds
        elif isinstance(request, Disconnect):
            self._disconnect()
        else:
            raise TypeError(f"unknown request {request!r}")
        return None

    def _connect(self, request: Connect) -> socket.socket:
        if request.address is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = request.path
        else:
            family, target = request.address
            sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining(self.deadline))
            sock.connect(target)
            for level, option, value in request.options:
                sock.setsockopt(level, option, value)
        except BaseException:
            sock.close()
            raise
        return sock

    def _disconnect(self) -> None:
        if self.io is not None:
            with contextlib.suppress(OSError):
                self.io.close()
            self.io = None


def _resolve(host: str, port: int) -> List[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(int(family), tuple(sockaddr)) for family, _, _, _, sockaddr in infos]
