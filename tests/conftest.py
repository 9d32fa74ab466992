"""Shared fixtures: ``pg`` (TLS), ``pg_nossl`` (TLS off), ``pg_build``, ``open_client`` and
``wait_for``.

``pg`` is the session server of the package's own pytest plugin (``postgres_cluster``),
which also offers ``postgres_server``, ``pubsub``, ``fake_backend`` and ``fault_proxy``.
Server priority: PGWIRE_TEST_DSN > local server binaries > pgserver > testcontainers > skip.

A test marked ``all_servers("feature")`` runs once per server build (see pgbuilds.py):
``pg_build`` is parametrised over them, and ``pg`` is then that build's server (TLS only
where the build has it). The feature names a row of docs/compatibility.md.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import compat
import pgbuilds
import pytest
from aioadapter import AsyncClient
from pgbuilds import Build

import pgwire_pubsub
from pgwire_pubsub._blocking.connection import connect_raw
from pgwire_pubsub.testing import pgcluster
from pgwire_pubsub.testing.pgcluster import Cluster, Server, Unavailable

# Also registered by the package's entry point, under this same name: loaded once.  Named
# here too, so that the suite runs from a checkout that is not installed.
pytest_plugins = ("pgwire_pubsub.testing.plugin", "pytester")

SERVER_FIXTURES = {"pg", "pg_nossl", "pg_build", "postgres_cluster", "postgres_server",
                   "pubsub", "async_pubsub", "fault_proxy"}

# Servers of other builds (and the TLS-less one), by (build name, TLS): each runs until the
# session ends, so that tests of one build and of another can come in any order without
# restarts.  The main build's server is the plugin's postgres_cluster.
_servers: Dict[Tuple[Optional[str], bool], Union[Server, Unavailable]] = {}


def _server(tls: bool, build: Optional[Build]) -> Server:
    from pgwire_pubsub.testing.postgres import start_server

    key = (build.name if build else None, tls)
    if key not in _servers:
        try:
            if build is not None:
                _servers[key] = Cluster(tls=tls and build.tls, bindir=build.bindir).start()
            else:
                _servers[key] = start_server(tls)
        except Unavailable as e:
            _servers[key] = e
    server = _servers[key]
    if isinstance(server, Unavailable):
        pytest.skip(str(server))
    return server


def _main_build() -> Optional[Build]:
    found = pgbuilds.builds()
    return found[0] if found else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    for server in _servers.values():
        if isinstance(server, Server):
            server.cleanup()
    _servers.clear()


@pytest.fixture(scope="session")
def pg_build(request: pytest.FixtureRequest) -> Optional[Build]:
    """The server build under test: the one of an ``all_servers`` test's parameter, else
    the main server's (None when that is not a local build)."""
    build: Optional[Build] = getattr(request, "param", None) or _main_build()
    if build is not None and build.missing:
        pytest.skip(build.missing)
    return build


@pytest.fixture(scope="session")
def pg(pg_build: Optional[Build], request: pytest.FixtureRequest) -> Server:
    """The main server: a local cluster with TLS, all roles, restartable; in an
    ``all_servers`` test, the server of that test's build."""
    if pg_build is None or pg_build is _main_build():
        server: Server = request.getfixturevalue("postgres_cluster")
        return server
    return _server(True, pg_build)


@pytest.fixture(scope="session")
def pg_nossl() -> Server:
    """A second server with ``ssl = off``, started only when a test asks for it."""
    return _server(False, None)


# The clients the behavioural suite runs on: the blocking one, and the asyncio one (through
# tests/aioadapter.py) on the default event loop; modules that ask for "uvloop" too get it.
# PGWIRE_TEST_CLIENTS narrows them (.ci/run runs PyPy with the blocking client only).
CLIENTS = tuple(os.environ.get("PGWIRE_TEST_CLIENTS", "blocking,asyncio").split(","))


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# The event loops the asyncio client runs on here: uvloop too where it installs (it has no
# PyPy build), and where the asyncio client is among the clients tested.
UVLOOP = ("uvloop",) if uvloop_available() and "asyncio" in CLIENTS else ()


@pytest.fixture(scope="session")
def _loop_threads() -> Iterator[Dict[str, AsyncClient]]:
    threads: Dict[str, AsyncClient] = {}
    yield threads
    for client in threads.values():
        client.stop()


def client_kind_of(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture(params=CLIENTS)
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client a behavioural test runs on (``blocking``, ``asyncio``; a module may
    override this fixture to add ``uvloop``)."""
    return client_kind_of(request)


REAL_CONNECT = pgwire_pubsub.connect
REAL_CONNECT_RAW = connect_raw


def _async_client(kind: str, threads: Dict[str, AsyncClient]) -> AsyncClient:
    if kind not in threads:
        threads[kind] = AsyncClient(kind)
    return threads[kind]


@pytest.fixture
def open_client(client_kind: str, _loop_threads: Dict[str, AsyncClient]
                ) -> Iterator[Callable[..., Any]]:
    """``open_client(dsn=None, **kwargs)``: ``pgwire_pubsub.connect`` on the client this
    test runs on; every client opened is closed afterwards."""
    opened: List[Any] = []

    def connect(*args: Any, **kwargs: Any) -> Any:
        if client_kind == "blocking":
            pubsub: Any = REAL_CONNECT(*args, **kwargs)
        else:
            pubsub = _async_client(client_kind, _loop_threads).connect(*args, **kwargs)
        opened.append(pubsub)
        return pubsub

    yield connect
    for pubsub in opened:
        pubsub.close()


@pytest.fixture
def on_every_client(request: pytest.FixtureRequest, client_kind: str,
                    open_client: Callable[..., Any], _loop_threads: Dict[str, AsyncClient],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """For modules written against the blocking client (``pytestmark =
    pytest.mark.usefixtures("on_every_client")``): each test runs on every client, with
    ``pgwire_pubsub.connect`` and the module's ``connect_raw`` opening that client."""
    if client_kind == "blocking":
        return
    client = _async_client(client_kind, _loop_threads)
    monkeypatch.setattr(pgwire_pubsub, "connect", open_client)
    if hasattr(request.module, "connect_raw"):
        monkeypatch.setattr(request.module, "connect_raw", client.connect_raw)


def blocking_only(client_kind: str, why: str) -> None:
    """Skip a behavioural test on the asyncio client, saying why it does not apply there."""
    if client_kind != "blocking":
        pytest.skip(f"blocking client only: {why}")


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout=10, interval=0.02, message=None)``: poll, never sleep."""
    return pgcluster.wait_for


def pytest_configure(config: pytest.Config) -> None:
    compat.configure(config)


def pytest_addoption(parser: pytest.Parser) -> None:
    compat.addoption(parser)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("all_servers")
    if marker is None:
        return
    compat.check_marker(marker, metafunc.definition.nodeid)
    if "pg_build" not in metafunc.fixturenames:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: an all_servers test needs a "
                                "server: the pg fixture, or pg_build for a server of its own")
    if pgbuilds.builds():
        found = pgbuilds.builds()
        metafunc.parametrize("pg_build", found, ids=[b.name for b in found], indirect=True,
                             scope="session")


def _uvloop_on_another_build(item: pytest.Item, main: Optional[Build]) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    build = params.get("pg_build")
    return params.get("client_kind") == "uvloop" and build is not None and build is not main


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    # uvloop runs the behavioural suite on the machine's own server only: the other server
    # builds add nothing an event loop could see, and would multiply the suite's time.
    main = _main_build()
    other_builds = [item for item in items if _uvloop_on_another_build(item, main)]
    if other_builds:
        config.hook.pytest_deselected(items=other_builds)
        items[:] = [item for item in items if item not in other_builds]
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def root_only_copy() -> Iterator[Callable[[str], str]]:
    """As root, ``copy(bindir)``: a copy of that PostgreSQL installation in a directory
    only root can enter (mode 0700, as /root is); returns the copy's bindir.  pgserver's
    layout is kept: the package in ``<site>/pgserver``, its libraries in
    ``<site>/pgserver.libs`` (the copy's ``<site>`` is ``Path(bindir).parents[2]``)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root")
    top = Path(tempfile.mkdtemp(prefix="pgwire-root-only-", dir="/tmp"))
    assert stat.S_IMODE(top.stat().st_mode) == 0o700
    skip = shutil.ignore_patterns("include", "*.a", "__pycache__")

    def copy(bindir: str) -> str:
        prefix = Path(bindir).parent
        if prefix.name == "pginstall":  # <site>/pgserver/pginstall/bin
            site = prefix.parent.parent
            for name in ("pgserver", "pgserver.libs"):
                if (site / name).is_dir():
                    shutil.copytree(site / name, top / "site" / name, symlinks=True, ignore=skip)
            return str(top / "site" / "pgserver" / "pginstall" / "bin")
        for name in ("bin", "lib"):
            if (prefix / name).is_dir():
                shutil.copytree(prefix / name, top / prefix.name / name, symlinks=True,
                                ignore=skip)
        return str(top / prefix.name / "bin")

    yield copy
    shutil.rmtree(top)
