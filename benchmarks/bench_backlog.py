"""The traffic of the suite's backlog workloads, made before the clock starts.

- ``app_traffic``: 4 senders at once, each running many small transactions (one to a
  few notifications each), every notification on one of 8 channels with a JSON row of
  60 to 240 bytes as its payload: what an application's writers produce.
- ``trigger_burst``: one bulk ``UPDATE`` of a table with ``pgwire_pubsub.triggers``'
  trigger, so that each of its rows arrives as a JSON object, on the table's channel.

The listener has listened before, and reads nothing meanwhile: the notifications wait
in its socket and in the server's queue (a backlog), and the timed part is the listener
taking them all.  The traffic is made by the server (a ``DO`` block, an ``UPDATE``), on
connections of pgwire_pubsub's, whatever library listens, so that every library takes
the same bytes; a library only needs to listen and receive.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

APP_SENDERS = 4
APP_CHANNELS = tuple(f"bench_app_{i}" for i in range(8))
TRIGGER_TABLE = "bench_rows"  # also the channel: the trigger notifies on the table's name
END = '{"end": true}'  # the app traffic's last notification, once every sender is done

# One sender's transactions: a third of its notifications end one (1 to about 8 each,
# 3 on average).  Channel, size and the transaction ends come from hashes of the
# notification's number, so every run sends the same notifications.
APP_SQL = """
DO $$
DECLARE
    head text;
    h int;
BEGIN
    FOR n IN 1..{count} LOOP
        h := hashint4(n * {senders} + {sender}) & 2147483647;
        head := format('{{"id": %s, "sender": {sender}, "status": "paid", "note": "', n);
        PERFORM pg_notify('bench_app_' || (h % 8),
                          head || repeat('x', 60 + (h / 8) % 181 - length(head) - 2) || '"}}');
        IF (h / 2048) % 3 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
$$
"""

# Rows of about 80 to 230 bytes as JSON (with the trigger's "tg_op"); a fresh table each
# time, so that the UPDATE meets its rows in the order they were inserted.
TRIGGER_SETUP_SQL = f"""
DROP TABLE IF EXISTS {TRIGGER_TABLE};
CREATE TABLE {TRIGGER_TABLE} (id int PRIMARY KEY, sku text, qty int, price numeric(10, 2),
                              note text);
INSERT INTO {TRIGGER_TABLE}
    SELECT i, 'sku-' || i, i % 100, (i % 1000) / 7.0,
           repeat('x', (hashint4(i) & 2147483647) % 140)
    FROM generate_series(1, {{count}}) i;
"""
TRIGGER_UPDATE_SQL = f"UPDATE {TRIGGER_TABLE} SET qty = qty + 1"


def _connect(conninfo: Dict[str, Any]) -> Any:
    import pgwire_pubsub

    return pgwire_pubsub.connect(**{"sslmode": "disable", **conninfo})


def _run_all(conninfo: Dict[str, Any], statements: List[str]) -> None:
    """Each statement on a connection of its own, all at once; returns when all are done."""
    errors: List[BaseException] = []

    def run(sql: str) -> None:
        try:
            with _connect(conninfo) as sender:
                sender.conn.execute(sql)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(sql,)) for sql in statements]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def fill_app_traffic(conninfo: Dict[str, Any], count: int) -> None:
    """``count`` notifications: the senders' ``count - 1``, then ``END``."""
    share, extra = divmod(count - 1, APP_SENDERS)
    _run_all(conninfo, [APP_SQL.format(count=share + (s < extra), sender=s,
                                       senders=APP_SENDERS)
                        for s in range(APP_SENDERS) if share + (s < extra)])
    with _connect(conninfo) as sender:
        sender.notify(APP_CHANNELS[0], END)


def check_app_traffic(last: Optional[str], count: int) -> None:
    if last != END:
        raise AssertionError(f"the last notification's payload is {last!r}, not {END!r}")


def fill_trigger_burst(conninfo: Dict[str, Any], count: int) -> None:
    """A table of ``count`` rows with the trigger; one UPDATE of them all."""
    from pgwire_pubsub import triggers

    with _connect(conninfo) as sender:
        sender.conn.execute(TRIGGER_SETUP_SQL.format(count=count))
        triggers.create_tables_notify_func(sender)
        triggers.create_table_notify_trigger(sender, TRIGGER_TABLE)
        sender.conn.execute(TRIGGER_UPDATE_SQL)


def check_trigger_burst(last: Optional[str], count: int) -> None:
    row = json.loads(last or "null")
    if not isinstance(row, dict) or row.get("tg_op") != "UPDATE" or row.get("id") != count:
        raise AssertionError(f"the last notification's payload is {last!r}, not the row "
                             f"{count} as UPDATE")


Fill = Callable[[Dict[str, Any], int], None]
Check = Callable[[Optional[str], int], None]

# workload: (channels to listen on, fill, check of the last payload)
SHAPES: Dict[str, Tuple[Tuple[str, ...], Fill, Check]] = {
    "app_traffic": (APP_CHANNELS, fill_app_traffic, check_app_traffic),
    "trigger_burst": ((TRIGGER_TABLE,), fill_trigger_burst, check_trigger_burst),
}
