"""The ``pgwire-pubsub`` command, run as a real process against a real server."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, cast

import pytest

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import Notify, PubSub
from pgwire_pubsub.cli import build_parser, main
from pgwire_pubsub.localserver import find_pg_bindir, pgserver_bindir
from pgwire_pubsub.testing.pgcluster import LineReader, Server, make_dsn

TIMEOUT = 30  # seconds: a failure guard only
DEMO_TIMEOUT = 120
# Starts the command with Ctrl-C at its default, whatever our own parent ignores.
LAUNCH = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
          "os.execv(sys.executable, [sys.executable, '-m', 'pgwire_pubsub', *sys.argv[1:]])")


# -- helpers ---------------------------------------------------------------


def unique(prefix: str = "cli") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def clean_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGCONNECT_TIMEOUT="10", PYTHONIOENCODING="utf-8", **extra)
    return env


def connection(pg: Server, role: str = "postgres") -> Tuple[List[str], Dict[str, str]]:
    """Options for the command (-h, -p, -U, -d; --dsn for any other setting) and its
    environment (the password, if any, in PGPASSWORD: never on the command line)."""
    params = pg.dsn_kwargs(role)
    password = params.pop("password", None)
    args = ["-h", str(params.pop("host")), "-p", str(params.pop("port")),
            "-U", str(params.pop("user")), "-d", str(params.pop("dbname"))]
    if params:
        args += ["--dsn", make_dsn(params)]
    env = clean_env() if password is None else clean_env(PGPASSWORD=str(password))
    return args, env


def run_cli(*args: str, env: Optional[Dict[str, str]] = None, input: Optional[str] = None,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgwire_pubsub", *args], env=env or clean_env(), input=input,
        stdin=subprocess.DEVNULL if input is None else None, capture_output=True,
        encoding="utf-8", timeout=timeout)


class Cli:
    """The command running in the background; its output lines are collected as they come."""

    def __init__(self, *args: str, env: Dict[str, str], stdin: Any = subprocess.DEVNULL,
                 collect_stdout: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args], env=env, stdin=stdin,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", bufsize=1)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if collect_stdout:
            self.out = LineReader(self.proc.stdout)
        self.err = LineReader(self.proc.stderr)

    def wait_ready(self, text: str = "listening on") -> str:
        return self.err.wait_for_line(text, TIMEOUT)

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """SIGTERM first, so that a demo removes its server; then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def spawn() -> Iterator[Any]:
    """``spawn(*args, env=...)``: a Cli, killed after the test if still running."""
    started: List[Cli] = []

    def make(*args: str, **kwargs: Any) -> Cli:
        cli = Cli(*args, **kwargs)
        started.append(cli)
        return cli

    yield make
    for cli in started:
        cli.stop()


@pytest.fixture
def peer(pg: Server) -> Iterator[PubSub]:
    """A library connection that sends and receives alongside the command."""
    with pgpubsub.connect(**pg.dsn_kwargs()) as ps:
        yield ps


def receive(ps: PubSub, count: int) -> List[Notify]:
    got: List[Notify] = []
    while len(got) < count:
        event = ps.get_event(select_timeout=TIMEOUT)
        assert event is not None, f"only {len(got)} of {count} notifications came"
        assert isinstance(event, Notify)
        got.append(event)
    return got


def backend_pid(ready_line: str) -> str:
    found = re.search(r"backend pid (\d+)", ready_line)
    assert found, ready_line
    return found.group(1)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- help and usage --------------------------------------------------------


@pytest.mark.parametrize("command", ["", "listen", "notify", "demo"])
def test_help_shows_examples(command: str) -> None:
    proc = run_cli(*([command] if command else []), "--help")
    assert proc.returncode == 0, proc.stderr
    assert "examples:" in proc.stdout
    assert re.search(rf"^  pgwire-pubsub {command or 'listen'} ", proc.stdout, re.M)
    assert "exit codes:" in proc.stdout
    if command:  # Python 3.13's argparse names the metavar once: "-h, --host HOSTNAME"
        assert re.search(r"-h( HOSTNAME)?, --host HOSTNAME", proc.stdout)


def error_lines(stderr: str) -> List[str]:
    """The lines after the usage, which say what is wrong."""
    return [line for line in stderr.splitlines() if line.startswith("pgwire-pubsub")]


@pytest.mark.parametrize("command", ["listen", "notify", "demo"])
def test_h_is_the_host_not_help(command: str) -> None:
    proc = run_cli(command, "-h")
    assert proc.returncode == 2
    assert "expected one argument" in proc.stderr
    assert error_lines(proc.stderr)[-1] == (
        f"pgwire-pubsub {command}: -h is the server's host, as in psql; for help, use --help")


@pytest.mark.parametrize("args", [["-h"], [], ["frobnicate"], ["listen"]])
def test_usage_errors_point_to_help(args: List[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert error_lines(proc.stderr)[-1].endswith(": for help, use --help")


@pytest.mark.parametrize("value", ["abc", "99999999999"])
def test_a_bad_option_value_names_the_option(value: str) -> None:
    proc = run_cli("listen", "x", "-p", value)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == [
        f'pgwire-pubsub: error: -p/--port: invalid integer value "{value}" for connection '
        'option "port"']  # and not "invalid dsn": no connection string was given


def test_a_bad_environment_value_does_not_speak_of_a_dsn() -> None:
    proc = run_cli("listen", "x", env=clean_env(PGPORT="abc"))
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == ['pgwire-pubsub: error: invalid connection settings: '
                                        'invalid integer value "abc" for connection option "port"']


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["listen"],
    ["listen", "--bogus", "x"],
    ["listen", "--count", "0", "x"],
    ["listen", "--timeout", "-1", "x"],
    ["listen", "x" * 64],
    ["listen", "--dsn", "sslmode=bogus", "x"],
    ["listen", "-d", "host=a", "--dsn", "host=b", "x"],
    ["notify"],
    ["notify", "x", "p" * 8000],
    ["demo", "--server", "local", "--dsn", "host=a"],
])
def test_usage_errors_exit_2(args: List[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip()
    assert "Traceback" not in proc.stderr


def test_no_option_takes_a_password() -> None:
    proc = run_cli("notify", "--password=secret", "x", "y")
    assert proc.returncode == 2
    assert "ignored explicit argument 'secret'" in proc.stderr
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    # A subparsers action: its choices map each command to its parser.
    choices = cast(Dict[str, argparse.ArgumentParser], subparsers.choices)
    for command, sub in choices.items():
        for action in sub._actions:
            if any("pass" in option.lower() for option in action.option_strings):
                assert action.nargs == 0, (command, action.option_strings)


def test_python_m_and_the_script_agree() -> None:
    script = Path(sys.executable).parent / "pgwire-pubsub"
    if not script.exists():
        pytest.skip("the pgwire-pubsub script is not installed next to this Python")
    installed = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                               timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert installed.returncode == 0
    expected = f"pgwire-pubsub {pgpubsub.__version__}\n"
    assert installed.stdout == run_cli("--version").stdout == expected


# -- listen ----------------------------------------------------------------


def test_listen_prints_each_notification_on_one_line(pg: Server, peer: PubSub,
                                                     spawn: Any) -> None:
    channel = unique("Plain Chan")
    args, env = connection(pg)
    cli = spawn("listen", "--count", "3", channel, *args, env=env)
    cli.wait_ready()
    sent = ["hello", "tab\there\nnew line \\ end", ""]
    peer.notify_many([(channel, payload) for payload in sent])
    assert cli.wait() == 0, cli.err.lines
    assert len(cli.out.lines) == 3
    rows = [line.split("\t") for line in cli.out.lines]
    for row in rows:
        assert len(row) == 4
        received = datetime.datetime.fromisoformat(row[0])
        assert received.tzinfo is not None
        assert abs(received - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 60
        assert row[1] == channel
        assert row[2] == str(peer.conn.get_backend_pid())
    assert [row[3] for row in rows] == ["hello", "tab\\there\\nnew line \\\\ end", ""]


def test_listen_json(pg: Server, peer: PubSub, spawn: Any) -> None:
    first, second = unique("json"), unique("json")
    args, env = connection(pg)
    cli = spawn("listen", "--json", "--count", "6", first, second, *args, env=env)
    cli.wait_ready()
    sent = [(first, '{"id": 1, "tags": ["x", null]}'), (second, "not json"),
            (first, '"quoted"'), (first, "42"), (second, "NaN"), (first, "héllo ✓ 🐘")]
    peer.notify_many(sent)
    assert cli.wait() == 0, cli.err.lines
    records = [json.loads(line) for line in cli.out.lines]
    assert [(r["channel"], r["payload"]) for r in records] == [
        (first, {"id": 1, "tags": ["x", None]}), (second, "not json"), (first, "quoted"),
        (first, 42), (second, "NaN"), (first, "héllo ✓ 🐘")]
    assert {r["pid"] for r in records} == {peer.conn.get_backend_pid()}
    assert all(datetime.datetime.fromisoformat(r["time"]) for r in records)
    assert "🐘" in cli.out.lines[-1]  # UTF-8 as is, not \u escapes


def test_listen_json_on_an_ascii_stdout(pg: Server, peer: PubSub, spawn: Any) -> None:
    channel = unique()
    args, env = connection(pg)
    env["PYTHONIOENCODING"] = "ascii"
    cli = spawn("listen", "--json", "--count", "1", channel, *args, env=env)
    cli.wait_ready()
    peer.notify(channel, "héllo 🐘")
    assert cli.wait() == 0, cli.err.lines
    (line,) = cli.out.lines
    assert line.isascii()
    assert json.loads(line)["payload"] == "héllo 🐘"


def test_count_stops_after_n(pg: Server, peer: PubSub, spawn: Any) -> None:
    channel = unique()
    args, env = connection(pg)
    cli = spawn("listen", "--count", "2", channel, *args, env=env)
    cli.wait_ready()
    peer.notify_many([(channel, str(n)) for n in range(5)])
    assert cli.wait() == 0
    assert [line.split("\t")[3] for line in cli.out.lines] == ["0", "1"]


def test_timeout_without_traffic_exits_0_with_nothing_on_stdout(pg: Server) -> None:
    args, env = connection(pg)
    proc = run_cli("listen", "--timeout", "0.5", unique(), *args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "listening on" in proc.stderr


@pytest.mark.parametrize("ignore_own", [False, True])
def test_ignore_own(pg: Server, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str], ignore_own: bool) -> None:
    """The listening session notifies itself first (through a patched listen), then
    another session does; --ignore-own skips the first."""
    channel = unique()
    args, env = connection(pg)
    for key in [k for k in os.environ if k.startswith("PG")]:
        monkeypatch.delenv(key)
    if "PGPASSWORD" in env:
        monkeypatch.setenv("PGPASSWORD", env["PGPASSWORD"])
    listen = PubSub.listen

    def listen_then_talk(self: PubSub, name: str, verify: bool = False) -> None:
        listen(self, name, verify)
        self.notify(name, "own")
        with pgpubsub.connect(**pg.dsn_kwargs()) as other:
            other.notify(name, "other")

    monkeypatch.setattr(PubSub, "listen", listen_then_talk)
    options = ["--ignore-own"] if ignore_own else []
    assert main(["listen", "--count", "1", *options, channel, *args]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.split("\t")[3] == ("other" if ignore_own else "own")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_listen_cleanly(pg: Server, peer: PubSub, spawn: Any,
                                      sig: signal.Signals) -> None:
    channel = unique()
    args, env = connection(pg)
    cli = spawn("listen", channel, *args, env=env)
    cli.wait_ready()
    peer.notify(channel, "before")
    cli.out.wait_for_line("before", TIMEOUT)
    cli.proc.send_signal(sig)
    assert cli.wait() == 0
    assert not any("Traceback" in line for line in cli.err.lines), cli.err.lines


def test_the_reader_going_away_ends_listen(pg: Server, peer: PubSub, spawn: Any) -> None:
    channel = unique()
    args, env = connection(pg)
    cli = spawn("listen", channel, *args, env=env, collect_stdout=False)
    cli.wait_ready()
    peer.notify(channel, "one")
    stdout = cli.proc.stdout
    assert select.select([stdout], [], [], TIMEOUT)[0]
    assert stdout.readline().endswith("\tone\n")
    stdout.close()  # as `| head -1` does
    peer.notify(channel, "two")
    assert cli.wait() == 0
    assert not any("Traceback" in line for line in cli.err.lines), cli.err.lines


def test_reconnect_marks_the_gap_on_stderr(pg: Server, peer: PubSub, spawn: Any) -> None:
    channel = unique()
    args, env = connection(pg)
    cli = spawn("listen", "--reconnect", channel, *args, env=env)
    old_pid = backend_pid(cli.wait_ready())
    assert pg.psql(f"SELECT pg_terminate_backend({old_pid})") == "t\n"
    cli.wait_ready("reconnected after")
    peer.notify(channel, "after the gap")
    cli.out.wait_for_line("after the gap", TIMEOUT)
    assert cli.proc.poll() is None


def test_a_lost_connection_without_reconnect_exits_1(pg: Server, spawn: Any) -> None:
    args, env = connection(pg)
    cli = spawn("listen", unique(), *args, env=env)
    pid = backend_pid(cli.wait_ready())
    pg.psql(f"SELECT pg_terminate_backend({pid})")
    assert cli.wait() == 1
    assert any("terminating connection" in line for line in cli.err.lines), cli.err.lines
    assert not any("Traceback" in line for line in cli.err.lines), cli.err.lines


# -- connection failures and passwords ---------------------------------------


@pytest.mark.parametrize("command", [["listen", "x"], ["notify", "x", "y"]])
def test_a_closed_port_exits_1(command: List[str]) -> None:
    proc = run_cli(*command, "-h", "127.0.0.1", "-p", str(closed_port()), "-U", "postgres")
    assert proc.returncode == 1
    assert "Connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr


def needs_roles(pg: Server) -> None:
    if not pg.has_roles:
        pytest.skip("needs the fixture's own cluster (roles with passwords)")


def test_a_wrong_password_exits_1(pg: Server) -> None:
    needs_roles(pg)
    args, env = connection(pg, "scram_user")
    env["PGPASSWORD"] = "wrong"
    proc = run_cli("listen", "x", *args, env=env)
    assert proc.returncode == 1
    assert "password authentication failed" in proc.stderr


def test_a_missing_password_says_how_to_give_one_here(pg: Server, tmp_path: Path) -> None:
    needs_roles(pg)
    args, env = connection(pg, "md5_user")
    del env["PGPASSWORD"]
    env["PGPASSFILE"] = str(tmp_path / "no such file")
    proc = run_cli("listen", "x", *args, env=env)
    assert proc.returncode == 1
    assert "asked for a password" in proc.stderr
    assert "password=" not in proc.stderr  # the library's advice: not an option here
    for way in ("-W", "PGPASSWORD", "~/.pgpass"):
        assert way in proc.stderr


def test_pgpassword_is_used(pg: Server, peer: PubSub) -> None:
    needs_roles(pg)
    channel = unique()
    peer.listen(channel)
    args, env = connection(pg, "scram_user")
    assert env["PGPASSWORD"]
    proc = run_cli("notify", channel, "from scram_user", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert receive(peer, 1)[0].payload == "from scram_user"


def read_until(fd: int, text: bytes, timeout: float = TIMEOUT) -> bytes:
    """What the terminal shows until ``text`` (or its end)."""
    seen = b""
    while text not in seen:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"{text!r} did not show; the terminal showed {seen!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            chunk = b""
        if not chunk:
            break
        seen += chunk
    return seen


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_W_asks_for_the_password_on_the_terminal(pg: Server, peer: PubSub) -> None:
    needs_roles(pg)
    channel = unique()
    peer.listen(channel)
    args, env = connection(pg, "scram_user")
    del env["PGPASSWORD"]
    master, slave = os.openpty()
    as_terminal = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                   "os.execv(sys.executable, [sys.executable, '-m', 'pgwire_pubsub', "
                   "*sys.argv[1:]])")
    proc = subprocess.Popen(
        [sys.executable, "-c", as_terminal, "notify", "-W", channel, "typed", *args],
        env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        assert b"Password for user scram_user: " in read_until(master, b": ")
        os.write(master, b"scram_pw\n")
        rest = read_until(master, b"\0")  # to the end
        assert proc.wait(TIMEOUT) == 0, rest
        assert b"scram_pw" not in rest  # not echoed
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert receive(peer, 1)[0].payload == "typed"


def test_W_without_a_terminal_is_a_usage_error(pg: Server) -> None:
    args, env = connection(pg)
    proc = subprocess.run(
        [sys.executable, "-m", "pgwire_pubsub", "notify", "-W", "x", "y", *args], env=env,
        capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)  # no controlling terminal
    assert proc.returncode == 2
    assert "needs a terminal" in proc.stderr


# -- notify ----------------------------------------------------------------


def test_notify_with_a_payload(pg: Server, peer: PubSub) -> None:
    channel = unique("Notify Chan")
    peer.listen(channel)
    args, env = connection(pg)
    for payload in ('über {"x": 1}', ""):
        proc = run_cli("notify", channel, payload, *args, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == proc.stderr == ""
    assert [n.payload for n in receive(peer, 2)] == ['über {"x": 1}', ""]


def test_notify_without_a_payload_reads_lines_when_stdin_is_not_a_terminal(
        pg: Server, peer: PubSub) -> None:
    channel = unique()
    peer.listen(channel)
    args, env = connection(pg)
    proc = run_cli("notify", channel, *args, env=env, input="a\r\n\nb ✓")
    assert proc.returncode == 0, proc.stderr
    assert "sent 3 notifications" in proc.stderr
    empty = run_cli("notify", channel, *args, env=env)  # stdin: /dev/null
    assert empty.returncode == 0
    assert "sent 0 notifications" in empty.stderr
    peer.notify(channel, "marker")
    assert [n.payload for n in receive(peer, 4)] == ["a", "", "b ✓", "marker"]


def test_notify_sends_each_line_as_it_comes(pg: Server, peer: PubSub, spawn: Any) -> None:
    channel = unique()
    peer.listen(channel)
    args, env = connection(pg)
    cli = spawn("notify", channel, "-", *args, env=env, stdin=subprocess.PIPE)
    cli.proc.stdin.write("first\n")
    cli.proc.stdin.flush()
    assert receive(peer, 1)[0].payload == "first"  # not held for a batch of 1000
    assert cli.proc.poll() is None
    cli.proc.stdin.write("second\n")
    cli.proc.stdin.close()
    assert cli.wait() == 0
    assert receive(peer, 1)[0].payload == "second"
    cli.err.wait_for_line("sent 2 notifications")


def test_sigterm_interrupts_notify_and_says_what_was_sent(pg: Server, peer: PubSub,
                                                          spawn: Any) -> None:
    channel = unique()
    peer.listen(channel)
    args, env = connection(pg)
    cli = spawn("notify", channel, "-", *args, env=env, stdin=subprocess.PIPE)
    for line in ("one", "two"):  # once "two" is in, the call that sent "one" has returned
        cli.proc.stdin.write(line + "\n")
        cli.proc.stdin.flush()
        assert receive(peer, 1)[0].payload == line
    cli.proc.send_signal(signal.SIGTERM)
    assert cli.wait() == 130
    report = cli.err.wait_for_line("interrupted")
    assert re.fullmatch(r"pgwire-pubsub: interrupted; [12] notification\(s\) were sent", report)


def test_notify_rejects_a_line_that_is_not_utf8(pg: Server) -> None:
    args, env = connection(pg)
    proc = subprocess.run(
        [sys.executable, "-m", "pgwire_pubsub", "notify", unique(), "-", *args], env=env,
        input=b"fine\n\xff\n", capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 2
    assert b"input line 2 is not valid UTF-8" in proc.stderr


def test_10000_piped_lines_arrive_in_order(pg: Server, spawn: Any) -> None:
    channel = unique()
    args, env = connection(pg)
    listener = spawn("listen", "--count", "10000", channel, *args, env=env)
    listener.wait_ready()
    lines = [f"line {n} ✓" for n in range(10000)]
    proc = run_cli("notify", channel, "-", *args, env=env, input="\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "sent 10000 notifications" in proc.stderr
    assert listener.wait(60) == 0, listener.err.lines
    assert [line.split("\t")[3] for line in listener.out.lines] == lines


# -- demo ------------------------------------------------------------------


@pytest.fixture
def demo_tmpdir() -> Iterator[str]:
    """An empty TMPDIR for the demo, that the server's system user can enter."""
    path = tempfile.mkdtemp(prefix="pgwire-cli-test-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    os.rmdir(path)  # fails if the demo left anything


def processes_using(path: str) -> List[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if path.encode() in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def assert_demo_output(out: str) -> None:
    for payload in ("'hello, world'", "'héllo ✓'", "'batch 1', 'batch 2', 'batch 3' in order"):
        assert f"-> received {payload}" in out
    for op in ("INSERT", "UPDATE", "DELETE"):
        assert re.search(rf'^  {op} .*-> \{{"id": 1, .*"tg_op": "{op}"\}}$', out, re.M)


def assert_left_nothing(tmpdir: str) -> None:
    assert os.listdir(tmpdir) == []
    if os.path.isdir("/proc"):
        assert processes_using(tmpdir) == []


def needs_local_binaries() -> None:
    if find_pg_bindir() is None:
        pytest.skip("no PostgreSQL server binaries here")


@pytest.mark.parametrize("server", ["local", "pgserver"])
def test_demo_runs_end_to_end(demo_tmpdir: str, server: str) -> None:
    if server == "local":
        needs_local_binaries()
    elif pgserver_bindir() is None:
        pytest.skip("pgserver is not installed")
    proc = run_cli("demo", "--server", server, env=clean_env(TMPDIR=demo_tmpdir),
                   timeout=DEMO_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_demo_output(proc.stdout)
    if server == "pgserver":
        assert "PostgreSQL 16." in proc.stdout
    assert "Stopped the server and removed" in proc.stdout
    assert_left_nothing(demo_tmpdir)


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="needs root")


@needs_root
def test_demo_as_root_without_sbin_on_path(demo_tmpdir: str) -> None:
    """The PATH of cron and of su without -: runuser (in /usr/sbin) is not on it."""
    needs_local_binaries()
    env = clean_env(TMPDIR=demo_tmpdir, PATH="/usr/local/bin:/usr/bin:/bin")
    proc = run_cli("demo", "--server", "local", env=env, timeout=DEMO_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_demo_output(proc.stdout)
    assert_left_nothing(demo_tmpdir)


@needs_root
def test_demo_with_pgserver_where_only_root_can_reach_it(demo_tmpdir: str,
                                                        root_only_copy: Any) -> None:
    """As from a virtualenv under /root (mode 0700): the server runs from a copy."""
    bindir = pgserver_bindir()
    if bindir is None:
        pytest.skip("pgserver is not installed")
    site = Path(root_only_copy(bindir)).parents[2]
    env = clean_env(TMPDIR=demo_tmpdir, PYTHONPATH=str(site))
    proc = run_cli("demo", "--server", "pgserver", env=env, timeout=DEMO_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"from {site}" in proc.stdout  # the copy's own pgserver, not the installed one
    assert "PostgreSQL 16." in proc.stdout
    assert "cannot reach" in proc.stdout
    assert_demo_output(proc.stdout)
    assert_left_nothing(demo_tmpdir)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_serve_until_a_signal(demo_tmpdir: str, spawn: Any, sig: signal.Signals) -> None:
    needs_local_binaries()
    cli = spawn("demo", "--serve", "--server", "local", env=clean_env(TMPDIR=demo_tmpdir))
    cli.out.wait_for_line("keeps running until Ctrl-C", DEMO_TIMEOUT)
    labels = ("connection string:", "in Python:", "in other terminals:")
    shown = {label: cli.out.wait_for_line(label).split(label, 1)[1].strip() for label in labels}
    notify_line = cli.out.wait_for_line(" notify -h").strip()
    with pgpubsub.connect(shown["connection string:"]) as ps:
        assert ps.conn.execute("SELECT current_database()") == [("test",)]
    namespace: Dict[str, Any] = {}
    exec(shown["in Python:"], namespace)  # pasted as printed
    with namespace["pubsub"] as ps:
        assert ps.conn.execute("SELECT current_database()") == [("test",)]
        ps.listen("demo")
        proc = subprocess.run(shlex.split(notify_line), env=clean_env(), capture_output=True,
                              text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        assert receive(ps, 1)[0].payload == "hello"
    port = re.search(r"port=(\d+)", shown["connection string:"])
    assert port and f"listen -h 127.0.0.1 -p {port.group(1)} -U postgres -d test demo" in (
        shown["in other terminals:"])
    cli.proc.send_signal(sig)
    assert cli.wait(DEMO_TIMEOUT) == 0, cli.err.lines
    assert any("Stopped the server and removed" in line for line in cli.out.lines)
    assert_left_nothing(demo_tmpdir)


def test_demo_on_an_existing_server(pg: Server) -> None:
    exists = "SELECT to_regprocedure('pgwire_pubsub_tables_notify()') IS NOT NULL"
    before = pg.psql(exists)
    args, env = connection(pg)
    proc = run_cli("demo", *args, env=env, timeout=DEMO_TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_demo_output(proc.stdout)
    assert "throwaway" not in proc.stdout
    assert pg.psql(exists) == before  # the function is left as it was


def test_the_demo_names_the_command_as_it_can_be_run(pg: Server) -> None:
    """From a virtualenv that is not activated, the commands it suggests start with the
    script's path; with the script on PATH, with its name."""
    script = Path(sys.executable).parent / "pgwire-pubsub"
    if not script.exists():
        pytest.skip("the pgwire-pubsub script is not installed next to this Python")
    args, env = connection(pg)
    for path, name in [("/usr/bin:/bin", str(script)),
                       (f"{script.parent}:/usr/bin:/bin", "pgwire-pubsub")]:
        proc = subprocess.run([str(script), "demo", *args], env={**env, "PATH": path},
                              capture_output=True, text=True, timeout=DEMO_TIMEOUT,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        assert f"\n  {name} listen -d mydb demo\n" in proc.stdout


def test_demo_without_server_binaries_says_what_to_install(tmp_path: Path) -> None:
    proc = run_cli("demo", "--server", "local", env=clean_env(PGWIRE_PG_BINDIR=str(tmp_path)))
    assert proc.returncode == 1
    assert "apt-get install postgresql" in proc.stderr
    assert "pip install 'pgwire-pubsub[server]'" in proc.stderr


def test_demo_without_pgserver_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "pgserver.py").write_text("")  # hides an installed pgserver
    proc = run_cli("demo", "--server", "pgserver", env=clean_env(PYTHONPATH=str(tmp_path)))
    assert proc.returncode == 1
    assert "pip install 'pgwire-pubsub[server]'" in proc.stderr
