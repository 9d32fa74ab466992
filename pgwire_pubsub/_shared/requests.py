"""What the shared procedures ask a driver to do.

A procedure is a generator.  It yields a request, and the driver performs it and
resumes the procedure with the result (or throws the exception that performing
it raised, so the procedure's own ``except`` and ``finally`` clauses decide).

Opening a session (``opening.open_session``) yields:

- ``bytes``: send them; ``None``: wait for input and feed it to the session's
  ``Machine`` (the protocol steps' two requests);
- ``Resolve``, ``Connect``, ``StartTLS``, ``Deadline``, ``Disconnect``.

The pub/sub procedures (``pubsub.PubSubCore``) yield ``Execute``, ``Wait``,
``Open``, ``Close``, ``Sleep``, ``Clock``, ``Idle`` and ``Exclusive``.

Every wait a driver performs ends when the deadline set by the last ``Deadline``
passes (``TimeoutError``), or when the connection is closed or lost.
"""

from __future__ import annotations

import ssl
from typing import Any, Generator, NamedTuple, Optional, Sequence, Tuple, TypeVar

from ..protocol.machine import Machine

Address = Tuple[int, Tuple[Any, ...]]  # (family, sockaddr), as getaddrinfo gives them
SocketOption = Tuple[int, int, int]  # (level, option, value) for setsockopt

T = TypeVar("T")
Procedure = Generator[Any, Any, T]  # yields requests, returns a T


class Resolve(NamedTuple):
    """The addresses of ``host`` (name or numeric) and ``port``: a list of ``Address``."""

    host: str
    port: int


class Connect(NamedTuple):
    """Open a stream to ``address`` (or the Unix socket ``path`` when it is None), set
    ``options`` on it, and from then on feed what arrives to ``machine``."""

    address: Optional[Address]
    path: str
    options: Tuple[SocketOption, ...]
    machine: Machine


class StartTLS(NamedTuple):
    """Run the TLS handshake on the open stream; the result is the SSL object
    (``getpeercert``, ``selected_alpn_protocol``), and bytes flow through TLS after it."""

    context: ssl.SSLContext
    server_hostname: Optional[str]


class Deadline(NamedTuple):
    """Every wait from now on ends ``seconds`` from now (None: no deadline)."""

    seconds: Optional[float]


class Disconnect(NamedTuple):
    """Close the stream of this attempt (there may be none)."""


class Execute(NamedTuple):
    """Run SQL (``steps.execute``) on ``conn`` (None: the current connection), within
    ``timeout`` seconds; the result is the rows."""

    sql: str
    params: Optional[Sequence[Optional[str]]] = None
    timeout: Optional[float] = None
    conn: Any = None


class Wait(NamedTuple):
    """Wait up to ``timeout`` seconds (None: no limit) for input on the current
    connection and take it in; returns at once when notifications are waiting, unless
    ``more`` (for one that has not come yet).  A lost connection raises (and is marked
    lost)."""

    timeout: Optional[float]
    more: bool = False


class Open(NamedTuple):
    """A new connection with the current one's parameters."""


class Close(NamedTuple):
    """Close ``conn``."""

    conn: Any


class Sleep(NamedTuple):
    """Wait ``seconds``; the result is True when ``close()`` came meanwhile (the wait then
    ends at once)."""

    seconds: float


class Clock(NamedTuple):
    """The driver's monotonic clock, in seconds."""


class Idle(NamedTuple):
    """Seconds since the current connection last sent or received anything."""


class Exclusive(NamedTuple):
    """Run ``procedure`` while no other ``Exclusive`` procedure runs on this client (only
    matters where several tasks share one client); the result is its result."""

    procedure: Generator[Any, Any, Any]
