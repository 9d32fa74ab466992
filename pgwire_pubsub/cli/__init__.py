"""The ``pgwire-pubsub`` command (also ``python -m pgwire_pubsub``): listen, notify, demo."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from typing import Iterator, List, Optional

from .. import __version__
from ..errors import Error
from . import demo, listen, notify
from .common import (
    EXIT_CODES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Failure,
    Parser,
    UsageError,
    raise_interrupt,
    warn,
)

__all__ = ["main"]

DESCRIPTION = """\
PostgreSQL LISTEN/NOTIFY from the command line, in pure Python (no libpq).

Connection options (-h, -p, -U, -d, --dsn, -W) come after the command, as in
psql; the PG* environment variables and ~/.pgpass apply too. Each command has
its own --help."""
EXAMPLES = """\
examples:
  pgwire-pubsub listen orders
  pgwire-pubsub notify orders 'order 42 shipped'
  pgwire-pubsub listen --json -h db.example.com -U app -d shop orders
  pgwire-pubsub demo"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG, description=DESCRIPTION, epilog=f"{EXAMPLES}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False,
        allow_abbrev=False)
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    subparsers.required = True
    listen.add_parser(subparsers)
    notify.add_parser(subparsers)
    demo.add_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)  # exits with EXIT_USAGE on a usage error
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # any text prints, whatever the terminal's encoding
        reconfigure(errors="backslashreplace")
    with sigterm_as_interrupt():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        code: int = args.run(args)
        return code
    except UsageError as exc:
        warn(f"error: {exc}")
        return EXIT_USAGE
    except (Failure, Error) as exc:  # Error: a library error no command turned into words
        warn(f"error: {exc}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (``listen | head -1``): a normal end.
        _silence_stdout()
        return EXIT_OK


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C (so that cleanups run), unless it was ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _silence_stdout() -> None:
    """Keep Python from complaining at exit when it flushes the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
