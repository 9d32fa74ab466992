"""Table changes as notifications: the trigger function and per-table triggers."""

from __future__ import annotations

import json
import uuid
from typing import Any, Dict, Iterator, List, Tuple, Union

import pytest
from conftest import blocking_only

import pgwire_pubsub as pgpubsub
from pgwire_pubsub import Notify, ProgrammingError, PubSub
from pgwire_pubsub._blocking.connection import Connection, connect_raw
from pgwire_pubsub.testing.pgcluster import PsqlError, Server, lit
from pgwire_pubsub.triggers import (
    TRIGGER_NAME,
    create_table_notify_trigger,
    create_tables_notify_func,
)

# Every test here runs on the blocking and on the asyncio client (see conftest.py).
pytestmark = pytest.mark.usefixtures("on_every_client")

TIMEOUT = 10  # seconds: a failure guard only

COLUMNS = '(id int PRIMARY KEY, name text, "Mixed Col" boolean)'


def tag() -> str:
    return uuid.uuid4().hex[:8]


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'



class Tables:
    """Creates tables and schemas with psql, and drops them after the test."""

    def __init__(self, pg: Server) -> None:
        self.pg = pg
        self.created: List[str] = []

    def schema(self, name: str) -> str:
        self.pg.psql(f"CREATE SCHEMA {ident(name)}")
        self.created.append(f"SCHEMA {ident(name)}")
        return name

    def table(self, name: str, schema: str = "public") -> str:
        """Create ``schema.name``; return its quoted name for psql."""
        quoted = f"{ident(schema)}.{ident(name)}"
        self.pg.psql(f"CREATE TABLE {quoted} {COLUMNS}")
        self.created.append(f"TABLE {quoted}")
        return quoted

    def exists(self, quoted: str) -> bool:
        return self.pg.psql(f"SELECT to_regclass({lit(quoted)}) IS NOT NULL") == "t\n"

    def triggers(self, quoted: str) -> int:
        sql = (
            f"SELECT count(*) FROM pg_trigger WHERE tgrelid = {lit(quoted)}::regclass "
            f"AND tgname = {lit(TRIGGER_NAME)}"
        )
        return int(self.pg.psql(sql))

    def drop_all(self) -> None:
        for what in reversed(self.created):
            self.pg.psql(f"DROP {what.replace(' ', ' IF EXISTS ', 1)} CASCADE")


@pytest.fixture
def tables(pg: Server) -> Iterator[Tables]:
    made = Tables(pg)
    yield made
    made.drop_all()


@pytest.fixture
def pubsub(pg: Server) -> Iterator[PubSub]:
    ps = pgpubsub.connect(**pg.dsn_kwargs())
    yield ps
    ps.close()


def change_rows(pg: Server, quoted: str) -> int:
    """INSERT, UPDATE and DELETE one row from psql, in one transaction; psql's pid."""
    out = pg.psql(
        f"BEGIN; INSERT INTO {quoted} VALUES (1, 'first', true); "
        f"UPDATE {quoted} SET name = 'second', \"Mixed Col\" = NULL WHERE id = 1; "
        f"DELETE FROM {quoted} WHERE id = 1; SELECT pg_backend_pid(); COMMIT;"
    )
    return int(out.split()[-1])


Change = Tuple[int, str, Dict[str, Any]]


def expected_changes(pid: int, channel: str) -> List[Change]:
    """What ``change_rows`` sends: the new row, the new row, then the old row."""
    return [
        (pid, channel, {"id": 1, "name": "first", "Mixed Col": True, "tg_op": "INSERT"}),
        (pid, channel, {"id": 1, "name": "second", "Mixed Col": None, "tg_op": "UPDATE"}),
        (pid, channel, {"id": 1, "name": "second", "Mixed Col": None, "tg_op": "DELETE"}),
    ]


def receive_rows(ps: PubSub, count: int) -> List[Change]:
    """Exactly ``count`` notifications, with their payloads parsed as JSON."""
    got: List[Change] = []
    for _ in range(count):
        event = ps.get_event(select_timeout=TIMEOUT)
        assert event is not None, f"only {len(got)} of {count} notifications arrived: {got!r}"
        assert isinstance(event, Notify)  # no marker options: only notifications
        got.append((event.pid, event.channel, json.loads(event.payload)))
    assert ps.get_event() is None
    return got


def target_of(ps: PubSub, kind: str) -> Union[PubSub, Connection]:
    return ps if kind == "pubsub" else ps.conn


TABLE_NAMES = [
    "plain_{}",
    "MixedCase_{}",
    'we"ird_{}',
    "with space {}",
    "semi;colon'quote_{}",
    "ünï_🐘_{}",
]


@pytest.mark.parametrize("kind", ["pubsub", "conn"])
@pytest.mark.parametrize("pattern", TABLE_NAMES)
def test_changes_arrive_as_json(
    pg: Server, pubsub: PubSub, tables: Tables, pattern: str, kind: str
) -> None:
    name = pattern.format(tag())
    quoted = tables.table(name)
    create_tables_notify_func(target_of(pubsub, kind))
    create_table_notify_trigger(target_of(pubsub, kind), name)
    assert tables.triggers(quoted) == 1
    pubsub.listen(name)
    pid = change_rows(pg, quoted)
    assert receive_rows(pubsub, 3) == expected_changes(pid, name)


def test_own_changes_arrive_too(pubsub: PubSub, tables: Tables) -> None:
    name = f"Own_{tag()}"
    quoted = tables.table(name)
    create_tables_notify_func(pubsub)
    create_table_notify_trigger(pubsub, name)
    pubsub.listen(name)
    pubsub.conn.execute(f"INSERT INTO {quoted} VALUES (7, 'x''y', false)")
    event = pubsub.get_event()
    assert event is not None
    assert isinstance(event, Notify)
    assert (event.pid, event.channel) == (pubsub.conn.get_backend_pid(), name)
    assert json.loads(event.payload) == {
        "id": 7,
        "name": "x'y",
        "Mixed Col": False,
        "tg_op": "INSERT",
    }


def test_channel_is_the_exact_table_name(pg: Server, pubsub: PubSub, tables: Tables) -> None:
    name = f"CaseKept_{tag()}"
    quoted = tables.table(name)
    create_tables_notify_func(pubsub)
    create_table_notify_trigger(pubsub, name)
    pubsub.listen(name.lower())  # a different channel: nothing arrives there
    pubsub.listen(name)
    pid = change_rows(pg, quoted)
    events = receive_rows(pubsub, 3)
    assert events == expected_changes(pid, name)


@pytest.mark.parametrize("form", ["dotted", "tuple"])
def test_schema_qualified_table(pg: Server, pubsub: PubSub, tables: Tables, form: str) -> None:
    schema = tables.schema(f"My Schema_{tag()}")
    name = f"MyTable_{tag()}"
    quoted = tables.table(name, schema)
    decoy = tables.table(name)  # same name in public, without the trigger
    create_tables_notify_func(pubsub)
    create_table_notify_trigger(pubsub, f"{schema}.{name}" if form == "dotted" else (schema, name))
    assert tables.triggers(quoted) == 1
    assert tables.triggers(decoy) == 0
    pubsub.listen(name)
    pg.psql(f"INSERT INTO {decoy} VALUES (99, 'decoy', NULL)")
    pid = change_rows(pg, quoted)
    assert receive_rows(pubsub, 3) == expected_changes(pid, name)


def test_dotted_table_name_with_a_tuple(pg: Server, pubsub: PubSub, tables: Tables) -> None:
    name = f"dotted.name_{tag()}"
    quoted = tables.table(name)
    create_tables_notify_func(pubsub)
    create_table_notify_trigger(pubsub, ("public", name))
    pubsub.listen(name)
    pid = change_rows(pg, quoted)
    assert receive_rows(pubsub, 3) == expected_changes(pid, name)


def test_trigger_is_replaced_not_doubled(pg: Server, pubsub: PubSub, tables: Tables) -> None:
    name = f"twice_{tag()}"
    quoted = tables.table(name)
    create_tables_notify_func(pubsub)
    create_tables_notify_func(pubsub.conn)
    create_table_notify_trigger(pubsub, name)
    create_table_notify_trigger(pubsub.conn, name)
    assert tables.triggers(quoted) == 1
    pubsub.listen(name)
    pg.psql(f"INSERT INTO {quoted} VALUES (1, 'once', NULL)")
    event = pubsub.get_event(select_timeout=TIMEOUT)
    assert isinstance(event, Notify)  # no marker options: only notifications
    assert event is not None and json.loads(event.payload)["name"] == "once"
    pg.psql(f"INSERT INTO {quoted} VALUES (2, 'sentinel', NULL)")  # a second trigger's copy
    event = pubsub.get_event(select_timeout=TIMEOUT)  # of row 1 would come first
    assert isinstance(event, Notify)
    assert event is not None and json.loads(event.payload)["name"] == "sentinel"
    assert pubsub.get_event() is None


def test_too_big_a_row_makes_the_write_fail(pg: Server, pubsub: PubSub, tables: Tables) -> None:
    name = f"big_{tag()}"
    quoted = tables.table(name)
    create_tables_notify_func(pubsub)
    create_table_notify_trigger(pubsub, name)
    with pytest.raises(PsqlError, match="payload string too long"):
        pg.psql(f"INSERT INTO {quoted} VALUES (1, repeat('x', 8000), NULL)")
    assert pg.psql(f"SELECT count(*) FROM {quoted}") == "0\n"


HOSTILE = [
    'x"; DROP TABLE {canary}; --',
    "x'); DROP TABLE {canary}; --",
    'x" ON {canary} FOR EACH ROW EXECUTE PROCEDURE f(); --',
]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_table_name_without_such_table(
    pubsub: PubSub, tables: Tables, pattern: str
) -> None:
    canary_name = f"canary_{tag()}"
    canary = tables.table(canary_name)
    hostile = pattern.format(canary=canary_name)
    create_tables_notify_func(pubsub)
    with pytest.raises(ProgrammingError) as info:
        create_table_notify_trigger(pubsub, hostile)
    assert info.value.sqlstate == "42P01"  # undefined_table: the whole name is one identifier
    assert tables.exists(canary)
    assert tables.triggers(canary) == 0
    schema_hostile = (f'x"; DROP TABLE {canary_name}; --', "t")
    with pytest.raises(ProgrammingError) as info:
        create_table_notify_trigger(pubsub, schema_hostile)
    assert info.value.sqlstate == "3F000"  # invalid_schema_name
    assert tables.exists(canary)
    assert pubsub.conn.execute("SELECT 1") == [("1",)]


@pytest.mark.parametrize("pattern", HOSTILE)
def test_hostile_table_name_of_a_real_table(
    pg: Server, pubsub: PubSub, tables: Tables, pattern: str
) -> None:
    canary_name = f"canary_{tag()}"
    canary = tables.table(canary_name)
    hostile = pattern.format(canary=canary_name)
    assert "." not in hostile  # a dotted str would name a schema
    quoted = tables.table(hostile)
    create_tables_notify_func(pubsub)
    create_table_notify_trigger(pubsub, hostile)
    assert tables.triggers(quoted) == 1
    assert tables.triggers(canary) == 0
    assert tables.exists(canary)
    pubsub.listen(hostile)
    pid = change_rows(pg, quoted)
    assert receive_rows(pubsub, 3) == expected_changes(pid, hostile)


@pytest.mark.parametrize(
    ("bad", "error"), [("", ValueError), ("a\0b", ValueError), (None, TypeError), (1, TypeError)]
)
def test_bad_table_names_are_refused_before_sending(
    pubsub: PubSub, bad: Union[str, int, None], error: type
) -> None:
    with pytest.raises(error):
        # None and 1 are deliberately not names: the call must refuse them.
        create_table_notify_trigger(pubsub, bad)  # type: ignore[arg-type]
    assert pubsub.conn.closed == 0
    assert pubsub.conn.execute("SELECT 1") == [("1",)]


def test_accepts_a_bare_connection(pg: Server, tables: Tables, client_kind: str) -> None:
    blocking_only(client_kind, "PubSub(conn) wraps a blocking Connection")
    name = f"bare_{tag()}"
    quoted = tables.table(name)
    conn = connect_raw(**pg.dsn_kwargs())
    try:
        create_tables_notify_func(conn)
        create_table_notify_trigger(conn, name)
        pubsub = PubSub(conn)
        pubsub.listen(name)
        pid = change_rows(pg, quoted)
        assert receive_rows(pubsub, 3) == expected_changes(pid, name)
    finally:
        conn.close()


@pytest.mark.parametrize("bad", [("public", 1), (None, "t")])
def test_bad_tuple_parts_are_refused_cleanly(pubsub: PubSub, bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        create_table_notify_trigger(pubsub, bad)
    assert pubsub.conn.execute("SELECT 1") == [("1",)]
