"""The password file (``~/.pgpass``), read as libpq's ``passwordFromFile`` reads it.

Each line is ``hostname:port:database:username:password``. In the first four
fields ``*`` alone matches anything, and a backslash makes the next character
literal (``\\:``, ``\\\\``); in the password it is removed the same way, and
the password ends at the next unescaped ``:``. Lines starting with ``#`` are
comments, trailing CR/LF characters are ignored, and the first matching line
wins. The host matched is ``localhost`` for an empty host and for the default
Unix socket directory; any other socket directory is matched as written. The
port is compared as the text given (``5432`` when none was).

Like libpq, the file is skipped -- with a warning on the ``pgwire_pubsub``
logger -- when it is not a plain file, or when its group or others have any
access to it; a file that cannot be opened is skipped silently.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import List, Mapping, Optional

from ._servicefile import home_directory

__all__ = ["DEFAULT_PORT", "default_path", "lookup"]

logger = logging.getLogger("pgwire_pubsub")

DEFAULT_PORT = "5432"
_FILE_NAME = ".pgpass"


def default_path(environ: Mapping[str, str]) -> Optional[str]:
    """``~/.pgpass``, or None when there is no home directory."""
    home = home_directory(environ)
    return f"{home}/{_FILE_NAME}" if home else None


def lookup(
    path: str, host: str, port: str, dbname: str, user: str, default_socket_dir: str
) -> Optional[str]:
    """The password of the first line matching these, or None."""
    if not dbname or not user:
        return None
    if not host or (host.startswith(("/", "@")) and host == default_socket_dir):
        host = "localhost"
    wanted = (host, port or DEFAULT_PORT, dbname, user)
    for line in _read_lines(path):
        if line.startswith("#"):
            continue
        line = line.rstrip("\r\n")
        pos: Optional[int] = 0
        for token in wanted:
            pos = _match_field(line, pos, token) if pos is not None else None
        if line and pos is not None:
            return _unescape_password(line[pos:])
    return None


def _read_lines(path: str) -> List[str]:
    try:
        # O_NONBLOCK: a FIFO is refused below instead of blocking the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return []
    try:
        if os.name != "nt" and not _usable(path, os.fstat(fd).st_mode):
            return []
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read()
    finally:
        os.close(fd)
    return data.decode("utf-8", "surrogateescape").split("\n")


def _usable(path: str, mode: int) -> bool:
    """libpq's checks, skipped on Windows where the directory's protection is trusted."""
    if not stat.S_ISREG(mode):
        logger.warning('password file "%s" is not a plain file', path)
        return False
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            'password file "%s" has group or world access;'
            " permissions should be u=rw (0600) or less",
            path,
        )
        return False
    return True


def _match_field(line: str, pos: int, token: str) -> Optional[int]:
    """Where the next field starts if the field at ``pos`` matches ``token`` (pwdfMatchesString)."""
    if line.startswith("*:", pos):
        return pos + 2
    matched = 0
    escaped = False
    while pos < len(line):
        if line[pos] == "\\" and not escaped:
            pos += 1
            escaped = True
        char = line[pos] if pos < len(line) else ""
        if char == ":" and matched == len(token) and not escaped:
            return pos + 1
        escaped = False
        if matched == len(token) or char != token[matched]:
            return None
        pos += 1
        matched += 1
    return None


def _unescape_password(text: str) -> str:
    out: List[str] = []
    pos = 0
    while pos < len(text) and text[pos] != ":":
        if text[pos] == "\\" and pos + 1 < len(text):
            pos += 1
        out.append(text[pos])
        pos += 1
    return "".join(out)
