"""One exception hierarchy, with the DB-API (PEP 249) names.

- ``InterfaceError``: the caller misused the client (e.g. a closed connection).
- ``ProtocolViolation``: the peer sent bytes that break the protocol.
- ``DatabaseError`` and its subclasses: errors reported by the server, carrying
  the SQLSTATE and the other fields of the ErrorResponse.
- ``OperationalError``: also the connection's own failures (lost, timed out,
  refused, authentication failed).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Type


class Warning(Exception):
    pass


class Error(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    """An error the server reported (or one about the database connection).

    Server errors carry every ErrorResponse field: ``sqlstate`` (also as
    psycopg2's ``pgcode``), ``severity``, ``message``, ``detail``, ``hint`` and
    the raw ``fields`` mapping; ``pgerror`` is the text psycopg2 shows.
    """

    def __init__(self, message: str, fields: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(message)
        self.fields: Dict[str, str] = dict(fields or {})

    @property
    def sqlstate(self) -> Optional[str]:
        return self.fields.get("C")

    @property
    def pgcode(self) -> Optional[str]:
        return self.sqlstate

    @property
    def severity(self) -> Optional[str]:
        return self.fields.get("V") or self.fields.get("S")

    @property
    def message(self) -> str:
        return self.fields.get("M", str(self))

    @property
    def detail(self) -> Optional[str]:
        return self.fields.get("D")

    @property
    def hint(self) -> Optional[str]:
        return self.fields.get("H")

    @property
    def pgerror(self) -> Optional[str]:
        if not self.fields:
            return None
        text = f"{self.severity or 'ERROR'}:  {self.message}\n"
        if self.detail:
            text += f"DETAIL:  {self.detail}\n"
        if self.hint:
            text += f"HINT:  {self.hint}\n"
        return text


class OperationalError(DatabaseError):
    pass


class ProtocolViolation(OperationalError):
    """The server (or whatever answers in its place) broke the wire protocol.

    The connection cannot be trusted after this and is closed.
    """


class ProgrammingError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class DataError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


class QueryCanceled(OperationalError):
    pass


# SQLSTATE class (first two characters) -> exception type, after psycopg2.
_CLASS_TO_ERROR: Dict[str, Type[DatabaseError]] = {
    "0A": NotSupportedError,
    "08": OperationalError,
    "21": ProgrammingError,
    "22": DataError,
    "23": IntegrityError,
    "24": InternalError,
    "25": InternalError,
    "26": InternalError,
    "27": OperationalError,
    "28": OperationalError,
    "2B": InternalError,
    "2D": InternalError,
    "2F": InternalError,
    "34": OperationalError,
    "38": OperationalError,
    "39": OperationalError,
    "3B": OperationalError,
    "3D": ProgrammingError,
    "3F": ProgrammingError,
    "40": OperationalError,
    "42": ProgrammingError,
    "44": ProgrammingError,
    "53": OperationalError,
    "54": OperationalError,
    "55": OperationalError,
    "57": OperationalError,
    "58": OperationalError,
    "F0": InternalError,
    "HV": OperationalError,
    "P0": InternalError,
    "XX": InternalError,
}


def error_from_fields(fields: Mapping[str, str]) -> DatabaseError:
    """The exception for an ErrorResponse, chosen by its SQLSTATE."""
    sqlstate = fields.get("C", "")
    cls: Type[DatabaseError] = _CLASS_TO_ERROR.get(sqlstate[:2], DatabaseError)
    if sqlstate == "57014":
        cls = QueryCanceled
    text = fields.get("M", "unknown server error")
    if sqlstate:
        text = f"{text} (SQLSTATE {sqlstate})"
    detail = fields.get("D")
    if detail:
        text += f"\nDETAIL: {detail}"
    hint = fields.get("H")
    if hint:
        text += f"\nHINT: {hint}"
    return cls(text, fields)
