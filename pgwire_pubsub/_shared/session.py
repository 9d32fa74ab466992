"""What a connection shows of its session, the same in every driver (psycopg2's names)."""

from __future__ import annotations

import socket
from typing import Dict, List, Optional

from ..errors import OperationalError
from ..protocol.machine import Machine
from ..protocol.pending import Pending


class SessionView:
    """Read-only views of ``machine``, the connection's protocol state."""

    machine: Machine

    def get_backend_pid(self) -> int:
        return self.machine.backend_pid or 0

    def get_parameter_status(self, name: str) -> Optional[str]:
        return self.machine.parameters.get(name)

    @property
    def parameters(self) -> Dict[str, str]:
        """Run-time parameters the server reported (server_version, TimeZone...)."""
        return dict(self.machine.parameters)

    @property
    def server_version(self) -> int:
        """As psycopg2 reports it: 15.4 is 150004, 9.6.3 is 90603."""
        return self.machine.server_version

    @property
    def notices(self) -> List[str]:
        """The server's last notices and warnings (at most 50), oldest first."""
        return self.machine.notices

    @property
    def transaction_status(self) -> Optional[str]:
        """'I' idle, 'T' in a transaction, 'E' in a failed one (the last ReadyForQuery's)."""
        return self.machine.transaction_status

    @property
    def notifications(self) -> Pending:
        """Notifications received and not yet taken, oldest first (and any gap markers):
        a ``Pending`` queue, with ``popleft``, ``pop``, iteration, ``len`` and indexing."""
        return self.machine.notifications


def socket_error(exc: BaseException) -> OperationalError:
    """The ``OperationalError`` for a failed or timed-out read or write."""
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return OperationalError("timeout expired while talking to the server")
    return OperationalError(f"connection to the server was lost: {exc}")
