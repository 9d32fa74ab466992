"""Ctrl-C (or a SIGTERM handler that raises) at any point of taking received bytes in:
nothing lost, nothing taken twice, the protocol in step, and no signal mask changed.

A signal handler's exception lands between two steps of Python code, or right after a C
function returns: here one is raised at every line, every bytecode (as PyPy may run a
handler anywhere) and every return from a C function in turn, while a blocking
``SocketIO`` takes in a stream of notifications, notices, a parameter status and a
command's reply in small reads (so that messages straddle them); then whatever the
interrupt cut short is finished by taking in again, and everything must be exactly what
an uninterrupted run gives (protocol/_receiving.py).
"""

from __future__ import annotations

import gc
import select
import signal
import socket
import sys
from functools import partial
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import pytest
from timing import watchdog

import pgwire_pubsub
from pgwire_pubsub import InterfaceError, Notify, OperationalError
from pgwire_pubsub._blocking import connection, socketio
from pgwire_pubsub._blocking import pubsub as blocking_pubsub
from pgwire_pubsub._blocking.socketio import SocketIO
from pgwire_pubsub._shared import pubsub as shared_pubsub
from pgwire_pubsub.protocol import (
    _bulk,
    _dropping,
    _receiving,
    decoder,
    events,
    frontend,
    machine,
    pending,
    steps,
)
from pgwire_pubsub.protocol.events import Bound
from pgwire_pubsub.protocol.machine import Machine, State
from pgwire_pubsub.testing.pgcluster import Server
from pgwire_pubsub.testing.wirebytes import (
    auth_ok,
    backend_key,
    command_complete,
    data_row,
    msg,
    notice,
    notify,
    ready,
    row_description,
)

FILES = {module.__file__ for module in
         (_bulk, _dropping, _receiving, decoder, events, machine, pending, socketio)}
# A command's way out: the procedure, the connection, the step, the machine, the socket.
SENDING_FILES = {module.__file__ for module in
                 (blocking_pubsub, shared_pubsub, connection, steps, machine, socketio)}

# Every bytecode on CPython (every line starts with one); every line on PyPy, whose
# tracing of bytecodes would take hours here.
OPCODES = sys.implementation.name == "cpython"
EVENT = "opcode" if OPCODES else "line"

pytestmark = pytest.mark.skipif(sys.gettrace() is not None or sys.getprofile() is not None,
                                reason="another tracer (coverage) is active")


def parameter_status(name: str, value: str) -> bytes:
    return msg(b"S", name.encode() + b"\0" + value.encode() + b"\0")


def stream(busy: bool, run: int) -> bytes:
    """A run of one sender with payloads of one length (``run`` long), interleaved
    senders, a run of changing lengths, a notice, a parameter status and, with ``busy``,
    the reply to the command in progress among them."""
    parts = [notify(7, "a", f"{n:04}") for n in range(run)]
    parts += [notify(7 + n % 2, "b", "x" * n) for n in range(4)]
    parts.insert(2, notice("careful"))
    parts.insert(5, parameter_status("application_name", "renamed"))
    if busy:
        parts[4:4] = [row_description("x"), data_row(b"1")]
        parts[9:9] = [command_complete("SELECT 1"), ready("T")]
    parts += [notify(9, "c", str(n)) for n in range(4)]
    return b"".join(parts)


def session(busy: bool, bound: Optional[Bound]) -> Machine:
    proto = Machine()
    proto.start({"user": "u"})
    proto.receive_data(auth_ok() + backend_key() + ready())
    while proto.next_message() is not None:
        pass
    proto.bound = bound
    if busy:
        proto.send_command(frontend.query("SELECT 1"))
    return proto


def take_everything(io: SocketIO) -> None:
    """As a driver does: what an interrupt left half taken in first, then each read."""
    while True:
        if io.machine.take_in():
            continue
        if not select.select([io.sock], [], [], 0)[0]:
            return
        io.take_in()


def snapshot(proto: Machine) -> Dict[str, Any]:
    replies = []
    while True:
        message = proto.next_message()
        if message is None:
            break
        replies.append(message)
    return {
        "notifications": proto.notifications.take_all(),
        "replies": replies,
        "state": proto.state,
        "status": proto.transaction_status,
        "parameters": proto.parameters,
        "notices": proto.notices,
        "buffered": proto.buffered,
    }


class Interrupter:
    """Raises KeyboardInterrupt at the ``step``-th line, bytecode or return from a C
    function in ``files`` (the receiving code's); ``fired`` says whether it came to that."""

    def __init__(self, step: int, files: Set[Optional[str]] = FILES) -> None:
        self.step = step
        self.files = files
        self.seen = 0
        self.fired = False

    def _count(self) -> None:
        self.seen += 1
        if self.seen == self.step:
            self.fired = True
            sys.settrace(None)
            sys.setprofile(None)
            raise KeyboardInterrupt

    def trace(self, frame: FrameType, event: str, arg: object) -> Optional[Callable[..., Any]]:
        if frame.f_code.co_filename not in self.files:
            return None
        if OPCODES:
            frame.f_trace_opcodes = True
        if event == EVENT:
            self._count()
        return self.trace

    def profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "c_return" and frame.f_code.co_filename in self.files:
            self._count()

    def run(self, action: Callable[[], object]) -> None:
        sys.settrace(self.trace)
        sys.setprofile(self.profile)
        try:
            action()
        except KeyboardInterrupt:
            assert self.fired
        finally:
            sys.settrace(None)
            sys.setprofile(None)


def run(data: bytes, busy: bool, bound: Optional[Tuple[int, str]],
        step: int = 0) -> Tuple[Dict[str, Any], bool]:
    """Take ``data`` in, interrupted at ``step`` (0: never); the outcome, and whether the
    interrupt came."""
    proto = session(busy, Bound(*bound) if bound else None)
    near, far = socket.socketpair()
    try:
        far.sendall(data)
        io = SocketIO(near, proto)
        interrupter = Interrupter(step)
        if step:
            interrupter.run(lambda: take_everything(io))
        take_everything(io)
        return snapshot(proto), interrupter.fired
    finally:
        near.close()
        far.close()


# name: (a command's reply among them, max_pending and overflow, bytes per read, a run's
# length): reads that cut messages, and one large enough for the bulk path (_bulk.py).
CASES = {
    "notifications": (False, None, 41, 6),
    "a command's reply among them": (True, None, 41, 6),
    "max_pending, raise": (False, (5, "raise"), 41, 6),
    "max_pending, drop-oldest": (False, (5, "drop-oldest"), 41, 6),
    "a long run in one read": (False, None, 1000, 14),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_interrupt_anywhere_while_taking_bytes_in_loses_nothing(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    busy, bound, read, length = CASES[case]
    monkeypatch.setattr(socketio, "_SIZES", (read,))
    data = stream(busy, length)
    expected, _ = run(data, busy, bound)
    assert expected["buffered"] == 0 and len(expected["notices"]) == 1
    assert expected["parameters"]["application_name"] == "renamed"
    if busy:
        assert expected["state"] is State.READY and expected["status"] == "T"
        assert len(expected["replies"]) == 4
    if bound is None:
        assert sum(type(e) is Notify for e in expected["notifications"]) == length + 8
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    step = 0
    while True:
        step += 1
        outcome, fired = run(data, busy, bound, step)
        if not fired:
            assert step > 500, "the interrupt never came"
            break
        assert outcome == expected, f"interrupted at step {step}"
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == mask  # nothing held or changed


def test_a_read_and_its_taking_in_change_no_signal_mask() -> None:
    """Each change of the signal mask is a system call (three per read, before the
    receiving buffer): a plain socket's read needs none."""
    calls: List[str] = []
    proto = session(False, None)
    near, far = socket.socketpair()
    try:
        far.sendall(notify(7, "a", "x"))
        io = SocketIO(near, proto)

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            if event == "c_call":
                calls.append(getattr(arg, "__name__", "?"))

        sys.setprofile(profile)
        try:
            io.take_in()
        finally:
            sys.setprofile(None)
    finally:
        near.close()
        far.close()
    assert proto.notifications.take_all() == [Notify(7, "a", "x")]
    if sys.implementation.name == "cpython":
        assert "recv" in calls or "any" in calls  # (only the C call around it is seen)
    else:
        assert "len" in calls  # (PyPy reports some C calls, not the read's)
    assert "pthread_sigmask" not in calls


class _InterruptsOnce:
    """A bound whose first check is cut short by Ctrl-C: the moment of taking in after a
    read's replies and state are set and before the read is marked taken in."""

    def __init__(self) -> None:
        self.fired = False

    def enforce(self, queue: Any) -> None:
        if not self.fired:
            self.fired = True
            raise KeyboardInterrupt


def test_a_read_cut_short_after_its_reply_does_not_undo_the_next_command() -> None:
    """The reply to a command taken in up to its state (READY), then Ctrl-C: the next
    command drains that reply and is sent; finishing the old read must not set READY on
    top of it, or the new reply would arrive 'while the connection was ready'."""
    proto = session(True, None)
    proto.bound = _InterruptsOnce()  # type: ignore[assignment]
    proto.inbound.extend(command_complete("SELECT 1") + ready("I"))
    with pytest.raises(KeyboardInterrupt):
        proto.take_in()
    assert proto.state is State.READY and proto.has_queued_replies
    while proto.has_queued_replies:  # as steps.drain does
        proto.next_message()
    proto.send_command(frontend.query("SELECT 2"))
    proto.take_in()  # what a driver does before it waits
    assert proto.state is State.BUSY
    proto.receive_data(command_complete("SELECT 1") + ready("I"))
    assert proto.state is State.READY


def test_an_interrupt_anywhere_while_a_command_goes_out_leaves_no_hang(pg: Server) -> None:
    """Ctrl-C at every line, bytecode and C return of a NOTIFY's way out (and its reply's
    way back): afterwards the connection either says a message was cut short, or runs the
    next command, with its own reply.  A command handed out and interrupted before a byte
    of it was written once left the connection waiting for its reply for ever."""
    pubsub = pgwire_pubsub.connect(pg.dsn(), sslmode="disable")
    expected = pubsub.conn.execute("SELECT 'after'")
    step = 0
    try:
        while True:
            step += 1
            if pubsub.conn.closed:
                pubsub.close()
                gc.collect()  # not inside the next run: a finalizer is not the code under test
                pubsub = pgwire_pubsub.connect(pg.dsn(), sslmode="disable")
            interrupter = Interrupter(step, SENDING_FILES)
            interrupter.run(partial(pubsub.notify, "ch", "x"))
            if not interrupter.fired:
                assert step > 100, "the interrupt never came"
                break
            try:
                with watchdog(pubsub):  # a hang fails, not hangs
                    assert pubsub.conn.execute("SELECT 'after'") == expected, step
            except OperationalError as exc:
                assert "interrupted while being sent" in str(exc), step
            except InterfaceError:
                pytest.fail(f"interrupted at step {step}, the next command never ended")
    finally:
        pubsub.close()
