"""How a client with subscriptions and callbacks routes what it receives, and keeps the
server's LISTEN in step with what is wanted (``PubSubCore`` mixes this in)."""

from __future__ import annotations

from typing import Any, List, Optional, Set

from ..protocol.events import Bound
from ..protocol.pending import Pending
from .channels import quote_ident
from .fanout import Hub
from .requests import Exclusive, Procedure


class Routing:
    """While the hub is on, the connection delivers into ``_inbox`` and ``route()`` hands each
    notification on: to subscriptions and callbacks (``hub``), and to the client's own queue
    when the client listens on its channel itself (or ``verify()`` waits for it)."""

    conn: Any
    channels: Set[str]
    hub: Hub
    _queue: Pending
    _inbox: Pending
    _bound: Optional[Bound]
    _server: Set[str]
    _unsure: Set[str]
    _private: Set[str]

    def _execute(
        self, sql: str, params: Optional[List[Optional[str]]] = None
    ) -> Procedure[List[Any]]:
        raise NotImplementedError  # PubSubCore's

    def _sync_listens(self) -> Procedure[None]:
        """LISTEN and UNLISTEN until the server listens on exactly what the client and its
        subscriptions want (run as ``Exclusive``, so that concurrent opens and closes leave
        it exactly so)."""
        wanted = self.hub.wanted() | self.channels
        for channel in sorted(wanted - self._server):
            yield from self._set_listening(channel, True)
        for channel in sorted((self._server | self._unsure) - wanted):
            yield from self._set_listening(channel, False)

    def _set_listening(self, channel: str, listening: bool) -> Procedure[None]:
        """LISTEN or UNLISTEN ``channel``; unsure of the server's state until it answers."""
        self._server.discard(channel)
        self._unsure.add(channel)
        yield from self._execute(("LISTEN " if listening else "UNLISTEN ") + quote_ident(channel))
        self._unsure.discard(channel)
        if listening:
            self._server.add(channel)

    def _sync_listens_exclusively(self) -> Procedure[None]:
        yield Exclusive(self._sync_listens())

    def _hub_on(self) -> None:
        """Deliver into a separate inbox from now on, routed by ``route()``."""
        if self._inbox is self._queue:
            self._inbox = Pending()
            self.conn.machine.notifications = self._inbox
            self.conn.machine.bound = None

    def _hub_off(self) -> None:
        """Back to delivering straight into the client's own queue."""
        if self._inbox is not self._queue:
            self.route()
            self._inbox = self._queue
            self.conn.machine.notifications = self._queue
            self.conn.machine.bound = self._bound

    def route(self) -> bool:
        """Hand on what the connection delivered (no I/O): whether a subscription or callback
        got something."""
        if self._inbox is self._queue:
            return False
        delivered = self.hub.dispatch(self._inbox, self._queue, self._keeps)
        if self._bound is not None:
            self._bound.enforce(self._queue)
        return delivered

    def _keeps(self, channel: str) -> bool:
        return channel in self.channels or channel in self._private

