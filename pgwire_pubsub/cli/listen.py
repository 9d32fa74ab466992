"""``pgwire-pubsub listen``: print notifications as they arrive."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from typing import Any, Optional

from .. import PubSub
from .._shared.channels import check_channel
from ..errors import Error
from ..protocol.events import Reconnected
from ..protocol.messages import Notify
from .common import (
    EXIT_OK,
    Failure,
    StopOnSignal,
    UsageError,
    add_connection_options,
    command_parser,
    open_pubsub,
    resolve,
    warn,
)

SUMMARY = "print notifications on one or more channels as they arrive"
NOTES = """\
Each notification is one line on stdout, flushed at once:

  TIME<TAB>CHANNEL<TAB>PID<TAB>PAYLOAD

TIME is when it was received (ISO 8601, local time, milliseconds), PID the
sending backend's process id. In CHANNEL and PAYLOAD a backslash, tab, newline
and carriage return are written as \\\\, \\t, \\n and \\r, so one notification is
always one line. With --json, each line is a JSON object instead:

  {"time": "...", "channel": "...", "pid": 1234, "payload": ...}

where a payload that is valid JSON is embedded as JSON (so the payload text
'"hi"' and the text 'hi' both show as "hi"), and any other payload as a string.

A line "listening on ..." on stderr says when notifications can arrive. Ctrl-C
or SIGTERM stops listening cleanly (exit code 0)."""
EXAMPLES = """\
  pgwire-pubsub listen orders                       # until Ctrl-C
  pgwire-pubsub listen -h db.example.com -U app -d shop orders refunds
  pgwire-pubsub listen --json orders | jq .payload.id
  pgwire-pubsub listen --count 1 --timeout 30 job_done   # wait for one, at most 30 s
  pgwire-pubsub listen --reconnect --dsn postgresql://app@db/shop orders"""


def add_parser(subparsers: Any) -> None:
    parser = command_parser(subparsers, "listen", SUMMARY, NOTES, EXAMPLES)
    parser.add_argument("channels", nargs="+", metavar="CHANNEL",
                        help="channel name, exactly as sent (no case folding)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--count", type=int, metavar="N",
                        help="stop after N notifications")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="stop after listening S seconds in all (not S seconds of "
                             "silence), with exit code 0 even when nothing came")
    parser.add_argument("--reconnect", action="store_true",
                        help="when the connection is lost, reconnect and listen again, "
                             "trying forever (the first connection must succeed; "
                             "notifications sent meanwhile are lost, and a line on stderr "
                             "marks each gap)")
    parser.add_argument("--ignore-own", action="store_true",
                        help="skip notifications sent by the listening session itself "
                             "(its own backend pid)")
    add_connection_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.timeout is not None and not args.timeout >= 0:
        raise UsageError("--timeout must be a number of seconds, 0 or more")
    channels = list(dict.fromkeys(args.channels))
    for channel in channels:
        try:
            check_channel(channel)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    pubsub = open_pubsub(resolve(args), reconnect=args.reconnect or None)
    with StopOnSignal(pubsub.close) as stop:
        try:
            for channel in channels:
                pubsub.listen(channel)
            warn(f"listening on {', '.join(channels)} (backend pid "
                 f"{pubsub.conn.get_backend_pid()}); Ctrl-C to stop")
            deadline = None if args.timeout is None else time.monotonic() + args.timeout
            _receive(pubsub, args, deadline, stop)
        except Exception as exc:
            if stop.requested:
                return EXIT_OK  # stopped by a signal: what the closing interrupted is moot
            if isinstance(exc, Error):
                raise Failure(str(exc)) from None
            raise
        finally:
            pubsub.close()
    return EXIT_OK


def _receive(pubsub: PubSub, args: argparse.Namespace, deadline: Optional[float],
             stop: StopOnSignal) -> None:
    ascii_only = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "") != "utf8"
    received = 0
    while not stop.requested:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        event = pubsub.get_event(select_timeout=left)
        if isinstance(event, Reconnected):
            warn(f"reconnected after {event.down_seconds:.1f} s ({event.attempts} "
                 f"attempt(s), backend pid {event.pid}); notifications sent while the "
                 "connection was down are lost")
        if not isinstance(event, Notify):
            continue
        if args.ignore_own and event.pid == pubsub.conn.get_backend_pid():
            continue
        line = _json_line(event, ascii_only) if args.json else _text_line(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        received += 1
        if args.count is not None and received >= args.count:
            return


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


def _escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _text_line(event: Notify) -> str:
    return f"{_now()}\t{_escape(event.channel)}\t{event.pid}\t{_escape(event.payload)}"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def payload_value(payload: str) -> Any:
    """The payload as JSON data when it is valid JSON, else the string itself."""
    try:
        return json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to decode
        return payload


def _json_line(event: Notify, ascii_only: bool) -> str:
    record = {"time": _now(), "channel": event.channel, "pid": event.pid,
              "payload": payload_value(event.payload)}
    return json.dumps(record, ensure_ascii=ascii_only)
