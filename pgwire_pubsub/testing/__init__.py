"""Tools for testing at the wire: throwaway PostgreSQL servers, a fake backend, a fault proxy,
and a pytest plugin that offers them as fixtures (see docs/testing.md).

    from pgwire_pubsub.testing import FakeBackend, FaultProxy, start_server

The names below are loaded on first use, so that importing the pytest plugin costs
nothing until a fixture is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, List

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
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_WHERE))
