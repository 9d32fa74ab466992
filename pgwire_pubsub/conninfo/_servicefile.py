"""Connection service files (``pg_service.conf``), searched and read as libpq does.

libpq (fe-connect.c, ``parseServiceInfo``/``parseServiceFile``) looks for the
service in the user's file first -- ``PGSERVICEFILE``, else
``~/.pg_service.conf`` if it exists -- then in ``pg_service.conf`` in
``PGSYSCONFDIR`` (else the compiled-in system configuration directory), and
stops at the first file that has the service. Inside a file:

- each line is stripped of the white space around it; empty lines and lines
  starting with ``#`` are skipped;
- ``[name]`` starts a section (the text after ``]`` is ignored); the section
  of the service ends at the next ``[`` line, and only the first one counts;
- in that section, ``keyword=value`` lines, split at the first ``=`` with no
  trimming around it (``host = x`` is a syntax error, as in libpq);
  a keyword given twice keeps its first value; ``service`` is refused
  (no nesting), and so is an unknown keyword;
- a line of 1023 bytes or more (with its newline) is an error, from libpq's
  1024-byte line buffer. LDAP lookups (``ldap://`` lines) are not supported.
"""

from __future__ import annotations

import os
from typing import Collection, Dict, List, Mapping, Optional, Tuple

from ..errors import ProgrammingError

__all__ = ["SYSCONFDIR", "find_service", "home_directory", "read_service"]

# libpq's compiled-in SYSCONFDIR as Debian builds it (`pg_config --sysconfdir`).
SYSCONFDIR = "/etc/postgresql-common"
_LINE_BUFFER = 1024
_C_SPACE = b" \t\n\r\f\v"


def home_directory(environ: Mapping[str, str]) -> Optional[str]:
    """libpq's pqGetHomeDirectory: ``$HOME`` if set and not empty, else the passwd entry."""
    home = environ.get("HOME")
    if home:
        return home
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir or None
    except (ImportError, KeyError, OSError):
        return None


def find_service(
    service: str, environ: Mapping[str, str], known: Collection[str]
) -> Dict[str, str]:
    """The keywords the service sets, from the first file that defines it."""
    user_file = environ.get("PGSERVICEFILE")
    if user_file is None:
        home = home_directory(environ)
        candidate = f"{home}/.pg_service.conf" if home else None
        user_file = candidate if candidate and _exists(candidate) else None
    if user_file is not None:
        found = read_service(user_file, service, known)
        if found is not None:
            return found
    system_dir = environ.get("PGSYSCONFDIR", SYSCONFDIR)
    system_file = f"{system_dir}/pg_service.conf"  # as libpq: PGSYSCONFDIR="" means "/"
    if _exists(system_file):
        found = read_service(system_file, service, known)
        if found is not None:
            return found
    raise ProgrammingError(f'definition of service "{service}" not found')


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def read_service(path: str, service: str, known: Collection[str]) -> Optional[Dict[str, str]]:
    """The keywords of section ``[service]`` in the file, or None if it has no such section."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except (OSError, ValueError):
        raise ProgrammingError(f'service file "{path}" not found') from None
    header = b"[" + service.encode("utf-8") + b"]"
    values: Optional[Dict[str, str]] = None
    for number, raw in enumerate(_fgets_lines(data), start=1):
        if len(raw) >= _LINE_BUFFER - 1:
            raise ProgrammingError(f'line {number} too long in service file "{path}"')
        line = raw.strip(_C_SPACE)
        if not line or line.startswith(b"#"):
            continue
        if line.startswith(b"["):
            if values is not None:
                break
            values = {} if line.startswith(header) else None
        elif values is not None:
            key, value = _keyword_value(line, path, number, known)
            values.setdefault(key, value)
    return values


def _fgets_lines(data: bytes) -> List[bytes]:
    """Lines as fgets() returns them: split only at b"\\n", which each keeps."""
    lines = [part + b"\n" for part in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _keyword_value(line: bytes, path: str, number: int, known: Collection[str]) -> Tuple[str, str]:
    syntax_error = ProgrammingError(f'syntax error in service file "{path}", line {number}')
    key_bytes, equals, value_bytes = line.partition(b"=")
    if not equals:
        raise syntax_error
    try:
        key, value = key_bytes.decode("utf-8"), value_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise ProgrammingError(f'service file "{path}", line {number} is not valid UTF-8') from None
    if key == "service":
        raise ProgrammingError(
            f'nested service specifications not supported in service file "{path}", line {number}'
        )
    if key not in known:
        raise syntax_error
    return key, value
