"""pgwire_pubsub for asyncio: the same client, on the same core, as coroutines.

    import pgwire_pubsub.aio

    async with await pgwire_pubsub.aio.connect(user="postgres", dbname="test") as pubsub:
        await pubsub.listen("orders")
        async for event in pubsub.events():
            print(event.channel, event.payload)
"""

from ..errors import (
    DatabaseError,
    Error,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    QueryCanceled,
)
from ..protocol.events import Dropped, PendingOverflow, Reconnected
from ..protocol.messages import Notify
from ._connection import AsyncConnection
from ._pubsub import AsyncPubSub, connect
from ._subscription import Subscription

__all__ = [
    "AsyncConnection",
    "AsyncPubSub",
    "DatabaseError",
    "Dropped",
    "Error",
    "InterfaceError",
    "Notify",
    "OperationalError",
    "PendingOverflow",
    "ProgrammingError",
    "QueryCanceled",
    "Reconnected",
    "Subscription",
    "connect",
]
