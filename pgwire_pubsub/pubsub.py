"""The pgpubsub API: connect(), PubSub with listen/unlisten/notify/get_event/get_events/events."""

from __future__ import annotations

import time
from typing import Any, Iterator, List, Optional, Set, Union

from .client import Connection, connect_raw
from .errors import InterfaceError
from .protocol.messages import Notify

MAX_CHANNEL_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer identifiers
MAX_PAYLOAD_BYTES = 7999  # NOTIFY rejects payloads of 8000 bytes or more

NOTIFY_SQL = "SELECT pg_notify($1, $2)"


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier: exact, case kept, safe for any string without NUL."""
    return '"' + name.replace('"', '""') + '"'


def check_channel(channel: str) -> str:
    if not isinstance(channel, str):
        raise TypeError(f"a channel name must be a str, not {type(channel).__name__}")
    if not channel:
        raise ValueError("a channel name cannot be empty")
    if "\0" in channel:
        raise ValueError(f"a channel name cannot contain a NUL character: {channel!r}")
    size = len(channel.encode("utf-8"))
    if size > MAX_CHANNEL_BYTES:
        raise ValueError(
            f"channel name is {size} bytes in UTF-8; PostgreSQL accepts at most "
            f"{MAX_CHANNEL_BYTES} (it would silently truncate a longer name in LISTEN)"
        )
    return channel


def check_payload(payload: Optional[str]) -> str:
    if payload is None:
        return ""
    if not isinstance(payload, str):
        raise TypeError(f"a payload must be a str, not {type(payload).__name__}")
    if "\0" in payload:
        raise ValueError("a payload cannot contain a NUL character")
    size = len(payload.encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"payload is {size} bytes in UTF-8; PostgreSQL accepts at most {MAX_PAYLOAD_BYTES}"
        )
    return payload


class PubSub:
    """LISTEN/NOTIFY on one connection, with pgpubsub's methods."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.channels: Set[str] = set()

    def listen(self, channel: str) -> None:
        """Subscribe to ``channel`` (an exact name: no case folding, any characters)."""
        self.conn.execute("LISTEN " + quote_ident(check_channel(channel)))
        self.channels.add(channel)

    def unlisten(self, channel: Optional[str] = None) -> None:
        """Unsubscribe from ``channel``; with no channel (or ``'*'``), from every channel."""
        if channel is None or channel == "*":
            self.conn.execute("UNLISTEN *")
            self.channels.clear()
            return
        self.conn.execute("UNLISTEN " + quote_ident(check_channel(channel)))
        self.channels.discard(channel)

    def notify(self, channel: str, payload: Optional[str] = None) -> None:
        """Send ``payload`` (default empty) on ``channel``; both are sent as parameters."""
        values: List[Optional[str]] = [check_channel(channel), check_payload(payload)]
        self.conn.execute(NOTIFY_SQL, values)

    def get_event(self, select_timeout: Optional[float] = 0) -> Optional[Notify]:
        """The next notification, waiting up to ``select_timeout`` seconds; None if none came."""
        pending = self.conn.notifications
        if not pending or self.conn.closed == 1:
            self._wait(select_timeout)
        return pending.popleft() if pending else None

    def get_events(self, select_timeout: Optional[float] = 0) -> Optional[List[Notify]]:
        """Every notification waiting (after up to ``select_timeout`` seconds), or None."""
        pending = self.conn.notifications
        if not pending or self.conn.closed == 1:
            self._wait(select_timeout)
        if not pending:
            return None
        events = list(pending)
        pending.clear()
        return events

    def events(
        self, select_timeout: Optional[float] = 5, yield_timeouts: bool = False
    ) -> Iterator[Optional[Notify]]:
        """Notifications as they arrive, forever; with ``yield_timeouts``, None after
        each ``select_timeout`` seconds without one."""
        pending = self.conn.notifications
        while True:
            while pending and self.conn.closed != 1:
                yield pending.popleft()
            self._wait(select_timeout)
            if not pending and yield_timeouts:
                yield None

    def _wait(self, timeout: Optional[float]) -> None:
        """Wait for a notification until ``timeout`` (None: no limit, as with select)."""
        if self.conn.closed == 1:
            raise InterfaceError("connection already closed")
        pending = self.conn.notifications
        if timeout is None:
            while not pending:
                self.conn.wait_notifications(None)
            return
        deadline = time.monotonic() + timeout
        while True:
            self.conn.wait_notifications(max(0.0, deadline - time.monotonic()))
            if pending or time.monotonic() >= deadline:
                return

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PubSub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<pgwire_pubsub.PubSub channels={sorted(self.channels)!r} conn={self.conn!r}>"


def connect(dsn: Optional[str] = None, **kwargs: Any) -> PubSub:
    """Connect and return a ``PubSub``; takes what ``psycopg2.connect()`` takes."""
    return PubSub(connect_raw(dsn, **kwargs))


ConnectionLike = Union[Connection, PubSub]


def as_connection(conn: ConnectionLike) -> Connection:
    return conn.conn if isinstance(conn, PubSub) else conn
