"""``pgwire-pubsub demo``: notifications and table-change triggers round-tripping, on a
throwaway local server (or on yours, with connection options)."""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import time
from typing import Any, Iterator, List

from .. import PubSub, localserver, quote_ident, triggers
from ..conninfo import ConnParams, make_params
from ..errors import DatabaseError, Error
from ..protocol.messages import Notify
from .common import (
    EXIT_OK,
    Failure,
    StopOnSignal,
    UsageError,
    add_connection_options,
    command_name,
    command_parser,
    has_connection_options,
    open_pubsub,
    resolve,
    say,
)

WAIT = 10.0  # seconds for each notification to come back: a failure guard
# Names on a throwaway server, and (unlikely to be in use) on an existing one.
THROWAWAY_NAMES = ("demo", "orders")
EXISTING_NAMES = ("pgwire_demo", "pgwire_demo_orders")
QUICK_START_DB = "test"  # the database the README's quick start connects to
TRY_IT = """\
Try it on your own server, in two terminals (--help for the options):
  {cmd} listen -d mydb demo
  {cmd} notify -d mydb demo 'hello'"""

SUMMARY = "show notifications round-tripping on a throwaway local PostgreSQL"
NOTES = """\
With no connection options, starts a private PostgreSQL server in a temp dir
(on 127.0.0.1, a free port, trust authentication), runs a listener and a
notifier against it, and removes it all on exit, also on Ctrl-C. The server
binaries are those of this machine (PGWIRE_PG_BINDIR, pg_config --bindir,
/usr/lib/postgresql/*/bin or initdb on PATH), else those of the pgserver
package (pip install 'pgwire-pubsub[server]'). As root, the server runs as the
postgres system user (or nobody), since PostgreSQL refuses to run as root, from
a copy of the binaries in a temp dir when that user cannot reach them (as in a
virtualenv under /root); the copy is removed too.

With connection options (--dsn, -h, -p, -U, -d), uses that server instead; it
creates a function there only when missing, and drops it again."""
EXAMPLES = """\
  pgwire-pubsub demo
  pgwire-pubsub demo --server pgserver      # the PostgreSQL bundled with pgserver
  pgwire-pubsub demo --dsn postgresql://me@localhost/test"""


def add_parser(subparsers: Any) -> None:
    parser = command_parser(subparsers, "demo", SUMMARY, NOTES, EXAMPLES)
    parser.add_argument("--serve", action="store_true",
                        help="after the demo, keep the throwaway server running until "
                             "Ctrl-C, with a database 'test', to try the other commands "
                             "and the README's quick start on it")
    parser.add_argument("--server", choices=("auto", "local", "pgserver"),
                        help="which binaries run the throwaway server: this machine's "
                             "(local), the pgserver package's, or the first found (auto, "
                             "the default)")
    add_connection_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if has_connection_options(args):
        if args.server is not None or args.serve:
            raise UsageError("--server and --serve are for a throwaway server; connection "
                             "options name an existing one")
        show(resolve(args), *EXISTING_NAMES)
        say(TRY_IT.format(cmd=command_name()))
        return EXIT_OK
    with _throwaway(_bindir(args.server or "auto")) as server:
        show(resolve_dsn(server.dsn()), *THROWAWAY_NAMES)
        if args.serve:
            _serve(server)
    if not args.serve:
        say(TRY_IT.format(cmd=command_name()))
    return EXIT_OK


def _serve(server: localserver.LocalServer) -> None:
    """Keep the server until Ctrl-C or SIGTERM, showing how to use it."""
    with open_pubsub(resolve_dsn(server.dsn())) as pubsub:
        pubsub.conn.execute(f"CREATE DATABASE {QUICK_START_DB}")
    dsn = f"host={server.host} port={server.port} user={server.user} dbname={QUICK_START_DB}"
    options = f"-h {server.host} -p {server.port} -U {server.user} -d {QUICK_START_DB}"
    cmd = command_name()
    rows = [
        ("connection string:", dsn),
        ("in Python:", f"import pgwire_pubsub; pubsub = pgwire_pubsub.connect({dsn!r})"),
        ("README's quick start:",
         f"export PGHOST={server.host} PGPORT={server.port}   (then it runs as written)"),
        ("in other terminals:", f"{cmd} listen {options} demo"),
        ("", f"{cmd} notify {options} demo 'hello'"),
    ]
    say("The server keeps running until Ctrl-C. To connect to it:")
    for label, text in rows:
        say(f"  {label:<22}{text}")
    wake, waker = socket.socketpair()  # the signal handler writes, the wait below wakes
    with wake, waker, StopOnSignal(lambda: waker.send(b"\0")):
        select.select([wake], [], [])


def _bindir(kind: str) -> str:
    found = None
    if kind in ("auto", "local"):
        found = localserver.find_pg_bindir()
    if found is None and kind in ("auto", "pgserver"):
        found = localserver.pgserver_bindir()
    if found is None:
        if kind == "pgserver":
            raise Failure("the pgserver package is not installed: "
                          "pip install 'pgwire-pubsub[server]'")
        raise Failure(localserver.INSTALL_HINT)
    return found


@contextlib.contextmanager
def _throwaway(bindir: str) -> Iterator[localserver.LocalServer]:
    problems = (localserver.ServerUnavailable, localserver.ServerError)
    try:
        server = localserver.LocalServer(bindir, prefix="pgwire-demo-")
        version = server.version()
    except problems as exc:
        raise Failure(str(exc)) from None
    say(f"Starting a throwaway PostgreSQL {version} from {bindir} ...", end="")
    started = time.monotonic()
    try:
        server.start()
    except problems as exc:
        say(" failed.")
        raise Failure(str(exc)) from None
    except KeyboardInterrupt:
        say(" interrupted; removed it.")
        raise
    try:
        say(f" ready in {time.monotonic() - started:.1f} s on 127.0.0.1:{server.port}.")
        if server.programs.copy is not None:
            say(f"(The {server.run_as} user, which runs it, cannot reach {bindir}: it runs a "
                f"copy in {server.programs.copy}.)")
        yield server
    finally:
        removed = " and ".join(filter(None, (server.tmpdir, server.programs.copy)))
        server.cleanup()
        say(f"Stopped the server and removed {removed}.")


def resolve_dsn(dsn: str) -> ConnParams:
    return make_params(dsn, fallback_application_name="pgwire-pubsub")


def show(params: ConnParams, channel: str, table: str) -> None:
    """Run a listener and a notifier against ``params``, printing what happens."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(open_pubsub(params))
        notifier = stack.enter_context(open_pubsub(params))
        sender = notifier.conn.get_backend_pid()
        try:
            listener.listen(channel)
            listener.listen(table)
            say(f"Listener (backend pid {listener.conn.get_backend_pid()}) listens on "
                f"{channel!r} and {table!r}; the notifier is pid {sender}.")
            _notifications(listener, notifier, channel)
            _table_changes(listener, notifier, table)
        except Error as exc:
            raise Failure(str(exc)) from None


def _receive(listener: PubSub, sender: PubSub, count: int) -> List[Notify]:
    """The next ``count`` notifications from ``sender`` (others' are skipped)."""
    pid = sender.conn.get_backend_pid()
    got: List[Notify] = []
    deadline = time.monotonic() + WAIT
    while len(got) < count:
        left = deadline - time.monotonic()
        event = listener.get_event(select_timeout=max(0.0, left))
        if isinstance(event, Notify) and event.pid == pid:
            got.append(event)
        elif left <= 0:
            raise Failure(f"a notification did not come back within {WAIT:g} s")
    return got


def _row(text: str, result: str) -> None:
    say(f"  {text:<42} -> {result}")


def _notifications(listener: PubSub, notifier: PubSub, channel: str) -> None:
    for payload in ("hello, world", '{"order": 42, "item": "tea"}', "héllo ✓"):
        notifier.notify(channel, payload)
        (event,) = _receive(listener, notifier, 1)
        _row(f"notify {channel} {payload!r}", f"received {event.payload!r}")
    batch = [(channel, f"batch {n}") for n in range(1, 4)]
    notifier.notify_many(batch)
    got = ", ".join(repr(event.payload) for event in _receive(listener, notifier, len(batch)))
    _row(f"notify_many: {len(batch)} in one round trip", f"received {got} in order")


def _table_changes(listener: PubSub, notifier: PubSub, table: str) -> None:
    say(f"Table changes as JSON notifications on {table!r}, by a trigger from "
        "pgwire_pubsub.triggers:")
    conn = notifier.conn
    name = quote_ident(table)
    conn.execute(f"CREATE TEMP TABLE {name} (id int PRIMARY KEY, item text, qty int)")
    try:
        created = _create_function(notifier)
    except DatabaseError as exc:
        say(f"  (skipped: cannot create the trigger function here: {exc})")
        return
    try:
        triggers.create_table_notify_trigger(notifier, table)
        for sql in (f"INSERT INTO {table} VALUES (1, 'tea', 2)",
                    f"UPDATE {table} SET qty = 3 WHERE id = 1",
                    f"DELETE FROM {table} WHERE id = 1"):
            conn.execute(sql.replace(f" {table} ", f" {name} "))
            (event,) = _receive(listener, notifier, 1)
            _row(sql, event.payload)
    finally:
        conn.execute(f"DROP TABLE {name}")
        if created:
            conn.execute(f"DROP FUNCTION {triggers.FUNCTION_NAME}()")


def _create_function(notifier: PubSub) -> bool:
    """Create the trigger function if it is missing; whether this created it."""
    rows: List[Any] = notifier.conn.execute(
        f"SELECT to_regprocedure('{triggers.FUNCTION_NAME}()')::text")
    if rows and rows[0][0] is not None:
        return False
    triggers.create_tables_notify_func(notifier)
    return True
