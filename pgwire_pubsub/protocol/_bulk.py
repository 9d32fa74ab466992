"""Many notifications of one sender at once, when their payloads have one length.

A run of notifications with the same sender pid and channel and payloads of one
length (ids, UUIDs, hashes, timestamps...) repeats one shape: between two payloads
the bytes are always the same, the payload's NUL, ``A``, the next message's length
and the sender's pid and channel with its NUL (its "source").  ``bytes.split`` on
the source cuts a whole window of them in C; the messages they must be are rebuilt
with one ``join`` and compared with what came, so the decoder stays exactly as
strict as its one-message path: anything else there (another sender or length in
between, a NUL or invalid UTF-8 in a payload) returns None, for that path to
handle one message at a time.

Why a matching rebuild is exactly those messages: every piece is one payload, its
NUL and the header of the message whose payload the next piece starts with; each
header is rebuilt with the one length, and the first message's header was checked
by the caller.  A source found anywhere else (inside a payload, or across binary
header bytes) makes a piece of another size, or bytes that differ from the rebuild.
"""

from __future__ import annotations

from operator import itemgetter
from struct import Struct
from typing import List, Optional, Tuple

_TRAILER = Struct("!xci").pack  # a payload's NUL, then the next message's type and length
_PAYLOAD = itemgetter(slice(None, -6))  # a piece less its trailer
_TRAILER_SIZE = 6
_HEADER_SIZE = 5  # type and length


def take_run(
    buf: bytes, start: int, length: int, limit: int, source: bytes
) -> Optional[Tuple[List[str], int]]:
    """The payloads of the whole messages with ``source`` and the message length
    ``length`` found from ``start`` (the first one's payload, whose header was checked),
    at most ``limit`` of them, and where the message after them starts; None when there
    are fewer than two, or when anything there is not exactly such a run."""
    piece = length - len(source) - 5 + _TRAILER_SIZE  # payload, NUL, next type and length
    pieces = buf[start : start + limit * (length + 1)].split(source)
    count = len(pieces) - 1  # the last piece belongs to a message left for the caller
    if count < 2:
        return None
    pieces.pop()
    if list(map(len, pieces)).count(piece) != count:
        return None
    last = pieces[-1][-_TRAILER_SIZE:]  # the next message's header: the caller checks it
    if last[:2] != b"\0A":
        return None
    payloads = list(map(_PAYLOAD, pieces))
    between = _TRAILER(b"A", length) + source
    rebuilt = between.join(payloads) + last + source
    if not buf.startswith(rebuilt, start) or b"\0" in b"".join(payloads):
        return None
    try:
        texts = list(map(bytes.decode, payloads))
    except UnicodeDecodeError:
        return None
    return texts, start + len(rebuilt) - len(source) - _HEADER_SIZE
