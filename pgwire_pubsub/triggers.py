"""Table changes as notifications, as pgpubsub.triggers offered.

Each INSERT, UPDATE or DELETE on a table with the trigger sends the row (the
old row for DELETE) as a JSON object with an added ``tg_op`` key, on a
channel named exactly after the table.  As with any NOTIFY, a row whose JSON
is 8000 bytes or more makes the write fail.

Each function takes a client (``PubSub``, ``AsyncPubSub``) or a connection; with the
asyncio client, await what it returns.
"""

from __future__ import annotations

import inspect
from typing import Any, Tuple, Union

from ._shared.channels import quote_ident

FUNCTION_NAME = "pgwire_pubsub_tables_notify"
TRIGGER_NAME = "pgwire_pubsub_notify"

TableName = Union[str, Tuple[str, str]]

_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION_NAME}() RETURNS trigger
LANGUAGE plpgsql AS $body$
DECLARE
    rec record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
    ELSE
        rec := NEW;
    END IF;
    PERFORM pg_notify(
        TG_TABLE_NAME,
        (to_jsonb(rec) || jsonb_build_object('tg_op', TG_OP))::text
    );
    RETURN rec;
END;
$body$
"""


def qualified_name(table: TableName) -> str:
    """Quote ``table``: a name, ``"schema.name"`` (split at the first dot) or a (schema, name).

    Names are exact (no case folding), so any string is safe to pass.
    """
    if isinstance(table, tuple):
        if len(table) != 2:
            raise ValueError(f"a table name tuple must be (schema, table): {table!r}")
        schema, name = (_check_name(part) for part in table)
        return f"{quote_ident(schema)}.{quote_ident(name)}"
    schema, dot, name = _check_name(table).partition(".")
    if dot and schema and name:
        return f"{quote_ident(schema)}.{quote_ident(name)}"
    return quote_ident(table)


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a table or schema name must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("a table or schema name cannot be empty")
    if "\0" in name:
        raise ValueError("a table or schema name cannot contain a NUL character")
    return name


def _execute(client: Any, sql: str) -> Any:
    """Run ``sql`` on ``client`` (a client or its connection): None, or an awaitable for
    the asyncio client."""
    result = getattr(client, "conn", client).execute(sql)
    return result if inspect.isawaitable(result) else None


def create_tables_notify_func(conn: Any) -> Any:
    """Create (or replace) the trigger function that sends table changes as notifications."""
    return _execute(conn, _FUNCTION_SQL)


def create_table_notify_trigger(conn: Any, tablename: TableName) -> Any:
    """Attach the notify trigger to ``tablename`` (replacing an earlier one)."""
    table = qualified_name(tablename)
    return _execute(
        conn,
        f"DROP TRIGGER IF EXISTS {TRIGGER_NAME} ON {table}; "
        f"CREATE TRIGGER {TRIGGER_NAME} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE PROCEDURE {FUNCTION_NAME}()"
    )
