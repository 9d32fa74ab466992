"""Threads and signals against a real server: close() from another thread or a signal
handler wakes a blocked call; only close() may cross threads; Ctrl-C leaves the connection
usable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import InterfaceError, Notify, OperationalError, PubSub, ReconnectPolicy
from pgwire_pubsub._blocking import socketio as socketio_module
from pgwire_pubsub._blocking.socketio import SocketIO
from pgwire_pubsub.protocol.events import Event
from pgwire_pubsub.protocol.machine import Machine
from pgwire_pubsub.testing.faultproxy import FaultProxy
from pgwire_pubsub.testing.pgcluster import LineReader, Server, wait_for
from pgwire_pubsub.testing.wirebytes import notification_size, unread_bytes

TIMEOUT = 10.0  # seconds: a failure guard, never a performance target
PROMPT = 2.0  # "promptly": a woken call ends well within this
ROOT = Path(__file__).resolve().parent.parent


# -- helpers ---------------------------------------------------------------


def waiting_in_select(thread: threading.Thread) -> bool:
    """True while ``thread`` is inside the transport's wait for the server (select)."""
    assert thread.ident is not None
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code.co_name == "wait_readable":
            return True
        frame = frame.f_back
    return False


def backend_state(pg: Server, pid: int) -> str:
    return pg.psql(f"SELECT state FROM pg_stat_activity WHERE pid = {pid}").strip()


def backend_gone(pg: Server, pid: int) -> Callable[[], bool]:
    def gone() -> bool:
        return pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}") == "0\n"

    return gone


class Runner:
    """Runs ``target`` in a daemon thread; ``started`` is set right before it is called."""

    def __init__(self, target: Callable[[], Any]) -> None:
        self.started = threading.Event()
        self.error: Optional[BaseException] = None
        self._target = target
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.started.set()
        try:
            self._target()
        except BaseException as exc:
            self.error = exc

    def wait_blocked(self, pg: Server, pid: int) -> None:
        """Until the thread waits in select on an idle connection."""
        assert self.started.wait(TIMEOUT), "the thread never started"
        wait_for(lambda: backend_state(pg, pid) == "idle", TIMEOUT, message="an idle backend")
        wait_for(lambda: waiting_in_select(self.thread), TIMEOUT, message="a blocked thread")

    def join(self, timeout: float = TIMEOUT) -> float:
        """Join within ``timeout``; the seconds it took."""
        start = time.monotonic()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the thread is still running after {timeout} s"
        return time.monotonic() - start


def collect_events(pubsub: PubSub) -> Tuple[Runner, List[Any]]:
    """A Runner looping over ``pubsub.events(select_timeout=None)``, and the list that loop
    appends each event to."""
    got: List[Any] = []

    def loop() -> None:
        for event in pubsub.events(select_timeout=None):
            got.append(event)

    return Runner(loop), got


@pytest.fixture
def connect(pg: Server) -> Iterator[Callable[..., PubSub]]:
    opened: List[PubSub] = []

    def make(**over: Any) -> PubSub:
        options = {k: over.pop(k) for k in ("reconnect", "max_pending") if k in over}
        ps = pgpubsub.connect(**pg.dsn_kwargs(**over), **options)
        opened.append(ps)
        return ps

    yield make
    for ps in opened:
        ps.close()


# -- close() from another thread ------------------------------------------------------


def test_close_from_another_thread_ends_events(pg: Server, connect: Callable[..., PubSub]) -> None:
    pubsub = connect()
    pubsub.listen("threads_close")
    pid = pubsub.conn.get_backend_pid()
    runner, got = collect_events(pubsub)
    pg.psql("NOTIFY threads_close, 'before'")  # the loop is live and delivering
    wait_for(lambda: got, TIMEOUT, message="the first notification")
    runner.wait_blocked(pg, pid)

    pubsub.close()
    assert runner.join(PROMPT) < PROMPT
    assert runner.error is None, f"events() raised {runner.error!r} instead of ending"
    assert [e.payload for e in got] == ["before"]
    assert pubsub.conn.closed == 1


def test_close_from_another_thread_wakes_get_event(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = connect()
    pubsub.listen("threads_get_event")
    pid = pubsub.conn.get_backend_pid()
    runner = Runner(lambda: pubsub.get_event(select_timeout=None))
    runner.wait_blocked(pg, pid)

    pubsub.close()
    assert runner.join(PROMPT) < PROMPT
    assert isinstance(runner.error, InterfaceError), runner.error
    assert "closed" in str(runner.error)
    assert pubsub.conn.closed == 1
    with pytest.raises(InterfaceError):
        pubsub.get_event()


def test_close_returns_at_once_while_another_thread_waits(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = connect()
    pid = pubsub.conn.get_backend_pid()
    runner = Runner(lambda: list(pubsub.events(select_timeout=None)))
    runner.wait_blocked(pg, pid)
    start = time.monotonic()
    pubsub.close()
    pubsub.close()  # twice is fine
    assert time.monotonic() - start < PROMPT
    runner.join(PROMPT)
    assert runner.error is None
    assert pubsub.conn.closed == 1


def test_a_second_thread_gets_interface_error_naming_the_rule(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = connect()
    pubsub.listen("threads_rule")
    pid = pubsub.conn.get_backend_pid()
    runner, got = collect_events(pubsub)
    runner.wait_blocked(pg, pid)

    for call in (
        lambda: pubsub.notify("threads_rule", "from the second thread"),
        lambda: pubsub.listen("threads_other"),
        lambda: pubsub.conn.execute("SELECT 1"),
    ):
        with pytest.raises(InterfaceError) as info:
            call()
        assert "another thread is using this connection" in str(info.value)
        assert "only close()" in str(info.value)

    # The refused calls changed nothing: the loop still delivers, and only what psql sent.
    assert runner.thread.is_alive()
    pg.psql("NOTIFY threads_rule, 'still delivered'")
    wait_for(lambda: got, TIMEOUT, message="a notification in the loop")
    assert [e.payload for e in got] == ["still delivered"]
    assert "threads_other" not in pubsub.channels
    pubsub.close()
    runner.join(PROMPT)
    assert runner.error is None


def test_a_call_from_a_signal_handler_inside_a_call_is_refused(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    """The handler's call gets InterfaceError naming this thread; the interrupted call
    goes on to its own answer."""
    pubsub = connect()
    pid = pubsub.conn.get_backend_pid()
    refused: List[BaseException] = []

    def handler(signum: int, frame: Any) -> None:
        try:
            pubsub.conn.execute("SELECT 'from the handler'")
        except InterfaceError as exc:
            refused.append(exc)

    def send_when_running() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # for the main thread
        wait_for(lambda: backend_state(pg, pid) == "active", TIMEOUT, message="the query")
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        sender = threading.Thread(target=send_when_running, daemon=True)
        sender.start()
        rows = pubsub.conn.execute("SELECT 'the call', pg_sleep(1)")
        sender.join(TIMEOUT)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert rows == [("the call", "")]
    assert len(refused) == 1
    assert "in progress in this very thread" in str(refused[0])
    assert pubsub.conn.execute("SELECT 'next'") == [("next",)]


def test_a_claim_an_interrupt_left_behind_is_taken_over(connect: Callable[..., PubSub]) -> None:
    """An interrupt landing between taking the connection and the call's cleanup leaves
    a claim of this thread with no call running; the next call goes ahead."""
    pubsub = connect()
    pubsub.conn._claim[0] = (threading.get_ident(), object())
    pubsub.listen("threads_claim")
    pubsub.notify("threads_claim", "after")
    event = pubsub.get_event(select_timeout=TIMEOUT)
    assert isinstance(event, Notify) and event.payload == "after"
    assert pubsub.conn._claim == {}


def test_close_during_a_reconnection_attempt_ends_events(pg: Server) -> None:
    proxy = FaultProxy(pg.host, pg.port)
    pubsub = pgpubsub.connect(
        **pg.dsn_kwargs(host=proxy.host, port=proxy.port, sslmode="disable"),
        reconnect=ReconnectPolicy(initial_delay=0.01, max_delay=0.05),
    )
    runner: Optional[Runner] = None
    try:
        pubsub.listen("threads_reconnect")
        pid = pubsub.conn.get_backend_pid()
        runner = Runner(lambda: list(pubsub.events(select_timeout=None)))
        runner.wait_blocked(pg, pid)

        proxy.blackhole()  # the next connection attempt hangs in its startup...
        proxy.cut()  # ...which starts now
        wait_for(lambda: proxy.connections == 2, TIMEOUT, message="a reconnection attempt")
        pubsub.close()  # while the attempt is in progress
        proxy.passthrough()  # the attempt succeeds after all

        runner.thread.join(3.0)  # the attempt completes within milliseconds
        assert not runner.thread.is_alive(), "events() went on after close()"
        assert pubsub.conn.closed == 1
    finally:
        pubsub.close()
        proxy.close()
        if runner is not None:
            runner.thread.join(TIMEOUT)


# -- Ctrl-C right after bytes were received -----------------------------------------


AFTER_THE_READ = "c_return" if sys.implementation.name == "cpython" else "return"


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
def test_ctrl_c_right_after_a_read_loses_nothing(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    pubsub = connect(sslmode="disable")  # the bytes counted below are the protocol's own
    pubsub.listen("threads_sigint")
    pairs = [("threads_sigint", f"n{i}") for i in range(3)]
    out = pg.psql(
        "BEGIN; "
        + "".join(f"SELECT pg_notify('{c}', '{p}'); " for c, p in pairs)
        + "SELECT pg_backend_pid(); COMMIT;"
    )
    sender = int(out.split()[-1])
    expected = sum(notification_size(c, p) for c, p in pairs)
    fd = pubsub.conn.fileno()
    wait_for(lambda: unread_bytes(fd) >= expected, TIMEOUT, message="the notifications")
    main = threading.main_thread().ident
    assert main is not None

    def signal_after_recv(frame: Any, event: str, arg: Any) -> None:
        # The moment a real Ctrl-C can land: the C call that reads has returned (the
        # recv() system call has brought the bytes into the connection's buffer), and
        # CPython runs the handler at its next check, before any more code.  PyPy
        # reports no C call there: the read's own return is the nearest moment.
        if event == AFTER_THE_READ and frame.f_code.co_name == "_read_into":
            sys.setprofile(None)
            signal.pthread_kill(main, signal.SIGINT)

    # As an interactive run has it, even when the tests run as a background job
    # (which starts with SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.setprofile(signal_after_recv)
    try:
        with pytest.raises(KeyboardInterrupt):
            pubsub.get_event(select_timeout=TIMEOUT)
    finally:
        sys.setprofile(None)
        signal.signal(signal.SIGINT, previous)

    got: List[Optional[Event]] = []
    while len(got) < len(pairs):
        got.append(pubsub.get_event(select_timeout=2))
        if got[-1] is None:
            break
    assert got == [Notify(sender, c, p) for c, p in pairs]


# -- signals, in a child process ------------------------------------------------------

PRELUDE = '''
import faulthandler, os, signal, sys, threading, time
import pgwire_pubsub

# A child that never reports is asked for its threads' stacks (Child.line) before it
# is killed: a hang then says where it was.
faulthandler.register(signal.SIGUSR2, all_threads=True)

# A process started as a background job inherits SIGINT ignored, and Python then
# installs no KeyboardInterrupt handler: give it the one an interactive run has.
signal.signal(signal.SIGINT, signal.default_int_handler)

def say(text):
    print(text, flush=True)

def when_waiting(text):
    """Print ``text`` once the main thread waits in select for the server."""
    main = threading.main_thread().ident

    def watch():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGUSR1})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            frame = sys._current_frames().get(main)
            while frame is not None:
                if frame.f_code.co_name == "wait_readable":
                    say(text)
                    return
                frame = frame.f_back
            time.sleep(0.005)  # polling interval
        say("never blocked")

    threading.Thread(target=watch, daemon=True).start()

pubsub = pgwire_pubsub.connect(os.environ["PGWIRE_SCRIPT_DSN"])
say(f"pid {pubsub.conn.get_backend_pid()}")
'''


class Child:
    def __init__(self, pg: Server, tmp_path: Path, body: str) -> None:
        script = tmp_path / "child.py"
        script.write_text(PRELUDE + textwrap.dedent(body))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
        env["PGWIRE_SCRIPT_DSN"] = pg.dsn()
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.out = LineReader(self.proc.stdout)
        self.pid = int(self.line("pid ").split()[1])

    def line(self, text: str, timeout: float = TIMEOUT) -> str:
        try:
            return self.out.wait_for_line(text, timeout)
        except AssertionError:
            self.proc.send_signal(signal.SIGUSR2)  # the stacks, on stderr (PRELUDE)
            try:
                _, err = self.proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate(timeout=TIMEOUT)
            raise AssertionError(f"{text!r} never came; stderr:\n{err}") from None

    def finish(self) -> str:
        """Wait for the exit; its stderr.  Fails unless the exit status is 0."""
        try:
            _, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        assert self.proc.returncode == 0, f"exit status {self.proc.returncode}:\n{err}"
        return err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def child(pg: Server, tmp_path: Path) -> Iterator[Callable[[str], Child]]:
    started: List[Child] = []

    def start(body: str) -> Child:
        started.append(Child(pg, tmp_path, body))
        return started[-1]

    yield start
    for proc in started:
        proc.kill()


def test_close_from_a_signal_handler_ends_events(pg: Server, child: Callable[[str], Child]) -> None:
    proc = child(
        """
        pubsub.listen("threads_signal")
        signal.signal(signal.SIGUSR1, lambda *args: pubsub.close())
        when_waiting("ready")
        for event in pubsub.events(select_timeout=None):
            say(f"event {event!r}")
        say(f"ended closed={pubsub.conn.closed}")
        """
    )
    proc.line("ready")
    proc.proc.send_signal(signal.SIGUSR1)
    proc.line("ended")
    proc.finish()
    assert "ended closed=1" in proc.out.lines
    assert not any(line.startswith("event") for line in proc.out.lines)
    wait_for(backend_gone(pg, proc.pid), TIMEOUT, message="the backend to exit")


def test_ctrl_c_in_events_leaves_the_pubsub_usable(
    pg: Server, child: Callable[[str], Child]
) -> None:
    proc = child(
        """
        pubsub.listen("threads_ctrl_c")
        when_waiting("ready")
        try:
            for event in pubsub.events(select_timeout=None):
                say(f"event {event!r}")
        except KeyboardInterrupt:
            say("interrupted")
        pubsub.notify("threads_ctrl_c", "after ctrl-c")
        event = pubsub.get_event(select_timeout=5)
        say(f"payload {event.payload if event else None!r}")
        say(f"then {pubsub.get_event(select_timeout=0.2)!r}")
        pubsub.close()
        """
    )
    proc.line("ready")
    proc.proc.send_signal(signal.SIGINT)
    proc.line("interrupted")
    proc.line("then")
    proc.finish()
    assert "payload 'after ctrl-c'" in proc.out.lines
    assert "then None" in proc.out.lines
    assert not any(line.startswith("event") for line in proc.out.lines)


def test_ctrl_c_during_a_command_then_the_next_command_works(
    pg: Server, child: Callable[[str], Child]
) -> None:
    proc = child(
        """
        when_waiting("waiting")
        try:
            pubsub.conn.execute("SELECT pg_sleep(1)")
            say("completed")
        except KeyboardInterrupt:
            say("interrupted")
        say(f"rows {pubsub.conn.execute('SELECT 42, pg_backend_pid()')!r}")
        pubsub.listen("threads_after")
        pubsub.notify("threads_after", "in step")
        say(f"event {pubsub.get_event(select_timeout=5)!r}")
        pubsub.close()
        """
    )
    proc.line("waiting")
    wait_for(
        lambda: pg.psql(
            f"SELECT state, query FROM pg_stat_activity WHERE pid = {proc.pid}"
        ).startswith("active|SELECT pg_sleep(1)"),
        TIMEOUT,
        message="the query to run",
    )
    proc.proc.send_signal(signal.SIGINT)
    proc.line("event")
    proc.finish()
    assert "interrupted" in proc.out.lines
    # The same backend (no reconnection), and the reply is this command's, not pg_sleep's.
    assert f"rows [('42', '{proc.pid}')]" in proc.out.lines
    assert f"event Notify({proc.pid}, 'threads_after', 'in step')" in proc.out.lines


def test_close_from_another_thread_wakes_a_running_command(
    pg: Server, connect: Callable[..., PubSub]
) -> None:
    """close() from another thread while a command waits: InterfaceError, not a lost
    connection, and the connection ends up closed (1), not broken (2)."""
    pubsub = connect()
    pid = pubsub.conn.get_backend_pid()
    runner = Runner(lambda: pubsub.conn.execute("SELECT pg_sleep(5)"))
    assert runner.started.wait(TIMEOUT)
    wait_for(lambda: backend_state(pg, pid) == "active", TIMEOUT, message="the query")
    wait_for(lambda: waiting_in_select(runner.thread), TIMEOUT, message="a blocked thread")
    pubsub.close()
    assert runner.join(PROMPT) < PROMPT
    assert isinstance(runner.error, InterfaceError)
    assert not isinstance(runner.error, OperationalError)
    assert pubsub.conn.closed == 1


# -- TLS: the signal mask while the ssl module reads ------------------------------------
#
# CPython's ssl module runs signal handlers inside its read, after decrypting, and drops
# the bytes when one raises; so a TLS read holds Ctrl-C and SIGTERM (SocketIO._read_tls).
# A plain socket needs no hold (test_interrupts.py).


@pytest.fixture
def transport() -> Iterator[SocketIO]:
    near, far = socket.socketpair()
    yield SocketIO(near, Machine())
    near.close()
    far.close()


def tls_read(data: bytes = b"some bytes") -> Callable[[int], bytes]:
    return lambda size: data


def test_a_handler_raising_as_the_mask_changes_leaves_it_as_it_was(
    monkeypatch: pytest.MonkeyPatch, transport: SocketIO
) -> None:
    """pthread_sigmask runs the handlers of signals already due after changing the mask;
    one that raises there must not leave Ctrl-C and SIGTERM blocked for good."""
    real = signal.pthread_sigmask

    def due_handler_raises(how: int, mask: Any) -> Any:
        previous = real(how, mask)
        if how == signal.SIG_BLOCK and set(mask):
            raise KeyboardInterrupt
        return previous

    before = real(signal.SIG_BLOCK, ())
    monkeypatch.setattr(socketio_module, "_sigmask", due_handler_raises)
    buffer = bytearray()
    with pytest.raises(KeyboardInterrupt):
        transport._read_tls(buffer, tls_read())
    assert real(signal.SIG_BLOCK, ()) == before
    assert buffer == b""


def skipped_restore(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the first restore of the mask raise before it happens, as a handler does
    when it runs at the start of _read_tls's finally; returns the real function."""
    real = signal.pthread_sigmask
    skipped: List[bool] = []

    def handler_runs_first(how: int, mask: Any) -> Any:
        if how == signal.SIG_SETMASK and not skipped:
            skipped.append(True)
            raise KeyboardInterrupt
        return real(how, mask)

    monkeypatch.setattr(socketio_module, "_sigmask", handler_runs_first)
    return real


def test_a_restore_skipped_by_an_interrupt_is_done_later(
    monkeypatch: pytest.MonkeyPatch, transport: SocketIO
) -> None:
    real = skipped_restore(monkeypatch)
    before = real(signal.SIG_BLOCK, ())
    buffer = bytearray()
    with pytest.raises(KeyboardInterrupt):
        transport._read_tls(buffer, tls_read())
    assert buffer == b"some bytes" and not transport.receiving
    assert signal.SIGINT in real(signal.SIG_BLOCK, ())  # still held: the restore was skipped
    transport.release_interrupts()
    assert real(signal.SIG_BLOCK, ()) == before
    transport.release_interrupts()  # nothing left to do
    assert real(signal.SIG_BLOCK, ()) == before


def test_a_tls_call_puts_back_a_mask_an_interrupt_left_held(
    pg: Server, monkeypatch: pytest.MonkeyPatch, connect: Callable[..., PubSub]
) -> None:
    """Ctrl-C and SIGTERM are never left blocked once the call is over, even when the
    interrupt lands where _read_tls would have put the mask back."""
    if not pg.has_tls:
        pytest.skip("server has no TLS")
    pubsub = connect(sslmode="require")
    real = skipped_restore(monkeypatch)
    before = real(signal.SIG_BLOCK, ())
    with pytest.raises(KeyboardInterrupt):
        pubsub.conn.execute("SELECT 1")
    assert real(signal.SIG_BLOCK, ()) == before
    assert pubsub.conn.execute("SELECT 2") == [("2",)]


def test_an_interrupt_inside_the_tls_read_is_marked(transport: SocketIO) -> None:
    """As when another thread took the signal: the mask is put back, and ``receiving``
    stays set so that the connection is marked lost."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())

    def interrupted(size: int) -> bytes:
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, ())  # held here
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        transport._read_tls(bytearray(), interrupted)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == before
    assert transport.receiving


def test_a_tls_read_holds_nothing_after(transport: SocketIO) -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    buffer = bytearray()
    transport._read_tls(buffer, tls_read())
    assert buffer == b"some bytes" and not transport.receiving
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == before


@pytest.mark.parametrize("sslmode", ["disable", "require"])
@pytest.mark.parametrize("taker", ["main thread", "another thread"])
def test_every_sigterm_during_notifies_interrupts(
    pg: Server, child: Callable[[str], Child], taker: str, sslmode: str
) -> None:
    """SIGTERM at random moments of a notify loop reaches its handler every time, in
    whatever thread the signal lands, and the connection goes on working unless the
    handler cut a message being sent: what was received is never lost
    (protocol/_receiving.py).  Over TLS, when another thread takes the signal, the
    handler may run inside the ssl module's read, which then drops what it decrypted:
    the connection says so.  (The handler may also run inside a garbage collector
    callback, where the interpreter ignores what it raises: that it ran is what counts
    here.)"""
    if sslmode == "require" and not pg.has_tls:
        pytest.skip("server has no TLS")
    proc = child(
        f"""
        import random

        def connect():
            return pgwire_pubsub.connect(os.environ["PGWIRE_SCRIPT_DSN"], sslmode={sslmode!r})

        pubsub.close()
        pubsub = connect()

        handled = []

        def interrupt(signum, frame):
            handled.append(signum)
            raise KeyboardInterrupt

        # The sender thread and the main thread speak through pipes: a lock (a Timer's
        # start, an Event) taken by the main thread as the handler raises can be left
        # broken by it, which would fail this test for the test's own sake.
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()

        def send_sigterms():
            if {taker == "main thread"!r}:  # the main thread is then the only one to take it
                signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGTERM}})
            while os.read(go_r, 1):
                time.sleep(random.uniform(0.0, 0.02))  # a random moment of the loop
                os.kill(os.getpid(), signal.SIGTERM)
                os.write(done_w, b"x")

        signal.signal(signal.SIGTERM, interrupt)
        threading.Thread(target=send_sigterms, daemon=True).start()
        lost = set()
        for trial in range(40):
            deadline = time.monotonic() + 5
            handled.clear()
            try:
                os.write(go_w, b"x")  # returns before the signal can come
                while not handled and time.monotonic() < deadline:
                    pubsub.notify("threads_sigterm", "x")
            except KeyboardInterrupt:
                pass
            if not handled:
                blocked = signal.pthread_sigmask(signal.SIG_BLOCK, ())
                say(f"trial {{trial}}: not interrupted; blocked {{blocked}}")
                break
            os.read(done_r, 1)  # the sender is done with this trial
            try:
                pubsub.verify(timeout=5)
            except pgwire_pubsub.OperationalError as exc:
                lost.add(str(exc))
                pubsub = connect()
        else:
            say(f"all interrupted; lost: {{sorted(lost)}}")
        pubsub.close()
        """
    )
    # 40 trials, each a connection's worth of work (over TLS too): about 6 s on PyPy on an
    # idle machine, so the guard is well above what a loaded one takes.
    report = proc.line("interrupted", 60.0)
    err = proc.finish()
    assert report.startswith("all interrupted"), f"{report}\n{err}"
    lost = report.partition("lost: ")[2]
    allowed = {"a message was interrupted while being sent"}
    if sslmode == "require" and taker == "another thread":
        allowed.add("received bytes were interrupted while being decrypted (TLS), so the "
                    "stream can no longer be trusted; reconnect")
    assert set(eval(lost)) <= allowed, lost
