"""Tools for testing at the wire: throwaway PostgreSQL servers, a fake backend, a fault proxy,
and a pytest plugin that offers them as fixtures (see docs/testing.md).

    from pgwire_pubsub.testing import FakeBackend, FaultProxy, start_server

The names below are loaded on first use, so that importing the pytest plugin costs
nothing until a fixture is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol._exports import lazy_exports

if TYPE_CHECKING:
    from .fakebackend import FakeBackend as FakeBackend
    from .fakeconn import FakeConn as FakeConn
    from .faultproxy import FaultProxy as FaultProxy
    from .pgcluster import Cluster as Cluster
    from .pgcluster import ContainerServer as ContainerServer
    from .pgcluster import ExternalServer as ExternalServer
    from .pgcluster import Server as Server
    from .pgcluster import Unavailable as Unavailable
    from .pgcluster import wait_for as wait_for
    from .postgres import Database as Database
    from .postgres import start_server as start_server

_MODULES = {  # where each public name lives
    "fakebackend": ("FakeBackend",),
    "fakeconn": ("FakeConn",),
    "faultproxy": ("FaultProxy",),
    "pgcluster": ("Cluster", "ContainerServer", "ExternalServer", "Server", "Unavailable",
                  "wait_for"),
    "postgres": ("Database", "start_server"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _MODULES)
