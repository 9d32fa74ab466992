"""pytest fixtures for tests of LISTEN/NOTIFY code and of anything that speaks PostgreSQL.

Installed with ``pip install 'pgwire-pubsub[testing]'`` (entry point ``pytest11``),
or named in a conftest.py: ``pytest_plugins = ("pgwire_pubsub.testing.plugin",)``.

- ``postgres_server``: a database of its own for the test (``.dsn``, ``.dsn_params()``,
  ``.psql(sql)``), on one throwaway real server per session (``postgres_cluster``;
  see ``pgwire_pubsub.testing.postgres.start_server``).  Skips when there is none.
- ``pubsub``: ``pgwire_pubsub.connect(postgres_server.dsn)``, closed afterwards.
- ``async_pubsub``: the same with ``pgwire_pubsub.aio`` (needs an asyncio test runner
  such as pytest-asyncio).
- ``fake_backend``: a running ``FakeBackend`` in its pub/sub mode (indirect
  parametrization passes keywords: ``{"auth": "md5", "password": "pw"}``).
- ``fault_proxy``: a ``FaultProxy`` in front of ``postgres_server`` (``.dsn``).

Nothing is imported or started until a test asks for a fixture.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from pgwire_pubsub import PubSub

    from .fakebackend import FakeBackend
    from .faultproxy import FaultProxy
    from .pgcluster import Server
    from .postgres import Database

F = TypeVar("F", bound=Callable[..., Any])


def _async_fixture(function: F) -> F:
    """pytest-asyncio's fixture decorator when it is installed (its strict mode wants it),
    else pytest's (for other runners, such as anyio's)."""
    decorator: Any = pytest.fixture
    with contextlib.suppress(ImportError):
        from pytest_asyncio import fixture as decorator  # type: ignore[no-redef,unused-ignore]
    return cast(F, decorator(function))


def session_server(tls: bool = True) -> Iterator[Server]:
    """The body of a session fixture: ``start_server(tls)``, stopped afterwards; skips the
    test when there is no server."""
    from .pgcluster import Unavailable
    from .postgres import start_server

    try:
        server = start_server(tls)
    except Unavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Server]:
    """The session's throwaway PostgreSQL server (skips the test when there is none)."""
    yield from session_server()


@pytest.fixture
def postgres_server(postgres_cluster: Server) -> Iterator[Database]:
    """A fresh database for this test on the session's server; ``.dsn`` connects to it."""
    from .postgres import Database

    database = Database.create(postgres_cluster)
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def pubsub(postgres_server: Database) -> Iterator[PubSub]:
    """A ``PubSub`` connected to ``postgres_server``."""
    import pgwire_pubsub

    client = pgwire_pubsub.connect(postgres_server.dsn)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def pgwire_aio() -> ModuleType:
    """``pgwire_pubsub.aio``; skips the test in versions without it."""
    try:
        return importlib.import_module("pgwire_pubsub.aio")
    except ModuleNotFoundError as exc:
        if exc.name != "pgwire_pubsub.aio":
            raise
        pytest.skip("pgwire_pubsub.aio (the asyncio client) is not in this version")


@_async_fixture
async def async_pubsub(pgwire_aio: ModuleType, postgres_server: Database) -> AsyncIterator[Any]:
    """The asyncio client connected to ``postgres_server``."""
    client = await pgwire_aio.connect(dsn=postgres_server.dsn)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def fake_backend(request: pytest.FixtureRequest) -> Iterator[FakeBackend]:
    """A running ``FakeBackend`` (the pub/sub server unless a ``script`` is passed)."""
    from .fakebackend import FakeBackend

    with FakeBackend(**getattr(request, "param", {})) as fake:
        yield fake


@pytest.fixture
def fault_proxy(postgres_server: Database) -> Iterator[FaultProxy]:
    """A ``FaultProxy`` between the test and ``postgres_server``; connect to ``.dsn``."""
    from .faultproxy import FaultProxy

    with FaultProxy(postgres_server.host, postgres_server.port,
                    dsn_params=postgres_server.dsn_params()) as proxy:
        yield proxy
