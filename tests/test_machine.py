"""The protocol state machine and the protocol steps, driven with scripted server bytes."""

from __future__ import annotations

import hashlib
import logging
import struct
from typing import Generator, List, Optional, Sequence, TypeVar, cast

import pytest

from pgwire_pubsub.errors import (
    DatabaseError,
    Error,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
    ProtocolViolation,
)
from pgwire_pubsub.protocol import frontend, steps
from pgwire_pubsub.protocol import messages as m
from pgwire_pubsub.protocol.auth import Authenticator
from pgwire_pubsub.protocol.machine import MAX_NOTICES, Machine, State
from pgwire_pubsub.testing.wirebytes import (
    auth_cleartext,
    auth_md5,
    auth_ok,
    auth_sasl,
    backend_key,
    command_complete,
    data_row,
    error,
    fields,
    i16,
    i32,
    msg,
    notice,
    notify,
    parameter_status,
    ready,
    row_description,
)

# -- server messages -------------------------------------------------------------

PARSE_COMPLETE = msg(b"1")
BIND_COMPLETE = msg(b"2")
EMPTY_QUERY = msg(b"I")
TERMINATED = ("57P01", "terminating connection due to administrator command", "FATAL")

# -- protocols in each state -----------------------------------------------------

STARTUP_PARAMS = {"user": "alice", "database": "db", "client_encoding": "UTF8"}


def drain(proto: Machine) -> List[m.BackendMessage]:
    out = []
    while (message := proto.next_message()) is not None:
        out.append(message)
    return out


def new_protocol() -> Machine:
    return Machine()


def startup_protocol() -> Machine:
    proto = Machine()
    proto.start(STARTUP_PARAMS)
    return proto


def ready_protocol() -> Machine:
    proto = startup_protocol()
    proto.receive_data(auth_ok() + backend_key() + ready())
    drain(proto)
    assert proto.state is State.READY
    return proto


def busy_protocol() -> Machine:
    proto = ready_protocol()
    proto.send_command(frontend.query("SELECT 1"))
    assert proto.state is State.BUSY
    return proto


def closed_protocol() -> Machine:
    proto = ready_protocol()
    proto.terminate()
    return proto


IN_STATE = {
    "new": new_protocol,
    "startup": startup_protocol,
    "ready": ready_protocol,
    "busy": busy_protocol,
    "closed": closed_protocol,
}

# -- a driver for protocol steps -------------------------------------------------

T = TypeVar("T")


class ScriptedServer:
    """Runs a protocol step: records what it sends; each read gets the next scripted chunk.

    When the script runs out, reads get b"" (end of stream).
    """

    def __init__(self, *reads: bytes, bytewise: bool = False) -> None:
        if bytewise:
            reads = tuple(bytes([b]) for chunk in reads for b in chunk)
        self.reads = list(reads)
        self.sent: List[bytes] = []

    def run(self, step: Generator[Optional[bytes], None, T], machine: Machine) -> T:
        """Drive ``step``, feeding ``machine`` the next chunk whenever the step waits."""
        while True:
            try:
                request = step.send(None)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            if request is None:
                machine.receive_data(self.reads.pop(0) if self.reads else b"")
            else:
                assert isinstance(request, bytes)
                self.sent.append(request)


def split_frontend(data: bytes) -> List[bytes]:
    """The type bytes of a stream of (typed) frontend messages."""
    kinds, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack("!i", data[pos + 1 : pos + 5])
        kinds.append(data[pos : pos + 1])
        pos += 1 + length
    assert pos == len(data)
    return kinds


def state_of(proto: Machine) -> State:
    """``proto.state`` for an assert after a call: mypy would carry over an earlier
    assert's narrowing of ``proto.state`` across the call."""
    return proto.state


def queued(proto: Machine) -> List[m.Notify]:
    """``proto.notifications``, typed as what a bare machine queues: it has no bound,
    so no markers (those come with a PubSub's options)."""
    return cast("List[m.Notify]", list(proto.notifications))


# == the state machine ===========================================================


class TestStartup:
    def test_start_returns_the_startup_message(self) -> None:
        proto = Machine()
        assert proto.state is State.NEW
        assert proto.start(STARTUP_PARAMS) == frontend.startup_message(STARTUP_PARAMS)
        assert state_of(proto) is State.STARTUP

    @pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
    def test_startup_to_ready(self, bytewise: bool) -> None:
        proto = startup_protocol()
        data = (
            auth_ok()
            + parameter_status("server_version", "16.2")
            + parameter_status("client_encoding", "UTF8")
            + backend_key(31337, -12345)
            + parameter_status("TimeZone", "Europe/Paris")
            + ready("I")
        )
        chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
        for chunk in chunks[:-1]:
            proto.receive_data(chunk)
            assert proto.state is State.STARTUP
        proto.receive_data(chunks[-1])
        assert proto.state is State.READY
        assert proto.backend_pid == 31337
        assert proto.secret_key == i32(-12345)
        assert proto.transaction_status == "I"
        assert proto.parameters == {
            "server_version": "16.2",
            "client_encoding": "UTF8",
            "TimeZone": "Europe/Paris",
        }
        # ParameterStatus is taken care of; the rest is queued for the startup step.
        assert drain(proto) == [
            m.AuthenticationOk(),
            m.BackendKeyData(31337, i32(-12345)),
            m.ReadyForQuery("I"),
        ]

    def test_authentication_requests_are_queued(self) -> None:
        proto = startup_protocol()
        proto.receive_data(auth_md5(b"salt"))
        assert proto.next_message() == m.AuthenticationMD5Password(b"salt")
        assert proto.next_message() is None
        assert proto.send_auth(b"answer") == b"answer"
        assert proto.state is State.STARTUP

    def test_startup_error_is_queued(self) -> None:
        proto = startup_protocol()
        proto.receive_data(error("28P01", "password authentication failed", "FATAL"))
        [message] = drain(proto)
        assert isinstance(message, m.ErrorResponse)
        assert message.fields["C"] == "28P01"

    def test_start_twice_is_refused(self) -> None:
        proto = startup_protocol()
        with pytest.raises(InterfaceError):
            proto.start(STARTUP_PARAMS)

    @pytest.mark.parametrize("state", ["new", "ready", "busy", "closed"])
    def test_send_auth_only_during_startup(self, state: str) -> None:
        with pytest.raises(InterfaceError):
            IN_STATE[state]().send_auth(b"p")


class TestCommands:
    def test_send_command_when_ready(self) -> None:
        proto = ready_protocol()
        query = frontend.query("LISTEN a")
        assert proto.send_command(query) == query
        assert proto.state is State.BUSY

    @pytest.mark.parametrize("state", ["new", "startup", "busy", "closed"])
    def test_send_command_only_when_ready(self, state: str) -> None:
        proto = IN_STATE[state]()
        with pytest.raises(InterfaceError):
            proto.send_command(frontend.query("SELECT 1"))
        assert proto.state.value == state

    def test_busy_message_names_the_command_in_progress(self) -> None:
        with pytest.raises(InterfaceError, match="in progress"):
            busy_protocol().send_command(frontend.sync())

    def test_closed_message_says_closed(self) -> None:
        with pytest.raises(InterfaceError, match="closed"):
            closed_protocol().send_command(frontend.sync())

    @pytest.mark.parametrize("status", ["I", "T", "E"])
    def test_ready_for_query_ends_the_command(self, status: str) -> None:
        proto = busy_protocol()
        proto.receive_data(row_description("x") + data_row(b"1") + command_complete("SELECT 1"))
        assert proto.state is State.BUSY
        proto.receive_data(ready(status))
        assert state_of(proto) is State.READY
        assert proto.transaction_status == status
        assert [type(message) for message in drain(proto)] == [
            m.RowDescription,
            m.DataRow,
            m.CommandComplete,
            m.ReadyForQuery,
        ]
        # And the next command may go.
        proto.send_command(frontend.query("SELECT 2"))

    def test_extended_query_responses_are_queued(self) -> None:
        proto = busy_protocol()
        proto.receive_data(
            PARSE_COMPLETE + BIND_COMPLETE + msg(b"n") + msg(b"s") + msg(b"3") + ready()
        )
        assert drain(proto) == [
            m.ParseComplete(),
            m.BindComplete(),
            m.NoData(),
            m.PortalSuspended(),
            m.CloseComplete(),
            m.ReadyForQuery("I"),
        ]

    def test_error_during_a_command_is_queued(self) -> None:
        proto = busy_protocol()
        proto.receive_data(error("42601", "syntax error") + ready())
        assert [type(message) for message in drain(proto)] == [
            m.ErrorResponse,
            m.ReadyForQuery,
        ]
        assert proto.state is State.READY
        assert proto.fatal_error is None


ASYNC = (
    notice("first")
    + notify(7, "alpha", "1")
    + parameter_status("TimeZone", "UTC")
    + notify(8, "beta")
)


class TestAsynchronousMessages:
    @pytest.mark.parametrize("state", ["startup", "ready", "busy"])
    def test_routed_in_any_state_after_start(self, state: str) -> None:
        proto = IN_STATE[state]()
        proto.receive_data(ASYNC)
        assert list(proto.notifications) == [m.Notify(7, "alpha", "1"), m.Notify(8, "beta", "")]
        assert proto.notices == ["NOTICE:  first\n"]
        assert proto.parameters["TimeZone"] == "UTC"
        assert proto.state.value == state
        assert proto.next_message() is None

    @pytest.mark.parametrize("state", ["startup", "ready", "busy"])
    def test_routed_one_byte_at_a_time(self, state: str) -> None:
        proto = IN_STATE[state]()
        data = notify(1, "c", "first") + notify(2, "c", "second")
        first_end = len(notify(1, "c", "first"))
        for i in range(len(data)):
            proto.receive_data(data[i : i + 1])
            assert len(proto.notifications) == (i + 1 >= first_end) + (i + 1 == len(data))
        assert [n.payload for n in queued(proto)] == ["first", "second"]

    @pytest.mark.parametrize(
        "data",
        [notify(1, "c"), notice("n"), parameter_status("a", "b")],
        ids=["notify", "notice", "parameter-status"],
    )
    def test_refused_before_start(self, data: bytes) -> None:
        proto = new_protocol()
        with pytest.raises(ProtocolViolation):
            proto.receive_data(data)
        assert proto.state is State.CLOSED

    def test_notifications_keep_their_order_among_command_messages(self) -> None:
        proto = busy_protocol()
        proto.receive_data(
            notify(1, "c", "a")
            + row_description("x")
            + data_row(b"1")
            + notify(1, "c", "b")
            + data_row(b"2")
            + command_complete("SELECT 2")
            + notify(1, "c", "c")
            + ready()
        )
        assert [n.payload for n in queued(proto)] == ["a", "b", "c"]
        assert [type(message) for message in drain(proto)] == [
            m.RowDescription,
            m.DataRow,
            m.DataRow,
            m.CommandComplete,
            m.ReadyForQuery,
        ]

    def test_notices_are_bounded(self) -> None:
        proto = ready_protocol()
        proto.receive_data(b"".join(notice(f"n{i}") for i in range(MAX_NOTICES + 10)))
        assert MAX_NOTICES == 50
        assert len(proto.notices) == 50
        assert proto.notices[0] == "NOTICE:  n10\n"
        assert proto.notices[-1] == "NOTICE:  n59\n"
        proto.receive_data(notice("last"))
        assert len(proto.notices) == 50
        assert proto.notices[-1] == "NOTICE:  last\n"
        assert proto.notices[0] == "NOTICE:  n11\n"

    def test_notices_are_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="pgwire_pubsub")
        proto = ready_protocol()
        proto.receive_data(
            notice("careful", "WARNING") + notice("fyi") + notice("details", "DEBUG")
        )
        records = [r for r in caplog.records if r.name == "pgwire_pubsub"]
        assert [(r.levelno, r.getMessage()) for r in records] == [
            (logging.WARNING, "server WARNING:  careful"),
            (logging.INFO, "server NOTICE:  fyi"),
            (logging.DEBUG, "server DEBUG:  details"),
        ]

    def test_notice_without_severity(self) -> None:
        proto = ready_protocol()
        proto.receive_data(msg(b"N", fields({"M": "bare"})))
        assert proto.notices == ["NOTICE:  bare\n"]


UNEXPECTED = [
    ("new", data_row(b"1")),
    ("new", ready()),
    ("new", auth_ok()),
    ("startup", data_row(b"1")),
    ("startup", command_complete("SELECT 1")),
    ("startup", row_description("x")),
    ("startup", PARSE_COMPLETE),
    ("ready", data_row(b"1")),
    ("ready", ready()),
    ("ready", command_complete("SELECT 1")),
    ("ready", auth_ok()),
    ("ready", backend_key()),
    ("ready", EMPTY_QUERY),
    ("busy", auth_ok()),
    ("busy", auth_md5(b"salt")),
    ("busy", backend_key()),
    ("busy", msg(b"v", i32(0) + i32(0))),
]


class TestProtocolViolations:
    @pytest.mark.parametrize(
        ("state", "data"), UNEXPECTED, ids=[f"{s}-{d[:1].decode()}" for s, d in UNEXPECTED]
    )
    def test_unexpected_message_closes(self, state: str, data: bytes) -> None:
        proto = IN_STATE[state]()
        with pytest.raises(ProtocolViolation, match="closing the connection"):
            proto.receive_data(data)
        assert proto.state is State.CLOSED
        with pytest.raises(InterfaceError):
            proto.send_command(frontend.query("SELECT 1"))

    def test_malformed_bytes_close(self) -> None:
        proto = ready_protocol()
        with pytest.raises(ProtocolViolation):
            proto.receive_data(b"Z\0\0\0\x05X")
        assert proto.state is State.CLOSED

    def test_messages_before_the_garbage_are_still_routed(self) -> None:
        proto = ready_protocol()
        with pytest.raises(ProtocolViolation):
            proto.receive_data(notify(5, "c", "kept") + b"?garbage")
        assert list(proto.notifications) == [m.Notify(5, "c", "kept")]
        assert proto.state is State.CLOSED

    def test_over_long_header_closes_at_once(self) -> None:
        proto = ready_protocol()
        with pytest.raises(ProtocolViolation):
            proto.receive_data(b"A\x7f\xff\xff\xff")
        assert proto.state is State.CLOSED


class TestEndOfStream:
    def test_fatal_error_while_ready_explains_the_end(self) -> None:
        proto = ready_protocol()
        proto.receive_data(error(*TERMINATED))
        assert proto.state is State.READY
        assert proto.next_message() is None
        with pytest.raises(OperationalError) as info:
            proto.receive_data(b"")
        assert info.value.sqlstate == "57P01"
        assert info.value.severity == "FATAL"
        assert "administrator command" in str(info.value)
        assert info.value is proto.fatal_error
        assert state_of(proto) is State.CLOSED

    def test_fatal_error_and_end_in_one_read_sequence(self) -> None:
        proto = ready_protocol()
        proto.receive_data(notify(1, "c", "last words") + error(*TERMINATED))
        with pytest.raises(OperationalError, match="administrator command"):
            proto.receive_data(b"")
        assert list(proto.notifications) == [m.Notify(1, "c", "last words")]

    def test_fatal_error_of_another_class_becomes_operational(self) -> None:
        proto = ready_protocol()
        proto.receive_data(error("XX000", "internal trouble", "FATAL"))
        assert isinstance(proto.fatal_error, InternalError)
        with pytest.raises(OperationalError) as info:
            proto.receive_data(b"")
        assert info.value.sqlstate == "XX000"
        assert "internal trouble" in str(info.value)

    @pytest.mark.parametrize("state", ["new", "startup", "ready", "busy"])
    def test_plain_end_of_stream(self, state: str) -> None:
        proto = IN_STATE[state]()
        with pytest.raises(OperationalError, match="server closed the connection") as info:
            proto.receive_data(b"")
        assert type(info.value) is OperationalError
        assert proto.state is State.CLOSED

    @pytest.mark.parametrize("cut", [1, 4, 5, 9])
    def test_end_inside_a_message(self, cut: int) -> None:
        proto = ready_protocol()
        proto.receive_data(notify(1, "channel", "payload")[:cut])
        with pytest.raises(ProtocolViolation, match=f"{cut} bytes"):
            proto.receive_data(b"")
        assert proto.state is State.CLOSED

    def test_lost_error_without_data(self) -> None:
        error_ = ready_protocol().lost_error()
        assert type(error_) is OperationalError

    def test_nothing_is_accepted_once_closed(self) -> None:
        proto = closed_protocol()
        proto.receive_data(notify(1, "c"))
        proto.receive_data(b"")
        assert not proto.notifications
        assert proto.state is State.CLOSED


class TestTerminate:
    @pytest.mark.parametrize("state", ["startup", "ready", "busy"])
    def test_terminate_once(self, state: str) -> None:
        proto = IN_STATE[state]()
        assert proto.terminate() == b"X\0\0\0\x04"
        assert proto.state is State.CLOSED
        assert proto.terminate() == b""

    @pytest.mark.parametrize("state", ["new", "closed"])
    def test_nothing_to_terminate(self, state: str) -> None:
        proto = IN_STATE[state]()
        assert proto.terminate() == b""
        assert proto.state is State.CLOSED

    def test_mark_lost(self) -> None:
        proto = busy_protocol()
        proto.mark_lost()
        assert proto.state is State.CLOSED
        assert proto.terminate() == b""


# == the protocol steps ==========================================================


def md5_answer(user: str, password: str, salt: bytes) -> bytes:
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode()


AFTER_AUTH = (
    auth_ok()
    + parameter_status("server_version", "16.2")
    + backend_key(555, 666)
    + notice("hi")
    + ready("I")
)


class TestStartupFlow:
    @pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
    def test_md5(self, bytewise: bool) -> None:
        proto = Machine()
        server = ScriptedServer(auth_md5(b"\x01\x02\x03\x04"), AFTER_AUTH, bytewise=bytewise)
        result = server.run(
            steps.startup(proto, STARTUP_PARAMS, Authenticator("alice", "s3cret")), proto
        )
        assert result is None
        assert server.sent == [
            frontend.startup_message(STARTUP_PARAMS),
            b"p\0\0\0\x28" + md5_answer("alice", "s3cret", b"\x01\x02\x03\x04") + b"\0",
        ]
        assert server.reads == []
        assert proto.state is State.READY
        assert proto.backend_pid == 555
        assert proto.secret_key == i32(666)
        assert proto.parameters == {"server_version": "16.2"}
        assert proto.notices == ["NOTICE:  hi\n"]

    def test_cleartext(self) -> None:
        proto = Machine()
        server = ScriptedServer(auth_cleartext(), AFTER_AUTH)
        server.run(steps.startup(proto, {"user": "bob"}, Authenticator("bob", "pw")), proto)
        assert server.sent[1] == b"p\0\0\0\x07pw\0"
        assert proto.state is State.READY

    def test_trust(self) -> None:
        proto = Machine()
        server = ScriptedServer(AFTER_AUTH)
        server.run(steps.startup(proto, {"user": "bob"}, Authenticator("bob", None)), proto)
        assert len(server.sent) == 1
        assert proto.state is State.READY

    def test_fatal_error(self) -> None:
        proto = Machine()
        server = ScriptedServer(
            auth_cleartext(), error("28P01", "password authentication failed", "FATAL")
        )
        with pytest.raises(OperationalError) as info:
            server.run(steps.startup(proto, {"user": "bob"}, Authenticator("bob", "bad")), proto)
        assert info.value.sqlstate == "28P01"
        assert proto.state is State.CLOSED

    def test_error_of_another_class_is_operational(self) -> None:
        proto = Machine()
        server = ScriptedServer(error("3D000", 'database "nope" does not exist', "FATAL"))
        with pytest.raises(OperationalError) as info:
            server.run(steps.startup(proto, {"user": "bob"}, Authenticator("bob", None)), proto)
        assert info.value.sqlstate == "3D000"
        assert "nope" in str(info.value)
        assert proto.state is State.CLOSED

    def test_end_of_stream(self) -> None:
        proto = Machine()
        server = ScriptedServer(auth_ok())
        with pytest.raises(OperationalError, match="server closed the connection"):
            server.run(steps.startup(proto, {"user": "bob"}, Authenticator("bob", None)), proto)
        assert proto.state is State.CLOSED

    def test_unsupported_method(self) -> None:
        server = ScriptedServer(msg(b"R", i32(7)))
        with pytest.raises(OperationalError, match="GSSAPI"):
            machine = Machine()
            server.run(steps.startup(machine, {"user": "u"}, Authenticator("u", "p")), machine)

    @pytest.mark.parametrize(
        "script",
        [
            (auth_sasl("SCRAM-SHA-256"), backend_key() + ready()),
            (backend_key() + ready(),),
        ],
        ids=["scram-started", "no-authentication"],
    )
    def test_ready_before_authentication_ok_is_refused(self, script: Sequence[bytes]) -> None:
        proto = Machine()
        server = ScriptedServer(*script)
        with pytest.raises(OperationalError):
            server.run(steps.startup(proto, {"user": "u"}, Authenticator("u", "pencil")), proto)


class TestQueryFlows:
    @pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
    def test_simple_query_rows_as_text(self, bytewise: bool) -> None:
        proto = ready_protocol()
        server = ScriptedServer(
            row_description("a", "b")
            + data_row(b"1", b"x")
            + data_row(None, "\u00e9\U0001f600".encode())
            + data_row(b"", None)
            + command_complete("SELECT 3")
            + ready("T"),
            bytewise=bytewise,
        )
        rows = server.run(steps.simple_query(proto, "SELECT a, b FROM t"), proto)
        assert rows == [("1", "x"), (None, "\u00e9\U0001f600"), ("", None)]
        assert server.sent == [frontend.query("SELECT a, b FROM t")]
        assert proto.state is State.READY
        assert proto.transaction_status == "T"
        assert proto.next_message() is None

    def test_simple_query_rows_of_every_result(self) -> None:
        proto = ready_protocol()
        server = ScriptedServer(
            row_description("a") + data_row(b"1") + command_complete("SELECT 1")
            + command_complete("LISTEN")
            + row_description("b") + data_row(b"2") + command_complete("SELECT 1")
            + ready()
        )
        assert server.run(steps.simple_query(proto, "SELECT 1; LISTEN c; SELECT 2"), proto) == [
            ("1",),
            ("2",),
        ]

    def test_empty_query(self) -> None:
        proto = ready_protocol()
        assert ScriptedServer(EMPTY_QUERY + ready()).run(steps.simple_query(proto, ""), proto) == []
        assert proto.state is State.READY

    def test_server_error_is_raised_after_ready_for_query(self) -> None:
        proto = ready_protocol()
        step = steps.simple_query(proto, "SELEC 1")
        assert step.send(None) == frontend.query("SELEC 1")
        assert step.send(None) is None  # waiting for the answer
        # The error arrives: the step holds it back and keeps reading.
        proto.receive_data(error("42601", 'syntax error at or near "SELEC"'))
        assert step.send(None) is None
        assert proto.state is State.BUSY
        proto.receive_data(ready("I"))
        with pytest.raises(ProgrammingError) as info:
            step.send(None)
        assert info.value.sqlstate == "42601"
        assert state_of(proto) is State.READY
        # The connection is usable again.
        server = ScriptedServer(
            row_description("x") + data_row(b"1") + command_complete("S") + ready()
        )
        assert server.run(steps.simple_query(proto, "SELECT 1"), proto) == [("1",)]

    def test_error_after_some_rows(self) -> None:
        proto = ready_protocol()
        server = ScriptedServer(
            row_description("x") + data_row(b"1") + error("22012", "division by zero"),
            ready("E"),
        )
        with pytest.raises(DatabaseError) as info:
            server.run(steps.simple_query(proto, "SELECT 1/x FROM t"), proto)
        assert info.value.sqlstate == "22012"
        assert server.reads == []
        assert proto.state is State.READY
        assert proto.transaction_status == "E"

    @pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
    def test_notifications_between_rows_keep_their_order(self, bytewise: bool) -> None:
        proto = ready_protocol()
        server = ScriptedServer(
            notify(10, "c", "0")
            + row_description("x")
            + data_row(b"1")
            + notify(10, "c", "1")
            + data_row(b"2")
            + notify(11, "d", "2")
            + command_complete("SELECT 2")
            + notify(10, "c", "3"),
            notice("between") + notify(12, "c", "4") + ready(),
            bytewise=bytewise,
        )
        assert server.run(steps.simple_query(proto, "SELECT x FROM t"), proto) == [("1",), ("2",)]
        assert [(n.pid, n.payload) for n in queued(proto)] == [
            (10, "0"),
            (10, "1"),
            (11, "2"),
            (10, "3"),
            (12, "4"),
        ]
        assert proto.notices == ["NOTICE:  between\n"]

    def test_notification_alone_does_not_end_the_query(self) -> None:
        proto = ready_protocol()
        step = steps.simple_query(proto, "LISTEN c")
        step.send(None)
        assert step.send(None) is None
        proto.receive_data(command_complete("LISTEN") + notify(1, "c", "x"))
        assert step.send(None) is None
        proto.receive_data(ready())
        with pytest.raises(StopIteration) as stop:
            step.send(None)
        assert stop.value.value == []
        assert list(proto.notifications) == [m.Notify(1, "c", "x")]

    def test_end_of_stream_during_a_query(self) -> None:
        proto = ready_protocol()
        server = ScriptedServer(row_description("x") + data_row(b"1"))
        with pytest.raises(OperationalError, match="server closed the connection"):
            server.run(steps.simple_query(proto, "SELECT 1"), proto)
        assert proto.state is State.CLOSED

    def test_fatal_error_during_a_query_explains_the_end(self) -> None:
        proto = ready_protocol()
        server = ScriptedServer(row_description("x") + error(*TERMINATED))
        with pytest.raises(OperationalError) as info:
            server.run(steps.simple_query(proto, "SELECT pg_sleep(10)"), proto)
        assert info.value.sqlstate == "57P01"

    def test_query_refused_unless_ready(self) -> None:
        proto = busy_protocol()
        step = steps.simple_query(proto, "SELECT 1")
        with pytest.raises(InterfaceError):
            step.send(None)

    def test_invalid_utf8_in_a_row(self) -> None:
        proto = ready_protocol()
        bad_row = msg(b"D", i16(1) + i32(2) + b"\xff\xfe")
        server = ScriptedServer(
            row_description("x") + bad_row + command_complete("SELECT 1") + ready()
        )
        with pytest.raises(Error):
            server.run(steps.simple_query(proto, "SELECT x FROM t"), proto)
        assert proto.state is State.READY

    @pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
    def test_extended_query(self, bytewise: bool) -> None:
        proto = ready_protocol()
        params = ["chan", None, "it's \u00e9"]
        server = ScriptedServer(
            PARSE_COMPLETE
            + BIND_COMPLETE
            + data_row(b"chan", None, "it's \u00e9".encode())
            + command_complete("SELECT 1")
            + ready(),
            bytewise=bytewise,
        )
        rows = server.run(steps.extended_query(proto, "SELECT $1, $2, $3", params), proto)
        assert rows == [("chan", None, "it's \u00e9")]
        [sent] = server.sent
        assert sent == (
            frontend.parse("", "SELECT $1, $2, $3", [25, 25, 25])
            + frontend.bind("", "", params)
            + frontend.execute()
            + frontend.sync()
        )
        assert split_frontend(sent) == [b"P", b"B", b"E", b"S"]
        assert proto.state is State.READY

    def test_extended_query_error_then_sync(self) -> None:
        proto = ready_protocol()
        server = ScriptedServer(error("42P01", 'relation "t" does not exist') + ready())
        with pytest.raises(ProgrammingError) as info:
            server.run(steps.extended_query(proto, "SELECT * FROM t WHERE x = $1", ["1"]), proto)
        assert info.value.sqlstate == "42P01"
        assert proto.state is State.READY


class TestNegotiateTLS:
    @staticmethod
    def answer(data: bytes) -> bool:
        machine = Machine()
        step = steps.negotiate_tls(machine)
        assert step.send(None) == frontend.ssl_request()
        assert step.send(None) is None
        machine.receive_data(data)  # what the driver does with what came
        with pytest.raises(StopIteration) as stop:
            step.send(None)
        assert machine.state is State.NEW  # ready for the startup, over TLS or not
        return stop.value.value  # type: ignore[no-any-return]

    def test_accepted(self) -> None:
        assert self.answer(b"S") is True

    def test_refused(self) -> None:
        assert self.answer(b"N") is False

    @pytest.mark.parametrize("data", [b"SZ", b"S" + ready(), b"S\x16\x03\x01"])
    def test_bytes_after_s_are_refused(self, data: bytes) -> None:
        # CVE-2021-23222: bytes that arrive with the 'S' were not protected by TLS.
        with pytest.raises(ProtocolViolation, match="man-in-the-middle"):
            self.answer(data)

    def test_end_of_stream(self) -> None:
        with pytest.raises(OperationalError, match="closed the connection") as info:
            self.answer(b"")
        assert not isinstance(info.value, ProtocolViolation)

    @pytest.mark.parametrize("data", [b"X", b"HTTP/1.1 400", b"\x00", b"NN", b"s"])
    def test_garbage(self, data: bytes) -> None:
        with pytest.raises(ProtocolViolation, match="invalid answer"):
            self.answer(data)

    def test_error_answer(self) -> None:
        with pytest.raises(OperationalError, match="sslmode=disable"):
            self.answer(msg(b"E", fields({"M": "unsupported frontend protocol"})))
