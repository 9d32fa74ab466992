"""Other clients against the fake backend and a real PostgreSQL: psql (libpq), psycopg and,
when installed, asyncpg must see the very same thing from both."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
from typing import Any, List, Tuple

import pytest

from pgwire_pubsub.testing import Database, FakeBackend
from pgwire_pubsub.testing.pgcluster import find_psql

PSQL_SCRIPT = """\
LISTEN c;
NOTIFY c, 'one';
BEGIN;
NOTIFY c, 'two';
NOTIFY c, 'two';
SELECT pg_notify('c', 'three');
COMMIT;
BEGIN;
NOTIFY c, 'lost';
ROLLBACK;
SELECT 1;
COMMIT;
SELECT pg_notify('', 'x');
BEGIN;
SELECT pg_notify('', 'x');
NOTIFY c, 'ignored';
COMMIT;
LISTEN "Other";
SELECT pg_listening_channels();
UNLISTEN *;
NOTIFY c, 'unheard';
SELECT 2 AS two;
"""


def psql_transcript(dsn: str) -> Tuple[str, str]:
    psql = find_psql()
    if psql is None:
        pytest.skip("psql not found")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.run([psql, "-X", "-d", dsn], input=PSQL_SCRIPT, capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return tuple(re.sub(r"PID \d+", "PID <pid>", out)  # type: ignore[return-value]
                 for out in (proc.stdout, proc.stderr))


def test_psql_sees_the_fake_as_it_sees_postgresql(fake_backend: FakeBackend,
                                                  postgres_server: Database) -> None:
    fake = psql_transcript(fake_backend.dsn)
    real = psql_transcript(postgres_server.dsn)
    assert fake == real
    assert 'notification "c" with payload "three" received' in real[0]  # psql listened


def psycopg_scenario(dsn: str) -> List[Any]:
    """Two psycopg sessions: a listener in autocommit mode, a sender in transactions."""
    psycopg = pytest.importorskip("psycopg")
    seen: List[Any] = []
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn) as sender:
        listener.execute("LISTEN c")
        sender_pid = sender.info.backend_pid

        def drain() -> List[Tuple[str, str, bool]]:
            sender.execute("SELECT pg_notify('c', 'marker')")
            sender.commit()
            got: List[Tuple[str, str, bool]] = []
            for note in listener.notifies(timeout=10):
                if note.payload == "marker":
                    return got
                got.append((note.channel, note.payload, note.pid == sender_pid))
            raise AssertionError("the marker did not come")

        sender.execute("NOTIFY c, 'a'")
        sender.execute("SELECT pg_notify(%s, %s)", ("c", "a"))  # a duplicate, bound
        sender.execute("SELECT pg_notify(%s, %s)", ("c", "b"))
        seen.append(drain())
        sender.execute("NOTIFY c, 'gone'")
        sender.rollback()
        seen.append(drain())
        with pytest.raises(psycopg.Error) as excinfo:
            sender.execute("SELECT pg_notify(%s, %s)", ("", "x"))
        seen.append(excinfo.value.sqlstate)
        sender.rollback()
        seen.append(sender.execute("SELECT 1").fetchall())
        seen.append(listener.execute("SELECT pg_listening_channels()").fetchall())
        listener.execute("UNLISTEN c")
        seen.append(listener.execute("SELECT pg_listening_channels()").fetchall())
    return seen


def test_psycopg_sees_the_fake_as_it_sees_postgresql(fake_backend: FakeBackend,
                                                     postgres_server: Database) -> None:
    fake = psycopg_scenario(fake_backend.dsn)
    real = psycopg_scenario(postgres_server.dsn)
    assert fake == real
    assert real[0] == [("c", "a", True), ("c", "b", True)]


async def asyncpg_scenario(dsn: str) -> List[Any]:
    import asyncpg

    seen: List[Any] = []
    listener = await asyncpg.connect(dsn)
    sender = await asyncpg.connect(dsn)
    queue: asyncio.Queue[Tuple[str, str]] = asyncio.Queue()
    try:
        await listener.add_listener("c", lambda _c, _pid, ch, payload: queue.put_nowait(
            (ch, payload)))
        async with sender.transaction():
            await sender.execute("NOTIFY c, 'one'")
            await sender.execute("SELECT pg_notify($1, $2)", "c", "two")
        await sender.execute("SELECT pg_notify($1, $2)", "c", "marker")
        got = []
        while True:
            item = await asyncio.wait_for(queue.get(), 10)
            if item[1] == "marker":
                break
            got.append(item)
        seen.append(got)
        seen.append(await sender.fetchval("SELECT 1"))
        seen.append(await listener.fetch("SELECT pg_listening_channels()"))
    finally:
        await listener.close()
        await sender.close()
    return [list(map(tuple, x)) if isinstance(x, list) else x for x in seen]


def test_asyncpg_sees_the_fake_as_it_sees_postgresql(fake_backend: FakeBackend,
                                                     postgres_server: Database) -> None:
    if importlib.util.find_spec("asyncpg") is None:
        pytest.skip("asyncpg is not installed (pip install -e '.[bench]')")
    fake = asyncio.run(asyncpg_scenario(fake_backend.dsn))
    real = asyncio.run(asyncpg_scenario(postgres_server.dsn))
    assert fake == real
    assert real[:2] == [[("c", "one"), ("c", "two")], 1]
