"""The states of a session's protocol (``Machine.state``)."""

from __future__ import annotations

import enum


class State(enum.Enum):
    NEW = "new"  # nothing sent yet (or TLS just agreed on)
    TLS_REQUESTED = "waiting for the answer to SSLRequest"
    STARTUP = "startup"  # StartupMessage sent, until the first ReadyForQuery
    READY = "ready"  # idle: a command may be sent
    BUSY = "busy"  # a command is in flight, until its ReadyForQuery
    CLOSED = "closed"  # terminated, lost or broken: nothing more is sent or accepted
