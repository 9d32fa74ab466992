"""``pgwire-pubsub notify``: send one notification, or one per line of standard input."""

from __future__ import annotations

import argparse
import collections
import os
import select
import sys
from typing import IO, Any, Deque, Iterator, List, Optional

from .._shared.channels import check_channel, check_payload
from ..errors import Error
from .common import (
    EXIT_OK,
    Failure,
    UsageError,
    add_connection_options,
    command_parser,
    open_pubsub,
    resolve,
    warn,
)

LINES_PER_CALL = 1000  # one notify_many call (one round trip, one transaction) per batch
READ_SIZE = 1 << 16
MAX_LINE = 1 << 20  # a longer line cannot be a payload (under 8000 bytes) anyway

SUMMARY = "send a notification, or one per line of standard input"
NOTES = """\
With a PAYLOAD, sends one notification. With PAYLOAD "-", or with no PAYLOAD
while standard input is not a terminal, sends one notification per input line
(UTF-8; the line ending, \\n or \\r\\n, is not part of the payload; an empty
line is an empty payload), in order, 1000 lines per round trip, streaming any
amount of input, and reports on stderr how many were sent. With no PAYLOAD at
a terminal, sends one notification with an empty payload; in a script, pass ''
for that."""
EXAMPLES = """\
  pgwire-pubsub notify orders 'order 42 shipped'
  pgwire-pubsub notify -h db.example.com -U app -d shop orders '{"id": 42}'
  tail -F app.log | pgwire-pubsub notify logs -      # one notification per line
  seq 10000 | pgwire-pubsub notify numbers"""


def add_parser(subparsers: Any) -> None:
    parser = command_parser(subparsers, "notify", SUMMARY, NOTES, EXAMPLES)
    parser.add_argument("channel", metavar="CHANNEL",
                        help="channel name, exactly as listened to (no case folding)")
    parser.add_argument("payload", nargs="?", metavar="PAYLOAD",
                        help="the payload (under 8000 bytes), or - for standard input")
    add_connection_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    channel: str = args.channel
    payload: Optional[str] = args.payload
    from_stdin = payload == "-" or (payload is None and not _is_terminal(sys.stdin))
    if from_stdin and sys.stdin is None:
        raise UsageError("there is no standard input to read payloads from")
    try:
        check_channel(channel)
        if not from_stdin:
            check_payload(payload)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    pubsub = open_pubsub(resolve(args))
    sent = 0
    try:
        if not from_stdin:
            pubsub.notify(channel, payload)
            return EXIT_OK
        for batch in _InputLines(sys.stdin.fileno()).batches(LINES_PER_CALL):
            sent += pubsub.notify_many((channel, line) for line in batch)
    except Error as exc:
        raise Failure(f"{exc}{_sent(sent, ' before the error')}") from None
    except UsageError as exc:
        raise UsageError(f"{exc}{_sent(sent, ' before it')}") from None
    except KeyboardInterrupt:
        warn(f"interrupted{_sent(sent, '')}")
        raise
    finally:
        pubsub.close()
    warn(f"sent {sent} notification{'' if sent == 1 else 's'} on {channel}")
    return EXIT_OK


def _sent(count: int, when: str) -> str:
    return f"; {count} notification(s) were sent{when}" if count else ""


def _is_terminal(stream: Optional[IO[str]]) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


class _InputLines:
    """Standard input's lines, in batches of at most ``size`` that end early when no more
    input is waiting, so a slow writer's lines go out at once (``tail -F | ...``).  Only
    the end of the file ends the input: each batch waits for at least one whole line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lines: Deque[bytes] = collections.deque()
        self.pending = bytearray()
        self.eof = False
        self.number = 0  # lines taken so far

    def _read(self) -> None:
        data = os.read(self.fd, READ_SIZE)
        if not data:
            self.eof = True
            if self.pending:
                self.lines.append(bytes(self.pending))
            return
        self.pending += data
        *complete, rest = self.pending.split(b"\n")
        self.lines.extend(bytes(line) for line in complete)
        self.pending = rest
        if len(self.pending) > MAX_LINE:
            raise UsageError(f"input line {self.number + len(self.lines) + 1} is too long")

    def _waiting(self) -> bool:
        if os.name != "posix":
            return True  # no select() on pipes: fill whole batches
        return bool(select.select([self.fd], [], [], 0)[0])

    def batches(self, size: int) -> Iterator[List[str]]:
        while True:
            while not self.lines and not self.eof:  # a read may end inside a line
                self._read()
            while len(self.lines) < size and not self.eof and self._waiting():
                self._read()
            if not self.lines:
                return
            count = min(size, len(self.lines))
            yield [self._payload(self.lines.popleft()) for _ in range(count)]

    def _payload(self, raw: bytes) -> str:
        self.number += 1
        try:
            return check_payload((raw[:-1] if raw.endswith(b"\r") else raw).decode("utf-8"))
        except UnicodeDecodeError:
            raise UsageError(f"input line {self.number} is not valid UTF-8") from None
        except ValueError as exc:
            raise UsageError(f"input line {self.number}: {exc}") from None
