"""Incremental decoder for backend messages: bytes in any chunking in, typed messages out.

The decoder is strict: a message must be exactly as long as its fields, every
string must be NUL-terminated and valid UTF-8, and unknown message types or
implausible lengths are rejected.  Anything wrong raises ``ProtocolViolation``;
nothing else escapes.  Messages that were complete before the bad bytes are
still handed out first, and the error is raised on the next call.
"""

from __future__ import annotations

import sys
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
# Messages of one length in a run before take_run is tried.  Not on PyPy: its JIT runs
# the one-message loop faster than take_run's C calls there.
_BULK_AFTER = 8 if sys.implementation.name == "cpython" else sys.maxsize


# (messages, notifications as the queue keeps them, payloads in runs beyond one each, where
# the bytes not decoded start, bytes needed from there, the violation met): see decode().
Decoded = Tuple[List[m.BackendMessage], List[Any], int, int, int, Optional[ProtocolViolation]]


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

        With ``pending``, notifications go into it instead, compactly: from a
        sender's third ``Notify`` in a row on one channel, the next ones are kept as
        bare payloads in a run (see pending.py).
        """
        if self._error is not None:
            raise self._error
        tail = self._tail
        if tail:
            tail += data  # amortised append: a large message in small chunks stays linear
            if len(tail) < self._need:
                return []
            buf = bytes(tail)
        else:
            buf = data if type(data) is bytes else bytes(data)
        out, notes, extra, end, need, error = self.decode(buf, pending is not None)
        if notes and pending is not None:
            pending.add(notes, extra)
        if error is not None:
            self._error = error
            self._tail = bytearray()
            if not out:
                raise error
            return out
        if end < len(buf):
            self._tail = bytearray(buf[end:])
        elif tail:
            self._tail = bytearray()
        self._need = need
        return out

    def decode(self, buf: bytes, compact: bool = False) -> Decoded:
        """The messages ``buf`` holds, from its start, changing nothing but caches: what
        ``Machine.take_in`` commits at once, so that an interrupt can cut nothing in two.

        Returns ``(messages, notes, extra, end, need, error)``: the messages in order
        (with ``compact``, all but the notifications, which are in ``notes`` as the
        queue keeps them, its runs holding ``extra`` payloads beyond one each), where the
        bytes not decoded start, how many bytes from there parsing needs before it can
        make progress, and the protocol violation met, if any (what came before it is
        returned, and nothing after).

        This is the receive hot path: no per-message dispatch, one dictionary lookup for
        a notification's sender, no tuple per payload of a run, and a long run of
        payloads of one length taken many at a time (see _bulk.py).  One function on
        purpose: its state lives in local variables, as a call or an attribute per
        message would cost about as much as the message's own work.
        """
        if len(buf) <= _SMALL:
            # A command's whole reply (CommandComplete, ReadyForQuery...) repeats byte
            # for byte, and its messages are immutable: parsed once, found by its bytes.
            known = _ROUTINE_CHUNKS.get(buf)
            if known is not None:
                return list(known), [], 0, len(buf), 0, None
        out: List[m.BackendMessage] = []
        notes: List[Any] = []
        add: Callable[[Any], None] = notes.append if compact else out.append
        runs: List[Run] = []
        run_add: Optional[Callable[[str], None]] = None
        run_extend: Callable[[List[str]], None] = _no_run  # a run's, once one begins
        run_length = streak = 0  # a run's last message length, and how many had it in a row
        first = None  # the Notify a run's payloads would follow: a sender's second in a row
        pos = 0
        size = len(buf)
        last_header = size - 8  # a notification's header (type, length, pid) fits before
        need = 0
        routine_bytes = 0  # bytes of routine replies: a chunk of nothing else is remembered
        make = tuple.__new__
        rfind = buf.rfind
        known_source = self._sources.get
        notify = m.Notify
        length_at = _INT32
        last_sender: Optional[Tuple[int, str]] = None  # the last notification's pid, channel
        pid, channel = 0, ""
        # A run's sender: its pid and channel with the NUL, and the span from a message's
        # start to its payload.
        last_source, span = b"", 0
        try:
            while pos < size:
                # The hot path: a run of complete, well-formed NotificationResponses.
                while pos < last_header and buf[pos] == 65:
                    (length,) = length_at(buf, pos + 1)
                    end = pos + 1 + length
                    if end > size or length < 10:
                        break  # another message, incomplete or invalid: the general path
                    if buf[end - 1]:
                        raise Malformed("notification strings are not NUL-terminated")
                    if run_add is not None:
                        # In a run: the same sender and channel again, most likely.
                        cut = pos + span
                        if cut < end and buf[pos + 5 : cut] == last_source:
                            if length != run_length:
                                run_length, streak = length, 0
                            else:
                                streak += 1
                                if streak >= _BULK_AFTER:
                                    # Many of one length: this one and the next ones at
                                    # once (see _bulk.py), at most twice as many as came
                                    # one at a time, so a failed try costs at most twice
                                    # what those did.
                                    taken = take_run(buf, cut, length, 2 * streak, last_source)
                                    if taken is not None:
                                        payloads, pos = taken
                                        run_extend(payloads)
                                        streak += len(payloads)
                                        continue
                                    streak = -streak  # not such a run: wait as long again
                            payload = buf[cut : end - 1].decode()
                            if "\0" in payload:
                                raise Malformed("a notification holds more than two strings")
                            run_add(payload)
                            pos = end
                            continue
                    # The payload runs from the last NUL before the terminating one, so it
                    # holds none.  The sender's pid and the channel with its NUL come
                    # before: without that NUL (nul is -1) they are empty, which no known
                    # sender is; a NUL in the channel is checked when the sender is new.
                    nul = rfind(0, pos + 9, end - 1)
                    source = buf[pos + 5 : nul + 1]
                    sender = known_source(source)
                    if sender is None:
                        sender = self._new_source(source)
                    payload = buf[nul + 1 : end - 1].decode()
                    if sender is not last_sender:
                        pid, channel = last_sender = sender
                        add(make(notify, (pid, channel, payload)))
                        first = run_add = None
                    elif first is None or not compact:
                        first = make(notify, (pid, channel, payload))
                        add(first)
                    else:
                        # The same sender a third time: a run begins (see pending.py); a
                        # second one alone is cheaper kept whole.
                        run = [RUN_START, first, payload]
                        add(run)
                        runs.append(run)
                        run_add, run_extend = run.append, run.extend
                        last_source, span = source, nul + 1 - pos
                        run_length, streak = length, 0
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
                    last_sender = first = run_add = None  # no run continues past it
                else:
                    out.append(message)
                pos = end
        except (Malformed, StructError, ValueError, IndexError) as exc:
            error: Optional[ProtocolViolation] = ProtocolViolation(
                f"the server sent a malformed message ({exc}); closing the connection"
            )
            pos = size
        else:
            error = None
            if routine_bytes == size <= _SMALL and len(_ROUTINE_CHUNKS) < _ROUTINE_LIMIT:
                _ROUTINE_CHUNKS[buf] = tuple(out)  # routine replies only, nothing else
        extra = sum(map(len, runs)) - (RUN_START + 1) * len(runs) if runs else 0
        return out, notes, extra, pos, need, error

    def _new_source(self, source: bytes) -> Tuple[int, str]:
        """A sender's pid and channel from its bytes, NUL included."""
        if not source:
            raise Malformed("notification strings are not NUL-terminated")
        if source.find(0, 4) != len(source) - 1:
            raise Malformed("a notification holds more than two strings")
        if len(self._sources) >= _CACHE_SIZE:
            self._sources.clear()
        pid_and_channel = self._sources[source] = (_INT32(source)[0], source[4:-1].decode())
        return pid_and_channel

    def check(self) -> None:
        """Raise the protocol violation found by an earlier ``feed``, if any."""
        if self._error is not None:
            raise self._error
