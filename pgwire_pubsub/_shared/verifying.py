"""``verify()``: a notification this session sends itself must come back, all within the
caller's timeout (``PubSubCore`` mixes this in)."""

from __future__ import annotations

import secrets
from typing import Any, Callable, Optional, Set

from ..errors import OperationalError
from ..protocol.events import Bound
from ..protocol.pending import Pending
from .channels import notify_statement, quote_ident
from .requests import Clock, Execute, Procedure

VERIFY_TIMEOUT = 5.0

VERIFY_FAILED = (
    "LISTEN/NOTIFY self-test failed: a notification this session sent to itself did not come "
    "back within {timeout:g} s. Notifications are probably not delivered to this connection: "
    "a connection pooler in transaction or statement mode (e.g. PgBouncer with "
    "pool_mode=transaction) does not keep LISTEN; connect to PostgreSQL directly or through "
    "a session-mode pool"
)

NO_ANSWER = (
    "verify(): the server did not answer {verb} within {timeout:g} s, so the connection "
    "was closed (its replies could no longer be matched to its commands); the server or "
    "the network may be down"
)


class Verifying:
    _queue: Pending
    _bound: Optional[Bound]
    _private: Set[str]

    def _connected(self) -> Procedure[Any]:
        raise NotImplementedError  # PubSubCore's

    def _waited_read(self, timeout: Optional[float], waiting: Optional[Callable[[], bool]] = None,
                     more: bool = False) -> Procedure[None]:
        raise NotImplementedError  # PubSubCore's

    def _verify(self, timeout: float) -> Procedure[None]:
        """A notification to a private channel must come back within ``timeout`` seconds;
        notifications received meanwhile stay queued, in order."""
        conn = yield from self._connected()
        machine = conn.machine
        channel = f"pgwire_pubsub_verify_{conn.get_backend_pid()}_{secrets.token_hex(6)}"
        token = secrets.token_hex(8)
        # The bound must not drop the self-test's own notification (nor one of yours for it).
        bound, machine.bound = machine.bound, None
        hub_bound, self._bound = self._bound, None
        self._private.add(channel)
        try:
            yield from self._self_test(conn, channel, token, timeout)
        finally:
            self._private.discard(channel)
            machine.bound = bound
            self._bound = hub_bound
            if hub_bound is not None:
                hub_bound.enforce(self._queue)

    def _self_test(self, conn: Any, channel: str, token: str, timeout: float) -> Procedure[None]:
        deadline = (yield Clock()) + timeout
        yield from self._within(conn, "LISTEN " + quote_ident(channel), deadline, timeout)
        try:
            yield from self._within(conn, notify_statement(channel, token), deadline, timeout)
            while not self._queue.take_first(
                lambda item: item.channel == channel and item.payload == token
            ):
                left = deadline - (yield Clock())
                if left <= 0:
                    raise OperationalError(VERIFY_FAILED.format(timeout=timeout))
                # Others' notifications may be waiting: read on, for ours.
                yield from self._waited_read(left, lambda: False, more=True)
        except GeneratorExit:
            raise
        except BaseException:
            if not conn.closed:
                yield Execute("UNLISTEN " + quote_ident(channel), timeout=timeout, conn=conn)
            raise
        yield Execute("UNLISTEN " + quote_ident(channel), timeout=timeout, conn=conn)

    def _within(self, conn: Any, sql: str, deadline: float, timeout: float) -> Procedure[None]:
        """``sql`` in what is left of the timeout: a server that does not answer in time
        fails the call on time (the command's reply may still come, so the connection
        closes)."""
        left = deadline - (yield Clock())
        if left <= 0:
            raise OperationalError(VERIFY_FAILED.format(timeout=timeout))
        try:
            yield Execute(sql, timeout=left, conn=conn)
        except OperationalError as exc:
            if conn.closed and (yield Clock()) >= deadline:
                verb = sql.split(" ", 1)[0]
                raise OperationalError(NO_ANSWER.format(verb=verb, timeout=timeout)) from exc
            raise
