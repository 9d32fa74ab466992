"""Many notifications of one sender at once: the receive burst's fast path.

A burst from one transaction is a long run of NotificationResponses with the
same sender pid and channel.  Between two payloads of such a run the bytes are
always the same shape: the payload's NUL, ``A``, the next message's length, and
the sender's pid and channel with its NUL (its "source").  ``bytes.split`` on
the source cuts a whole window of them in C; the pieces are then checked
against the messages they must be, rebuilt in one ``join``, so the decoder stays
exactly as strict as its one-message path, and anything unexpected (another
sender in between, a NUL or invalid UTF-8 in a payload, a wrong length) just
returns None for that path to handle one message at a time.

Why a matching rebuild is exactly those messages: every piece is at least a
trailer long (checked), so each one is a payload, its NUL, and the header of
the message whose payload the next piece starts with; the rebuild writes each
header's length from that next piece's size, and the first message's length
was checked by the caller.  A source found anywhere else (inside a payload, or
across binary header bytes) puts a piece where a header says none can be, and
the comparison fails.
"""

from __future__ import annotations

from itertools import chain, repeat
from operator import itemgetter
from struct import Struct
from typing import Dict, List, Optional, Tuple

_TRAILER = Struct("!xci").pack  # a payload's NUL, then the next message's type and length
_PAYLOAD = itemgetter(slice(None, -6))  # a piece less its trailer (pieces are never shorter)
_TRAILER_SIZE = 6
_HEADER_SIZE = 5  # type and length


class _Trailers(Dict[int, bytes]):
    """The bytes after a payload, by the length of the piece that follows them."""

    def __init__(self, source_size: int) -> None:
        super().__init__()
        self.extra = source_size - 1  # message length = piece length + this

    def __missing__(self, piece_size: int) -> bytes:
        trailer = self[piece_size] = _TRAILER(b"A", piece_size + self.extra)
        return trailer


def take_run(
    buf: bytes, start: int, first_size: int, stop: int, source: bytes
) -> Optional[Tuple[List[str], int]]:
    """The payloads of the whole messages with ``source`` found from ``start`` (the first
    one's payload, ``first_size`` bytes, whose header was checked) up to about ``stop``,
    and where the message after them starts; None when there are fewer than two, or
    when anything there is not exactly such a run."""
    pieces = buf[start:stop].split(source)
    count = len(pieces) - 1  # the last piece belongs to a message left for the caller
    if count < 2:
        return None
    pieces.pop()
    sizes = list(map(len, pieces))
    if sizes[0] != first_size + _TRAILER_SIZE or min(sizes) < _TRAILER_SIZE:
        return None
    last = pieces[-1][-_TRAILER_SIZE:]  # the next message's length: the caller checks it
    if last[:2] != b"\0A":
        return None
    payloads = list(map(_PAYLOAD, pieces))
    if sizes.count(sizes[1]) == count - (sizes[0] != sizes[1]):
        # Every piece after the first has one size (the first's may differ): payloads of
        # one length (ids, hashes, timestamps...), and one trailer between them all.
        between = _TRAILER(b"A", sizes[1] + len(source) - 1) + source
        rebuilt = between.join(payloads) + last + source
    else:
        trailers = list(map(_Trailers(len(source)).__getitem__, sizes[1:]))
        trailers.append(last)
        rebuilt = b"".join(chain.from_iterable(zip(payloads, trailers, repeat(source))))
    if not buf.startswith(rebuilt, start) or b"\0" in b"".join(payloads):
        return None
    try:
        texts = list(map(bytes.decode, payloads))
    except UnicodeDecodeError:
        return None
    return texts, start + len(rebuilt) - len(source) - _HEADER_SIZE
