"""What the test servers' users need beside them: waiting for a condition with a deadline,
reading a process's lines in a thread, running a call in a thread, and libpq connection
strings (key=value and URI) made and read."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import urllib.parse
from typing import IO, Any, Callable, Dict, List, Optional, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             message: Optional[str] = None) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError after ``timeout`` seconds. Use this instead of sleeps.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def lit(text: str) -> str:
    """An SQL string literal for psql (standard_conforming_strings is on there)."""
    return "'" + text.replace("'", "''") + "'"


def in_thread(target: Callable[[], Any], timeout: float = 20.0) -> Callable[[], Any]:
    """Run ``target`` in a thread; the returned function joins it (failing after
    ``timeout`` seconds) and returns its result or raises its exception."""
    result: List[Any] = []
    failure: List[BaseException] = []

    def run() -> None:
        try:
            result.append(target())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(timeout)
        assert not thread.is_alive(), f"the helper thread is still blocked after {timeout}s"
        if failure:
            raise failure[0]
        return result[0] if result else None

    return join


class LineReader:
    """Collects a text stream's lines in a thread, so a test can wait for one.

    E.g. ``LineReader(proc.stdout).wait_for_line('Asynchronous notification')``.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.lines: List[str] = []
        self._stream = stream
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, substring: str, timeout: float = 10.0, start: int = 0) -> str:
        """The first line (from index ``start``) containing ``substring``."""
        def found() -> str:
            return next((ln for ln in self.lines[start:] if substring in ln), "")
        try:
            return wait_for(found, timeout, message=f"a line containing {substring!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}; lines so far: {self.lines[start:]!r}") from None


def find_psql() -> Optional[str]:
    return shutil.which("psql") or (
        "/usr/bin/psql" if os.path.exists("/usr/bin/psql") else None)


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _free_port(ipv6: bool) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    if ipv6:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                s6.bind(("::1", port))
        except OSError:
            return _free_port(ipv6)
    return port


def _quote(value: object) -> str:
    s = str(value)
    if s and re.fullmatch(r"[^\s'\\]+", s):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_dsn(params: Dict[str, Any]) -> str:
    """A libpq key=value string from a dict (None values are left out)."""
    return " ".join(f"{k}={_quote(v)}" for k, v in params.items() if v is not None)


def make_uri(params: Dict[str, Any]) -> str:
    """A ``postgresql://`` URI from a dict (None values are left out): the one form of
    connection string that libpq, asyncpg and this library all accept.  A host that is a
    directory (a Unix socket's) goes in the query string."""
    params = {k: str(v) for k, v in params.items() if v is not None}
    host, port = params.pop("host", ""), params.pop("port", "")
    user, password = params.pop("user", None), params.pop("password", None)
    dbname = params.pop("dbname", "")
    netloc = ""
    if user is not None:
        netloc = urllib.parse.quote(user, safe="")
        if password is not None:
            netloc += ":" + urllib.parse.quote(password, safe="")
        netloc += "@"
    if host.startswith("/"):
        params = {"host": host, **({"port": port} if port else {}), **params}
    else:
        netloc += f"[{host}]" if ":" in host else host
        netloc += f":{port}" if port else ""
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    return f"postgresql://{netloc}/{urllib.parse.quote(dbname, safe='')}" + (
        f"?{query}" if query else "")


def parse_dsn(dsn: str) -> Dict[str, str]:
    """Parse a libpq key=value string or a postgres:// URI (single host only)."""
    if re.match(r"postgres(ql)?://", dsn):
        u = urllib.parse.urlsplit(dsn)
        out: Dict[str, str] = {}
        if u.hostname:
            out["host"] = urllib.parse.unquote(u.hostname)
        if u.port:
            out["port"] = str(u.port)
        if u.username:
            out["user"] = urllib.parse.unquote(u.username)
        if u.password is not None:
            out["password"] = urllib.parse.unquote(u.password)
        if u.path.strip("/"):
            out["dbname"] = urllib.parse.unquote(u.path.lstrip("/"))
        out.update(urllib.parse.parse_qsl(u.query))
        return out
    pattern = r"\s*(\w+)\s*=\s*('((?:[^'\\]|\\.)*)'|\S+)"
    out = {}
    for m in re.finditer(pattern, dsn):
        value = m.group(2)
        if m.group(3) is not None:
            value = re.sub(r"\\(.)", r"\1", m.group(3))
        out[m.group(1)] = value
    return out
