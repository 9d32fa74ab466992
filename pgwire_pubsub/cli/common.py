"""What the commands share: connection options as in psql, exit codes, messages, signals."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import shlex
import shutil
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

from .. import PubSub
from .._blocking.connection import Connection
from ..conninfo import ConnParams, make_params
from ..errors import Error, NotSupportedError, ProgrammingError

PROG = "pgwire-pubsub"

EXIT_OK = 0
EXIT_FAILURE = 1  # cannot connect or authenticate, the connection was lost, the server refused
EXIT_USAGE = 2  # bad options or arguments, invalid connection settings, input that cannot be sent
EXIT_INTERRUPTED = 130  # notify or demo stopped by Ctrl-C or SIGTERM

EXIT_CODES = """\
exit codes:
  0    success (for listen also: stopped by --count, --timeout, Ctrl-C or SIGTERM)
  1    cannot connect or authenticate, connection lost, the server refused,
       or (demo) no throwaway server can be started
  2    usage: bad options or arguments, invalid connection settings, input that
       cannot be sent (payload too long, NUL character, invalid UTF-8)
  130  notify or demo interrupted by Ctrl-C or SIGTERM"""

CONNECTION_HELP = """\
connection settings also come from the PG* environment variables (PGHOST,
PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGSSLMODE, PGSERVICE...) and the
password from ~/.pgpass, as with psql; options given here win."""


# The command-line option that sets each connection keyword.
OPTION_OF = {"host": "-h/--host", "port": "-p/--port", "user": "-U/--username",
             "dbname": "-d/--dbname"}
NO_PASSWORD = re.compile(r"(but none was supplied): .*", re.S)  # the library's advice


class UsageError(Exception):
    """Exit with EXIT_USAGE and this message."""


class Parser(argparse.ArgumentParser):
    """Usage errors point to --help, which is the only help option: -h is the host."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        hint = "for help, use --help"
        if re.search(r"(?<![\w-])-h\b", message):
            hint = "-h is the server's host, as in psql; " + hint
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n{self.prog}: {hint}\n")


class Failure(Exception):
    """Exit with EXIT_FAILURE and this message."""


def say(message: str = "", *, end: str = "\n") -> None:
    """A line for the person at the terminal (stdout), at once."""
    sys.stdout.write(message + end)
    sys.stdout.flush()


def command_name() -> str:
    """How to start this command again, for the commands we suggest: ``pgwire-pubsub``
    when that is on ``PATH``, else the path it was started by (``.venv/bin/pgwire-pubsub``
    from a virtualenv that is not activated), or ``python -m pgwire_pubsub``."""
    started_as = sys.argv[0] if sys.argv else ""
    if os.path.basename(started_as) == "__main__.py":
        return f"{shlex.quote(sys.executable)} -m pgwire_pubsub"
    if os.path.basename(started_as) != PROG:
        return PROG  # main() called from other code
    found = shutil.which(PROG)
    try:
        if found is not None and os.path.samefile(found, started_as):
            return PROG
    except OSError:
        pass
    return shlex.quote(started_as)


def warn(message: str) -> None:
    """A line on stderr, prefixed with the program's name."""
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def command_parser(subparsers: Any, name: str, summary: str, usage_notes: str,
                   examples: str) -> argparse.ArgumentParser:
    """A subcommand's parser: ``--help`` only (``-h`` is the host), examples in the epilog."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=summary + ("\n\n" + usage_notes if usage_notes else ""),
        epilog=f"examples:\n{examples}\n\n{CONNECTION_HELP}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False,
        allow_abbrev=False)
    parser.add_argument("--help", action="help", help="show this help and exit")
    return parser


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection options (as in psql)")
    group.add_argument("-h", "--host", metavar="HOSTNAME",
                       help="server host name, address or socket directory")
    group.add_argument("-p", "--port", metavar="PORT", help="server port")
    group.add_argument("-U", "--username", metavar="USERNAME", help="user name")
    group.add_argument("-d", "--dbname", metavar="DBNAME",
                       help="database name, or a whole connection string")
    group.add_argument("--dsn", metavar="CONNINFO",
                       help="a connection string ('host=... dbname=...') or a postgresql:// "
                            "URI; the options above win over what it says")
    group.add_argument("-W", "--password", action="store_true",
                       help="prompt for the password (there is no option that takes one: "
                            "use the prompt, PGPASSWORD or ~/.pgpass)")


def has_connection_options(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) for name in ("host", "port", "username", "dbname", "dsn"))


def _is_conninfo(text: str) -> bool:
    """Whether a -d value is a connection string, as libpq decides (expand_dbname)."""
    return "=" in text or re.match(r"postgres(ql)?://", text) is not None


def resolve(args: argparse.Namespace) -> ConnParams:
    """The connection parameters the options, PG* variables and files give.

    Invalid settings raise ``UsageError``; with ``-W``, asks for the password first.
    """
    dsn: Optional[str] = args.dsn
    dbname: Optional[str] = args.dbname
    if dbname and _is_conninfo(dbname):
        if dsn:
            raise UsageError("give a connection string with -d or with --dsn, not both")
        dsn, dbname = dbname, None
    keywords: Dict[str, Optional[str]] = {
        "host": args.host, "port": args.port, "user": args.username, "dbname": dbname,
        "fallback_application_name": PROG}
    try:
        params = make_params(dsn, **keywords)
        if args.password:
            keywords["password"] = ask_password(params.user)
            params = make_params(dsn, **keywords)
    except (ProgrammingError, NotSupportedError, TypeError) as exc:
        raise UsageError(_settings_error(str(exc), keywords, dsn)) from None
    return params


def _settings_error(message: str, keywords: Dict[str, Optional[str]],
                    dsn: Optional[str]) -> str:
    """The library's message, naming the option that gave the bad value, if one did
    (options win over everything else), and not speaking of a dsn when none was given."""
    if dsn is None and message.startswith("invalid dsn: "):
        message = message[len("invalid dsn: "):]
    named = re.search(r'connection option "(\w+)"', message)
    if named and named.group(1) in OPTION_OF and keywords.get(named.group(1)) is not None:
        return f"{OPTION_OF[named.group(1)]}: {message}"
    return f"invalid connection settings: {message}"


def ask_password(user: str) -> str:
    """``-W``: read the password from the terminal, never from stdin (which may carry data)."""
    if os.name == "posix":
        try:
            with open("/dev/tty"):
                pass
        except OSError:
            raise UsageError("-W/--password needs a terminal to ask on; without one, use "
                             "PGPASSWORD or ~/.pgpass") from None
    try:
        return getpass.getpass(f"Password for user {user}: ")
    except EOFError:
        raise UsageError("no password was entered") from None


def open_pubsub(params: ConnParams, **options: Any) -> PubSub:
    """Connect; any failure to connect or log in raises ``Failure``."""
    try:
        return PubSub(Connection(params), **options)
    except Error as exc:
        # The library's advice (password=...) is for code; this is a command line.
        raise Failure(NO_PASSWORD.sub(r"\1: use -W to be asked for it, or set PGPASSWORD, "
                                      r"or put it in ~/.pgpass", str(exc))) from None


class StopOnSignal:
    """While active, Ctrl-C, SIGTERM and SIGHUP set ``requested`` and call ``on_stop``
    once, from the signal handler (so it must be safe there, as ``PubSub.close`` is);
    later signals only find it requested already.  A signal ignored when we started
    (``nohup``, a background job's Ctrl-C) stays ignored."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, name))

    def __init__(self, on_stop: Callable[[], object]) -> None:
        self.on_stop = on_stop
        self.requested = False
        self._saved: List[Tuple[int, Any]] = []

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if not self.requested:
            self.requested = True
            self.on_stop()

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._saved = [(sig, signal.signal(sig, self._handle)) for sig in self.SIGNALS
                           if signal.getsignal(sig) is not signal.SIG_IGN]
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved:
            signal.signal(sig, handler)
        self._saved = []


def raise_interrupt(signum: int, frame: Optional[FrameType]) -> None:
    """A SIGTERM handler that unwinds like Ctrl-C, so that cleanups run."""
    raise KeyboardInterrupt
