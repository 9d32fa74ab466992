"""Channel names and payloads: checked before anything is sent, and quoted safely."""

from __future__ import annotations

from typing import Optional, Sequence

MAX_CHANNEL_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer identifiers
MAX_PAYLOAD_BYTES = 7999  # NOTIFY rejects payloads of 8000 bytes or more



def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier: exact, case kept, safe for any string without NUL."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """An escape-string literal holding ``value`` exactly, for any string without NUL.

    ``E'...'`` reads backslashes the same way whatever ``standard_conforming_strings``
    says, and the client encoding is always UTF8, so no byte can end the literal early.
    """
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def notify_statement(channel: str, payload: str) -> str:
    """``NOTIFY`` for a checked channel and payload.  One simple-protocol statement costs
    the server less than ``pg_notify()`` through Parse/Bind/Execute (no planning)."""
    return "NOTIFY " + quote_ident(channel) + ", " + quote_literal(payload)


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


def text_array(values: Sequence[str]) -> str:
    """A text[] literal holding ``values`` exactly (every element quoted and escaped)."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"
