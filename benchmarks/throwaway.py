"""The server a single-purpose benchmark script runs against: the one given, or a throwaway
cluster started with the test fixtures' helper (TLS off) for the time of the run."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Optional


@contextlib.contextmanager
def server_dsn(dsn: Optional[str]) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from pgwire_pubsub.testing.pgcluster import Cluster

    with Cluster(tls=False) as cluster:
        cluster.start()
        yield cluster.dsn("postgres", sslmode="disable")
