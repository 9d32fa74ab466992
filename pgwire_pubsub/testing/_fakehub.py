"""The fake backend's shared state: which session listens on what, and delivery.

A commit applies the transaction's LISTEN/UNLISTEN first, then hands its
notifications to every session that listens on anything (the sender's own
included), all under one lock, so every session sees commits in one order.  A
session takes a notification at once when it is idle outside a transaction
block, else just before its next ReadyForQuery outside one; only then does it
look at the channel, as PostgreSQL reads its queue: a channel listened to by a
transaction that commits meanwhile gets what was sent on it in between.
"""

from __future__ import annotations

import itertools
import threading
from typing import Dict, Iterable, List, Optional, Tuple

from ..protocol import messages as m
from ..protocol.codec import build
from .fakeconn import FakeConn

Action = Tuple[str, Optional[str]]  # ("listen", channel), ("unlisten", channel or None: all)


class Listener:
    """What the hub needs of a session: its pid, channels and a way to deliver."""

    def __init__(self, conn: FakeConn, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        # Committed LISTENs, in order; changed by the session's own thread only.
        self.channels: Dict[str, None] = {}
        self.status = "I"  # transaction status: I idle, T in a block, E failed block
        self._busy = True  # from a message received until the ReadyForQuery that ends it
        self._queue: List[m.Notify] = []
        self._lock = threading.Lock()

    def deliver(self, notify: m.Notify) -> None:
        with self._lock:
            if self._busy or self.status != "I":
                self._queue.append(notify)
            elif notify.channel in self.channels:
                self.conn.send(build(notify))

    def busy(self) -> None:
        with self._lock:
            self._busy = True

    def ready(self) -> None:
        """ReadyForQuery, after the notifications that wait for it outside a block."""
        with self._lock:
            out = b""
            if self.status == "I":
                out = b"".join(build(n) for n in self._queue if n.channel in self.channels)
                self._queue.clear()
            self.conn.send(out + build(m.ReadyForQuery(self.status)))
            self._busy = False


class Hub:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: List[Listener] = []
        self._pids = itertools.count(20001)

    def new_pid(self) -> int:
        return next(self._pids)

    def join(self, session: Listener) -> None:
        with self.lock:
            self.sessions.append(session)

    def leave(self, session: Listener) -> None:
        with self.lock:
            if session in self.sessions:
                self.sessions.remove(session)

    def commit(self, sender: Listener, actions: Iterable[Action],
               notifications: Iterable[Tuple[str, str]]) -> None:
        with self.lock:
            for action, channel in actions:
                if action == "listen" and channel is not None:
                    sender.channels.setdefault(channel)
                elif channel is None:
                    sender.channels.clear()
                else:
                    sender.channels.pop(channel, None)
            for channel, payload in notifications:
                notify = m.Notify(sender.pid, channel, payload)
                for session in self.sessions:
                    if session.channels:
                        session.deliver(notify)
