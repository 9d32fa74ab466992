"""Incremental decoder for backend messages: bytes in any chunking in, typed messages out.

The decoder is strict: a message must be exactly as long as its fields, every
string must be NUL-terminated and valid UTF-8, and unknown message types or
implausible lengths are rejected.  Anything wrong raises ``ProtocolViolation``;
nothing else escapes.  Messages that were complete before the bad bytes are
still handed out first, and the error is raised on the next call.
"""

from __future__ import annotations

import sys
from itertools import repeat
from struct import Struct, unpack_from
from struct import error as StructError
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import ProtocolViolation
from . import messages as m
from ._bodies import PARSERS, Malformed
from ._bulk import take_run
from .pending import RUN_START, Pending, Run

# libpq's rule: only these message types may be long; any other over 30000
# bytes means the stream is corrupt (or not PostgreSQL at all).
LONG_MESSAGE_TYPES = frozenset(b"TDdVENA")
MAX_SHORT_MESSAGE = 30000
MAX_LONG_MESSAGE = 0x3FFFFFFF  # PostgreSQL's own allocation limit, 1 GiB - 1


_KNOWN_TYPES = frozenset(PARSERS)
# Small routine replies, parsed once: ReadyForQuery, ParseComplete, BindComplete, a
# CommandComplete such as "SELECT 1", pg_notify's empty DataRow...
_ROUTINE_KINDS = frozenset(b"ZCD123nIs")
_SMALL = 40
_ROUTINE: Dict[bytes, m.BackendMessage] = {}
_ROUTINE_CHUNKS: Dict[bytes, Tuple[m.BackendMessage, ...]] = {}
_ROUTINE_LIMIT = 256

_CACHE_SIZE = 1024  # distinct (sender pid, channel) pairs remembered
_INT32 = Struct("!i").unpack_from
_NO_SOURCE = b"-"  # never equal to the empty slice a span of 0 takes
# Notifications of one sender in a row before take_run is tried.  Not on PyPy: its JIT
# runs the one-message loop in half the time take_run's C calls take there.
_BULK_AFTER = 8 if sys.implementation.name == "cpython" else sys.maxsize


def _no_run(payloads: List[str]) -> None:
    raise AssertionError("no run to extend")  # pragma: no cover


class Decoder:
    """Feed it bytes as they arrive; it returns every message completed so far."""

    __slots__ = ("_error", "_need", "_sources", "_tail")

    def __init__(self) -> None:
        # A notification's sender pid and channel, by their bytes: both repeat, and one
        # shared object each saves memory and work.
        self._sources: Dict[bytes, Tuple[int, str]] = {}
        self._tail = bytearray()
        self._need = 0  # bytes the tail must reach before parsing can make progress
        self._error: Optional[ProtocolViolation] = None

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole message."""
        return len(self._tail)

    def feed(self, data: bytes, pending: Optional[Pending] = None) -> List[m.BackendMessage]:
        """Every message completed by ``data``, in order.

        With ``pending``, notifications go into it instead, compactly: after a
        sender's first ``Notify``, its next ones on the same channel are kept as
        bare payloads in a run (see pending.py).  This is the receive hot path: no
        intermediate list, no per-message dispatch, no tuple per payload of a run,
        and a long run's payloads taken many at a time (see bulk.py).
        """
        if self._error is not None:
            raise self._error
        tail = self._tail
        if not tail and len(data) <= _SMALL and type(data) is bytes:
            # A command's whole reply (CommandComplete, ReadyForQuery...) repeats byte
            # for byte, and its messages are immutable: parsed once, found by its bytes.
            known = _ROUTINE_CHUNKS.get(data)
            if known is not None:
                return list(known)
        if tail:
            tail += data  # amortised append: a large message in small chunks stays linear
            if len(tail) < self._need:
                return []
            buf = bytes(tail)
        else:
            buf = data if type(data) is bytes else bytes(data)
        out: List[m.BackendMessage] = []
        add: Callable[[Any], None] = out.append if pending is None else pending.items.append
        runs: List[Run] = []
        run_add: Optional[Callable[[str], None]] = None
        run_extend: Callable[[List[str]], None] = _no_run  # a run's, once one begins
        streak = 0  # notifications of the last sender in a row: long runs go to take_run
        run_from = 0  # where the streak (or what followed a failed take_run) began
        first = None  # the Notify a run's payloads follow
        pos = 0
        size = len(buf)
        need = 0
        routine_bytes = 0  # bytes of routine replies: a chunk of nothing else is remembered
        make = tuple.__new__
        rfind = buf.rfind
        known_source = self._sources.get
        notify = m.Notify
        length_at = _INT32
        # The last sender's pid and channel, with the channel's NUL, and the span from a
        # message's start to its payload when it has that sender; none at first.
        last_source, span = _NO_SOURCE, 0
        pid, channel = 0, ""
        try:
            while pos < size:
                # The hot path: a run of complete, well-formed NotificationResponses.
                while size - pos >= 9 and buf[pos] == 65:
                    (length,) = length_at(buf, pos + 1)
                    end = pos + 1 + length
                    if end > size or length < 10:
                        break  # incomplete or invalid: the general path decides
                    if buf[end - 1]:
                        raise Malformed("notification strings are not NUL-terminated")
                    cut = pos + span
                    if cut < end and buf[pos + 5 : cut] == last_source:
                        # The previous sender and channel again (and the channel's NUL):
                        # the rest is the payload, which may hold no NUL of its own.
                        streak += 1
                        if streak >= _BULK_AFTER and (run_add is not None or pending is None):
                            # A long run: this one and the next ones at once (see bulk.py),
                            # in a window twice the bytes since the run (or the last try)
                            # began, so that a failed try costs at most twice what the
                            # one-message path has done meanwhile.
                            window = 2 * (end - run_from)
                            taken = take_run(buf, cut, end - 1 - cut, cut + window, last_source)
                            if taken is not None:
                                payloads, pos = taken
                                if pending is None:
                                    out += map(make, repeat(notify),
                                               zip(repeat(pid), repeat(channel), payloads))
                                else:
                                    run_extend(payloads)
                                streak += len(payloads)
                                continue
                            streak, run_from = -streak, end  # not a run: wait as long again
                        payload = buf[cut : end - 1].decode()
                        if "\0" in payload:
                            raise Malformed("a notification holds more than two strings")
                        if run_add is not None:
                            run_add(payload)
                        elif pending is None:
                            add(make(notify, (pid, channel, payload)))
                        else:
                            # The same sender again: a run begins (see pending.py).
                            run = [RUN_START, first, payload]
                            add(run)
                            runs.append(run)
                            run_add, run_extend = run.append, run.extend
                    else:
                        # The payload runs from the last NUL before the terminating one,
                        # so it holds none; a NUL in the channel is checked when new.
                        nul = rfind(0, pos + 9, end - 1)
                        if nul < 0:
                            raise Malformed("notification strings are not NUL-terminated")
                        source = buf[pos + 5 : nul]  # the sender's pid and the channel
                        pid, channel = known_source(source) or self._new_source(source)
                        first = make(notify, (pid, channel, buf[nul + 1 : end - 1].decode()))
                        add(first)
                        last_source = buf[pos + 5 : nul + 1]
                        span = nul + 1 - pos
                        run_add = None
                        streak, run_from = 0, pos
                    pos = end
                if pos >= size:
                    break
                kind = buf[pos]
                if kind not in _KNOWN_TYPES:
                    raise Malformed(f"unknown message type {bytes([kind])!r}")
                if size - pos < 5:
                    need = 5
                    break
                (length,) = unpack_from("!i", buf, pos + 1)
                if length < 4:
                    raise Malformed(f"message length {length} is below the minimum of 4")
                limit = MAX_LONG_MESSAGE if kind in LONG_MESSAGE_TYPES else MAX_SHORT_MESSAGE
                if length > limit:
                    raise Malformed(f"message length {length} exceeds the limit of {limit}")
                end = pos + 1 + length
                if end > size:
                    need = end - pos
                    break
                if length <= _SMALL and kind in _ROUTINE_KINDS:
                    # A command's routine replies repeat byte for byte: one shared object
                    # each (they are immutable), found by their bytes.
                    raw = buf[pos:end]
                    message = _ROUTINE.get(raw)
                    if message is None:
                        message = PARSERS[kind](raw, 5, length + 1)
                        if len(_ROUTINE) < _ROUTINE_LIMIT:
                            _ROUTINE[raw] = message
                    out.append(message)
                    routine_bytes += length + 1
                    pos = end
                    continue
                # A separate body, so no field read can run into the next message.
                message = PARSERS[kind](buf[pos + 5 : end], 0, length - 4)
                if kind == 65:
                    add(message)
                    last_source, span, run_add = _NO_SOURCE, 0, None  # no run continues past it
                    streak, run_from = 0, pos
                else:
                    out.append(message)
                pos = end
        except (Malformed, StructError, ValueError, IndexError) as exc:
            self._error = ProtocolViolation(
                f"the server sent a malformed message ({exc}); closing the connection"
            )
            self._tail = bytearray()
            if not out:
                raise self._error from exc
            return out
        finally:
            if runs and pending is not None:
                pending.dirty = True
                pending.extra += sum(map(len, runs)) - (RUN_START + 1) * len(runs)
                pending.dirty = False
        if pos < size:
            self._tail = bytearray(buf[pos:])
        elif tail:
            self._tail = bytearray()
        elif routine_bytes == size <= _SMALL and len(_ROUTINE_CHUNKS) < _ROUTINE_LIMIT:
            _ROUTINE_CHUNKS[buf] = tuple(out)  # routine replies only, nothing else
        self._need = need
        return out

    def _new_source(self, source: bytes) -> Tuple[int, str]:
        if source.find(0, 4) >= 0:
            raise Malformed("a notification holds more than two strings")
        if len(self._sources) >= _CACHE_SIZE:
            self._sources.clear()
        pid_and_channel = self._sources[source] = (_INT32(source)[0], source[4:].decode())
        return pid_and_channel

    def check(self) -> None:
        """Raise the protocol violation found by an earlier ``feed``, if any."""
        if self._error is not None:
            raise self._error
