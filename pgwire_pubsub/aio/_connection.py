"""The asyncio connection: the session's API over an asyncio transport and the protocol core.

One ``asyncio.Protocol`` per connection feeds everything that arrives to the
session's ``Machine`` the moment it arrives, and wakes whoever waits: a command
for its reply, any number of tasks for notifications.  So commands (queued, one
at a time on the wire) run while other tasks wait for notifications, and no
notification is lost or reordered.  Opening the session is the shared procedure
(``_shared.opening``), performed here with the loop's sockets and TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from typing import Any, Callable, Generator, List, Optional, Sequence, Set, TypeVar

from .._shared.opening import Opened, cancel, open_session
from .._shared.requests import Connect, Deadline, Disconnect, Resolve, StartTLS
from .._shared.session import SessionView, socket_error
from ..conninfo import ConnParams
from ..errors import InterfaceError, OperationalError
from ..protocol import steps
from ..protocol.machine import Machine, State

T = TypeVar("T")

# How long a command cancelled while the server runs it may take to finish (after the
# CancelRequest) before the connection is given up as lost.
CANCEL_GRACE = 30.0


# What a read brought is decoded 32 KiB at a time, as the blocking driver reads: decoding
# asyncio's reads of up to 256 KiB at once lets their bytes and the strings made of them
# leave the CPU's caches.  Waiters are woken once per read, so a read that concerns many
# subscriptions wakes each of them once.
DECODE_SIZE = 1 << 15


class _Stream(asyncio.Protocol):
    """Hands what arrives to its connection, and tells when writing must pause."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.paused: Optional[asyncio.Future[None]] = None

    def data_received(self, data: bytes) -> None:
        if self.conn._stream is self:
            self.conn._received(data)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self.conn._stream is self:
            self.conn._received(b"")
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)

    def pause_writing(self) -> None:
        self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)
        self.paused = None


class AsyncConnection(SessionView):
    """One PostgreSQL session for asyncio (``await AsyncConnection.connect(params)``).

    ``closed`` is 0 while open, 1 after ``close()``, 2 once the connection is lost or
    broken.  Commands from several tasks are queued and run one at a time.
    """

    def __init__(self, params: ConnParams) -> None:
        self.params = params
        self.closed = 0
        self.machine = Machine()
        self.opened: Optional[Opened] = None
        self.last_activity = 0.0
        self.bytes_received = 0  # on this connection so far
        self._loop = asyncio.get_running_loop()
        self._transport: Optional[asyncio.Transport] = None
        self._stream: Optional[_Stream] = None
        self._lost: Optional[OperationalError] = None
        self._waiters: List[asyncio.Future[None]] = []
        self._lock = asyncio.Lock()
        self._deadline: Optional[float] = None
        self._background: Set[asyncio.Task[None]] = set()
        self.on_input: Optional[Callable[[], None]] = None  # after each feed, before waking

    @classmethod
    async def connect(cls, params: ConnParams) -> AsyncConnection:
        conn = cls(params)
        try:
            conn.opened = await conn._run(open_session(params))
        except BaseException:
            conn._disconnect()  # a cancellation skips the procedure's own cleanup
            raise
        conn.machine = conn.opened.machine
        return conn

    # -- what arrives ------------------------------------------------------

    def _received(self, data: bytes) -> None:
        self.last_activity = self._loop.time()
        self.bytes_received += len(data)
        try:
            if len(data) <= DECODE_SIZE:
                self.machine.receive_data(data)
            else:
                view = memoryview(data)
                for start in range(0, len(data), DECODE_SIZE):
                    self.machine.receive_data(view[start:start + DECODE_SIZE].tobytes())
        except OperationalError as exc:
            self._fail(exc)
        if self.on_input is not None:
            self.on_input()
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _input(self, deadline: Optional[float]) -> None:
        """Until something more arrives (and was fed to the machine), the connection ends,
        or ``deadline`` (loop time) passes: ``TimeoutError`` then."""
        self._check_open()
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await wait_on(waiter, deadline, self._loop)
        self._check_open()

    # -- running steps and procedures ----------------------------------------

    async def _step(self, step: steps.Step[T], deadline: Optional[float] = None) -> T:
        try:
            out = next(step)
            while True:
                if out is None:
                    await self._input(deadline)
                else:
                    await self._send(out, deadline)
                out = step.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _send(self, data: bytes, deadline: Optional[float]) -> None:
        """Write ``data`` whole (the transport buffers it), then wait while the buffer is
        over its limit."""
        self._check_open()
        transport, stream = self._transport, self._stream
        assert transport is not None and stream is not None
        transport.write(data)
        self.machine.unsent = False
        self.last_activity = self._loop.time()
        if stream.paused is not None:
            await _until(stream.paused, deadline, self._loop)

    async def _run(self, procedure: Generator[Any, Any, T]) -> T:
        """Perform an opening procedure's requests (see ``_shared.requests``)."""
        value: Any = None
        error: Optional[BaseException] = None
        while True:
            try:
                request = procedure.throw(error) if error is not None else procedure.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value = error = None
            try:
                value = await self._perform(request)
            except Exception as exc:  # the procedure decides; a cancellation ends it
                error = exc

    async def _perform(self, request: Any) -> Any:
        deadline = self._deadline
        if request is None:
            await self._input(deadline)
        elif type(request) is bytes:
            await self._send(request, deadline)
        elif isinstance(request, Connect):
            await self._connect(request, deadline)
        elif isinstance(request, StartTLS):
            return await self._start_tls(request, deadline)
        elif isinstance(request, Resolve):
            try:  # an address needs no lookup, nor the loop's resolver thread
                infos = socket.getaddrinfo(request.host, request.port, type=socket.SOCK_STREAM,
                                           flags=socket.AI_NUMERICHOST)
            except socket.gaierror:
                infos = await self._loop.getaddrinfo(request.host, request.port,
                                                     type=socket.SOCK_STREAM)
            return [(int(family), tuple(sockaddr)) for family, _, _, _, sockaddr in infos]
        elif isinstance(request, Deadline):
            seconds = request.seconds
            self._deadline = None if seconds is None else self._loop.time() + seconds
        elif isinstance(request, Disconnect):
            self._disconnect()
        else:
            raise TypeError(f"unknown request {request!r}")
        return None

    async def _connect(self, request: Connect, deadline: Optional[float]) -> None:
        self._disconnect()
        family = socket.AF_UNIX if request.address is None else request.address[0]
        target: Any = request.path if request.address is None else request.address[1]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            try:
                await _until(self._loop.sock_connect(sock, target), deadline, self._loop)
            except OSError as exc:
                if not exc.errno or isinstance(exc, TimeoutError):
                    raise
                # asyncio words it "Connect call failed ...": say what libpq says.
                raise OSError(exc.errno, os.strerror(exc.errno)) from None
            for level, option, value in request.options:
                sock.setsockopt(level, option, value)
            self.machine, self.closed, self._lost = request.machine, 0, None
            stream = _Stream(self)
            self._stream = stream
            transport, _ = await self._loop.create_connection(lambda: stream, sock=sock)
        except BaseException:
            self._stream = None
            sock.close()
            raise
        self._transport = transport
        self.last_activity = self._loop.time()

    async def _start_tls(self, request: StartTLS, deadline: Optional[float]) -> Any:
        assert self._transport is not None and self._stream is not None
        self._check_open()
        upgrade = self._loop.start_tls(self._transport, self._stream, request.context,
                                       server_hostname=request.server_hostname)
        transport = await _until(upgrade, deadline, self._loop)
        if transport is None:
            raise ConnectionResetError("the server closed the connection during the handshake")
        self._transport = transport
        return transport.get_extra_info("ssl_object")

    def _disconnect(self) -> None:
        transport, self._transport, self._stream = self._transport, None, None
        if transport is not None:
            transport.abort()

    # -- commands ----------------------------------------------------------

    async def execute(self, sql: str, params: Optional[Sequence[Optional[str]]] = None,
                      timeout: Optional[float] = None) -> List[Any]:
        """Run SQL; with ``params`` ($1, $2... as text), one statement by the extended
        protocol.  With ``timeout``, past it the connection is closed and
        ``OperationalError`` raised.  Commands from several tasks run one at a time."""
        return await self._command(lambda: steps.execute(self.machine, sql, params), timeout)

    async def _command(self, make: Callable[[], steps.Step[T]],
                       timeout: Optional[float]) -> T:
        """Run a step with the connection to itself.  A command cancelled while the server
        runs it is finished in the background (a CancelRequest, then its reply read and
        discarded), still holding the connection, so the next command finds the protocol
        in step and cannot be hit by that CancelRequest."""
        await self._lock.acquire()
        release = True
        try:
            self._check_open()
            deadline = None if timeout is None else self._loop.time() + timeout
            if self.machine.state is State.BUSY or self.machine.has_queued_replies:
                await self._step(steps.drain(self.machine), deadline)
            try:
                return await self._step(make(), deadline)
            except asyncio.CancelledError:
                if self.machine.state is State.BUSY and not self.closed:
                    release = False
                    self._in_background(self._finish_cancelled())
                raise
        except (OSError, TimeoutError) as exc:
            raise self._fail(socket_error(exc)) from None
        except OperationalError as exc:
            if self.machine.state is State.CLOSED:
                self._fail(exc)
            raise
        finally:
            if release:
                self._lock.release()

    async def _finish_cancelled(self) -> None:
        try:
            with contextlib.suppress(OperationalError, OSError, TimeoutError):
                await self.cancel()
            await self._step(steps.drain(self.machine), self._loop.time() + CANCEL_GRACE)
        except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
            if not self.closed:
                self._fail(socket_error(exc) if not isinstance(exc, OperationalError) else exc)
        finally:
            self._lock.release()

    def _in_background(self, work: Any) -> None:
        task = self._loop.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def cancel(self) -> None:
        """Ask the server to cancel the command this connection is running, over a separate
        connection as libpq does; the command then raises ``QueryCanceled``.  Nothing
        happens when no command runs by then."""
        if self.closed or self.opened is None:
            raise InterfaceError("connection already closed")
        helper = AsyncConnection(self.params)
        try:
            await helper._run(cancel(self.params, self.opened))
        finally:
            helper._disconnect()

    async def wait(self, timeout: Optional[float], more: bool = False) -> None:
        """Wait up to ``timeout`` seconds (None: forever) for more input; at once when
        notifications are waiting, unless ``more`` (for one that has not come yet).  A lost
        connection raises."""
        if self.machine.notifications.items and not more:
            return
        deadline = None if timeout is None else self._loop.time() + max(0.0, timeout)
        with contextlib.suppress(TimeoutError):
            await self._input(deadline)

    def mark_broken(self, reason: str) -> OperationalError:
        """Declare the connection unusable (e.g. a failed health check); the error to raise."""
        return self._fail(OperationalError(reason))

    @property
    def idle_seconds(self) -> float:
        """Seconds since anything was sent or received."""
        return self._loop.time() - self.last_activity

    # -- state -------------------------------------------------------------

    def _fail(self, exc: OperationalError) -> OperationalError:
        """Mark the connection lost; the error to raise now and on every later call."""
        if self.closed != 1:
            self._lost = exc
            self.closed = 2
        self.machine.mark_lost()
        self._disconnect()
        self._wake()
        if self.on_input is not None:  # news for whoever waits on what it routes, too
            self.on_input()
        return exc

    def _check_open(self) -> None:
        if self.closed == 1:
            raise InterfaceError("connection already closed")
        if self._lost is not None:
            raise self._lost

    @property
    def uses_tls(self) -> bool:
        return self._transport is not None and self._transport.get_extra_info(
            "ssl_object") is not None

    async def close(self) -> None:
        """Send Terminate and close; every task waiting on this connection wakes at once
        (with ``InterfaceError``).  Safe to call more than once, from any task."""
        if self.closed == 1:
            return
        self.closed = 1
        goodbye = self.machine.terminate()
        transport = self._transport
        if transport is not None and goodbye and not transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                transport.write(goodbye)
        if transport is not None:
            transport.close()  # what is buffered (the Terminate) goes out first
        self._transport = self._stream = None
        self._wake()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = {0: "open", 1: "closed", 2: "broken"}[self.closed]
        return f"<pgwire_pubsub.aio.AsyncConnection {state} {self.params!r}>"


async def wait_on(waiter: asyncio.Future[None], deadline: Optional[float],
                  loop: asyncio.AbstractEventLoop) -> None:
    """Until ``waiter`` is done, or ``deadline`` (loop time) passes: ``TimeoutError`` then.
    A waiter left waiting (timed out, or the task cancelled) is cancelled."""
    timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
        if not waiter.done():
            waiter.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("timeout expired"))


async def _until(awaitable: Any, deadline: Optional[float], loop: asyncio.AbstractEventLoop
                 ) -> Any:
    """``await awaitable``, with ``TimeoutError`` (the built-in one, on every Python) once
    ``deadline`` (loop time) passes."""
    if deadline is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, max(0.0, deadline - loop.time()))
    except asyncio.TimeoutError:
        raise TimeoutError("timeout expired") from None
