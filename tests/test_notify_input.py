"""``pgwire-pubsub notify`` reading standard input: every line is sent, however the writer
splits its lines into writes and however long it pauses between them (real pipes, the real
command, a real server)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
import uuid
from typing import Dict, Iterator, List, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import Notify, PubSub
from pgwire_pubsub.cli.notify import MAX_LINE
from pgwire_pubsub.testing.pgcluster import Server, make_dsn, wait_for

TIMEOUT = 30.0  # seconds: a failure guard only
SENTINEL = "end of the test's notifications"


def command(pg: Server, channel: str) -> Tuple[List[str], Dict[str, str]]:
    """``notify CHANNEL -`` for ``pg`` and its environment (a password in PGPASSWORD); the
    command's session is named after the channel (see ``wait_connected``)."""
    params = pg.dsn_kwargs(application_name=channel)
    password = params.pop("password", None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGCONNECT_TIMEOUT="10", PYTHONIOENCODING="utf-8")
    if password is not None:
        env["PGPASSWORD"] = str(password)
    argv = [sys.executable, "-m", "pgwire_pubsub", "notify", channel, "-",
            "--dsn", make_dsn(params)]
    return argv, env


@pytest.fixture
def listener(pg: Server) -> Iterator[PubSub]:
    with pgpubsub.connect(**pg.dsn_kwargs()) as ps:
        yield ps


def received(ps: PubSub, channel: str) -> List[str]:
    """The payloads that came on ``channel``, up to a sentinel this sends itself last."""
    ps.notify(channel, SENTINEL)
    got: List[str] = []
    deadline = time.monotonic() + TIMEOUT
    while True:
        event = ps.get_event(select_timeout=max(0.0, deadline - time.monotonic()))
        assert event is not None, f"the sentinel did not come; got {got!r}"
        assert isinstance(event, Notify) and event.channel == channel
        if event.payload == SENTINEL:
            return got
        got.append(event.payload)


def wait_connected(ps: PubSub, channel: str) -> None:
    """Until the command has connected: from then on, it reads its input."""
    sql = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{channel}'"
    wait_for(lambda: ps.conn.execute(sql)[0][0] == "1", TIMEOUT, message="the command to connect")


def write_slowly(fd: int, pieces: Sequence[Tuple[bytes, float]]) -> None:
    """Write each piece, then pause; close at the end (also if the reader went away)."""
    try:
        for data, pause in pieces:
            os.write(fd, data)
            time.sleep(pause)  # the writer's pace is what is tested, not a synchronisation
    except BrokenPipeError:
        pass
    finally:
        os.close(fd)


def run_with_writer(listener: PubSub, channel: str, argv: List[str], env: Dict[str, str],
                    pieces: Sequence[Tuple[bytes, float]]) -> subprocess.CompletedProcess[str]:
    """Run the command with its standard input a pipe that ``pieces`` are written to once
    it is reading (so that the pauses fall between its reads, not before the first)."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as stdin:
        proc = subprocess.Popen(argv, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, encoding="utf-8")
    writer = threading.Thread(target=write_slowly, args=(write_end, pieces), daemon=True)
    try:
        wait_connected(listener, channel)
        writer.start()
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if not writer.is_alive() and writer.ident is None:
            os.close(write_end)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        writer.join(TIMEOUT)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


LINE_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"),
                    max_size=20)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=st.lists(LINE_TEXT, min_size=1, max_size=12), final_newline=st.booleans(),
       data=st.data())
def test_every_line_is_sent_however_the_writer_splits_and_pauses(
        pg: Server, listener: PubSub, texts: List[str], final_newline: bool,
        data: st.DataObject) -> None:
    # Numbered: PostgreSQL sends equal notifications of one transaction only once.
    lines = [f"{number}:{text}" for number, text in enumerate(texts)]
    stream = ("\n".join(lines) + ("\n" if final_newline else "")).encode("utf-8")
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=8,
                                     unique=True), label="cuts"))
    bounds = [0, *cuts, len(stream)]
    pauses = data.draw(st.lists(st.sampled_from([0.0, 0.002, 0.02, 0.05]),
                                min_size=len(bounds) - 1, max_size=len(bounds) - 1),
                       label="pauses")
    pieces = [(stream[a:b], pause) for a, b, pause in zip(bounds, bounds[1:], pauses)]
    channel = f"notify_input_{uuid.uuid4().hex[:10]}"
    listener.listen(channel)
    argv, env = command(pg, channel)

    try:
        proc = run_with_writer(listener, channel, argv, env, pieces)

        assert proc.returncode == 0, proc.stderr
        assert f"sent {len(lines)} notification" in proc.stderr
        assert received(listener, channel) == lines
    finally:
        listener.unlisten(channel)


def test_the_issues_shell_reproduction(pg: Server, listener: PubSub) -> None:
    """A line written in two parts, with pauses: nothing after it may be lost."""
    channel = f"notify_input_{uuid.uuid4().hex[:10]}"
    listener.listen(channel)
    argv, env = command(pg, channel)
    script = ("{ echo first; sleep .3; printf par; sleep .3; printf 'tial\\n'; echo last; } | "
              + shlex.join(argv))
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "sent 3 notifications" in proc.stderr
    assert received(listener, channel) == ["first", "partial", "last"]


def test_an_oversized_line_after_a_pause_is_an_error(pg: Server, listener: PubSub) -> None:
    channel = f"notify_input_{uuid.uuid4().hex[:10]}"
    listener.listen(channel)
    argv, env = command(pg, channel)
    pieces = [(b"first\n", 0.05), (b"x" * 1000, 0.05), (b"x" * 2 * MAX_LINE + b"\n", 0.0)]

    proc = run_with_writer(listener, channel, argv, env, pieces)

    assert proc.returncode == 2, proc.stderr
    assert "input line 2 is too long" in proc.stderr
    assert received(listener, channel) == ["first"]
