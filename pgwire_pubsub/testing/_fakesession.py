"""One session of the fake backend's pub/sub mode: simple and extended query, transactions.

As in PostgreSQL: a simple Query's statements run in one implicit transaction
(an extended-query batch in one until its Sync) unless a BEGIN opens a block;
NOTIFY and LISTEN/UNLISTEN take effect at commit; notifications of one
transaction with the same channel and payload are sent once; an error in a
block fails it until ROLLBACK (or COMMIT, which rolls back); after an error
in an extended-query batch everything up to the Sync is skipped.
"""

from __future__ import annotations

import secrets
from struct import pack
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import ProtocolViolation
from ..protocol import backend
from ..protocol import frontend_messages as f
from ..protocol import messages as m
from . import _fakesql as sql
from ._fakehub import Action, Hub, Listener
from .fakeconn import STARTUP_PARAMETERS, FakeConn

MAX_CHANNEL_BYTES = 63
MAX_PAYLOAD_BYTES = 7999


class SqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Result(NamedTuple):
    columns: Sequence[sql.Column]
    rows: Sequence[Sequence[object]]
    tag: str


class Portal(NamedTuple):
    statement: sql.Statement
    values: Tuple[Optional[str], ...]
    formats: Tuple[int, ...]


def serve(conn: FakeConn, hub: Hub) -> None:
    """Start a session on ``conn`` and answer it until it terminates or goes away."""
    try:
        startup = conn.receive_startup()
    except ProtocolViolation as exc:
        conn.fatal("08P01", str(exc))
        return
    if isinstance(startup, f.CancelRequest):
        return  # nothing runs long enough to be cancelled
    user = startup.parameters.get("user", "")
    if not conn.authenticate(user):
        return
    session = Session(conn, hub)
    params = {**STARTUP_PARAMETERS, "application_name":
              startup.parameters.get("application_name", ""), "session_authorization": user}
    conn.send_messages(*(m.ParameterStatus(k, v) for k, v in params.items()),
                       m.BackendKeyData(session.pid, secrets.token_bytes(4)))
    session.parameters = params
    hub.join(session)
    try:
        session.ready()
        session.run()
    finally:
        hub.leave(session)


class Session(Listener):
    def __init__(self, conn: FakeConn, hub: Hub) -> None:
        super().__init__(conn, hub.new_pid())
        conn.pid = self.pid
        self.hub = hub
        self.parameters: Dict[str, str] = {}
        self._actions: List[Action] = []
        self._notifications: Dict[Tuple[str, str], None] = {}  # in order, duplicates merged
        self._statements: Dict[str, Tuple[sql.Statement, Tuple[int, ...]]] = {}
        self._portals: Dict[str, Portal] = {}
        self._skipping = False  # after an error in an extended-query batch, until Sync

    def run(self) -> None:
        while True:
            try:
                message = self.conn.receive()
            except ProtocolViolation as exc:
                self.conn.fatal("08P01", str(exc))
                return
            if isinstance(message, f.Terminate):
                return
            self.busy()
            if isinstance(message, f.Query):
                self._simple_query(message.sql)
            elif isinstance(message, f.Sync):
                self._sync()
            elif not self._skipping:
                self._extended(message)

    # -- the two protocols ---------------------------------------------------------

    def _simple_query(self, text: str) -> None:
        statements = sql.statements(text)
        if not statements:
            self.conn.send_messages(m.EmptyQueryResponse())
        for statement in statements:
            try:
                self._send_result(self.execute(statement, ()), (), describe=True)
            except SqlError as exc:
                self._failed(exc)
                break
        self._end_implicit()
        self.ready()

    def _extended(self, message: f.FrontendMessage) -> None:
        try:
            reply = self._extended_step(message)
        except SqlError as exc:
            self._failed(exc)
            self._skipping = True
            return
        if reply:
            self.conn.send(reply)

    def _extended_step(self, message: f.FrontendMessage) -> bytes:
        if isinstance(message, f.Parse):
            statements = sql.statements(message.sql)
            if len(statements) > 1:
                raise SqlError("42601", "cannot insert multiple commands into a prepared statement")
            statement = statements[0] if statements else sql.Statement("empty")
            if statement.kind == "unsupported":
                self.execute(statement, ())  # raises its error, as a server's Parse does
            self._statements[message.statement] = (statement, message.type_oids)
            return backend.parse_complete()
        if isinstance(message, f.Bind):
            statement, _ = self._statement(message.statement)
            needed = sql.max_param(statement)
            if len(message.params) != needed:
                raise SqlError("08P01", f"bind message supplies {len(message.params)} "
                               f"parameters, but prepared statement \"{message.statement}\" "
                               f"requires {needed}")
            values = tuple(None if v is None else v.decode("utf-8") for v in message.params)
            self._portals[message.portal] = Portal(statement, values, message.result_formats)
            return backend.bind_complete()
        if isinstance(message, f.Describe):
            return self._describe(message)
        if isinstance(message, f.Execute):
            portal = self._portal(message.portal)
            if portal.statement.kind == "empty":
                return backend.empty_query_response()
            result = self.execute(portal.statement, portal.values)
            self._send_result(result, portal.formats, describe=False)
            return b""
        if isinstance(message, f.Close):
            (self._statements if message.kind == "S" else self._portals).pop(message.name, None)
            return backend.close_complete()
        if isinstance(message, f.Flush):
            return b""
        raise SqlError("08P01", f"unexpected message {message!r}")

    def _describe(self, message: f.Describe) -> bytes:
        formats: Tuple[int, ...] = ()  # a portal's columns come in its result formats
        if message.kind == "S":
            statement, oids = self._statement(message.name)
            count = sql.max_param(statement)
            types = [oids[i] if i < len(oids) and oids[i] else sql.TEXT for i in range(count)]
            head = backend.parameter_description(types)
        else:
            portal = self._portal(message.name)
            statement, head, formats = portal.statement, b"", portal.formats
        columns = _columns(statement)
        if not columns:
            return head + backend.no_data()
        return head + backend.row_description([c.name for c in columns],
                                              [c.type_oid for c in columns],
                                              _formats(formats, len(columns)))

    def _statement(self, name: str) -> Tuple[sql.Statement, Tuple[int, ...]]:
        if name not in self._statements:
            raise SqlError("26000", f'prepared statement "{name}" does not exist')
        return self._statements[name]

    def _portal(self, name: str) -> Portal:
        if name not in self._portals:
            raise SqlError("34000", f'portal "{name}" does not exist')
        return self._portals[name]

    def _sync(self) -> None:
        self._skipping = False
        self._portals.pop("", None)
        self._end_implicit()
        self.ready()

    def _send_result(self, result: Result, formats: Sequence[int], describe: bool) -> None:
        """The rows and the command tag (after their description in a simple query)."""
        columns = result.columns
        out = []
        if columns and describe:
            out.append(backend.row_description([c.name for c in columns],
                                               [c.type_oid for c in columns]))
        codes = _formats(formats, len(columns))
        for row in result.rows:
            out.append(backend.data_row([_encode(v, c.type_oid, code)
                                         for v, c, code in zip(row, columns, codes)]))
        out.append(backend.command_complete(result.tag))
        self.conn.send(b"".join(out))

    # -- transactions ----------------------------------------------------------------

    def _failed(self, exc: SqlError) -> None:
        self.conn.send_messages(m.ErrorResponse(
            {"S": "ERROR", "V": "ERROR", "C": exc.code, "M": str(exc)}))
        if self.status == "I":
            self._rollback()
        else:
            self.status = "E"

    def _end_implicit(self) -> None:
        if self.status == "I":
            self._commit()

    def _commit(self) -> None:
        self.hub.commit(self, self._actions, list(self._notifications))
        self._rollback()

    def _rollback(self) -> None:
        self._actions, self._notifications = [], {}

    def _warn(self, code: str, text: str) -> None:
        self.conn.send_messages(m.NoticeResponse(
            {"S": "WARNING", "V": "WARNING", "C": code, "M": text}))

    def execute(self, statement: sql.Statement, values: Sequence[Optional[str]]) -> Result:
        kind, args = statement.kind, statement.args
        if self.status == "E" and kind not in ("commit", "rollback"):
            raise SqlError("25P02", "current transaction is aborted, commands ignored until "
                                    "end of transaction block")
        if kind in ("begin", "commit", "rollback"):
            return Result((), (), self._transaction(kind))
        if kind in ("listen", "unlisten"):
            self._actions.append((kind, None if args[0] is None else self._identifier(args[0])))
            return Result((), (), kind.upper())
        if kind == "notify":
            self._notify(self._identifier(args[0]), str(args[1]))
            return Result((), (), "NOTIFY")
        if kind == "select_notify":
            channel, payload = (_value(a, values) for a in args[1:3])
            self._notify(channel or "", payload or "")
            return Result(_columns(statement), [("",)], "SELECT 1")
        if kind in ("select", "show"):
            columns = _columns(statement)
            rows = self._rows(statement)
            return Result(columns, rows, f"SELECT {len(rows)}" if kind == "select" else "SHOW")
        code, text = args if kind == "unsupported" else ("0A000", "unexpected statement")
        raise SqlError(str(code), str(text))

    def _transaction(self, kind: str) -> str:
        if kind == "begin":
            if self.status == "I":
                self.status = "T"
            else:
                self._warn("25001", "there is already a transaction in progress")
            return "BEGIN"
        if self.status == "I":
            self._warn("25P01", "there is no transaction in progress")
        tag = "COMMIT" if kind == "commit" and self.status != "E" else "ROLLBACK"
        if tag == "COMMIT":
            self._commit()
        else:
            self._rollback()
        self.status = "I"
        return tag

    def _identifier(self, name: object) -> str:
        """An identifier as PostgreSQL keeps it: longer than 63 bytes, it is truncated."""
        text = str(name)
        data = text.encode("utf-8")
        if len(data) <= MAX_CHANNEL_BYTES:
            return text
        short = data[:MAX_CHANNEL_BYTES].decode("utf-8", "ignore")
        self.conn.send_messages(m.NoticeResponse({
            "S": "NOTICE", "V": "NOTICE", "C": "42622",
            "M": f'identifier "{text}" will be truncated to "{short}"'}))
        return short

    def _notify(self, channel: str, payload: str) -> None:
        if not channel:
            raise SqlError("22023", "channel name cannot be empty")
        if len(channel.encode("utf-8")) > MAX_CHANNEL_BYTES:
            raise SqlError("22023", "channel name too long")
        if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise SqlError("22023", "payload string too long")
        self._notifications.setdefault((channel, payload))

    def _rows(self, statement: sql.Statement) -> List[Tuple[object, ...]]:
        what = statement.args[0]
        if statement.kind == "show":
            value = {k.lower(): v for k, v in self.parameters.items()}.get(str(what))
            if what == "transaction_read_only":
                value = "off"
            if value is None:
                raise SqlError("42704", f'unrecognized configuration parameter "{what}"')
            return [(value,)]
        if what == "pg_listening_channels":
            return [(channel,) for channel in self.channels]
        results = {"value": statement.args[-1], "pg_is_in_recovery": False,
                   "pg_notification_queue_usage": 0.0, "pg_backend_pid": self.pid}
        return [(results[str(what)],)]


def _columns(statement: sql.Statement) -> List[sql.Column]:
    if statement.kind == "show":
        return [sql.Column(str(statement.args[0]), sql.TEXT)]
    if statement.kind in ("select", "select_notify"):
        return [c for c in statement.args if isinstance(c, sql.Column)]
    return []


def _formats(codes: Sequence[int], count: int) -> List[int]:
    return list(codes) * count if len(codes) == 1 else list(codes) or [0] * count


def _value(arg: object, values: Sequence[Optional[str]]) -> Optional[str]:
    if isinstance(arg, sql.Param):
        if not 0 < arg.number <= len(values):
            raise SqlError("42P02", f"there is no parameter ${arg.number}")
        return values[arg.number - 1]
    return None if arg is None else str(arg)


_BINARY = {sql.BOOL: "!?", sql.INT4: "!i", sql.INT8: "!q", sql.FLOAT8: "!d"}


def _encode(value: object, type_oid: int, code: int) -> Optional[bytes]:
    """A column value in text (``code`` 0) or binary (1) format."""
    if value is None:
        return None
    if code == 1 and type_oid in _BINARY:
        return pack(_BINARY[type_oid], value)
    if isinstance(value, bool):
        return b"t" if value else b"f"
    return str(value).encode("utf-8")
