"""pgwire_pubsub: PostgreSQL LISTEN/NOTIFY in pure Python, a drop-in for pgpubsub.

    import pgwire_pubsub as pgpubsub
    pubsub = pgpubsub.connect(user="postgres", dbname="test")
"""

from ._blocking.connection import Connection
from ._blocking.fanout import Subscription
from ._blocking.pubsub import PubSub, connect, quote_ident
from ._shared.reconnect import ReconnectPolicy
from .conninfo import ConnParams, HostSpec, make_params, parse_dsn
from .errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    ProtocolViolation,
    QueryCanceled,
    Warning,
)
from .protocol.events import Dropped, PendingOverflow, Reconnected
from .protocol.messages import Notify

__version__ = "0.1.0"

__all__ = [
    "ConnParams",
    "Connection",
    "DataError",
    "DatabaseError",
    "Dropped",
    "Error",
    "HostSpec",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "Notify",
    "OperationalError",
    "PendingOverflow",
    "ProgrammingError",
    "ProtocolViolation",
    "PubSub",
    "QueryCanceled",
    "ReconnectPolicy",
    "Reconnected",
    "Subscription",
    "Warning",
    "__version__",
    "connect",
    "make_params",
    "parse_dsn",
    "quote_ident",
]
