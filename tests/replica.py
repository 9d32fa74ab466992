"""A streaming replica of a test cluster, made with ``pg_basebackup -R``."""

from __future__ import annotations

import os
import tempfile
from typing import Optional

from pgwire_pubsub.testing.pgcluster import Cluster, _live, wait_for


def allow_replication(primary: Cluster) -> None:
    """Let the primary's postgres role stream over its Unix socket."""
    with open(os.path.join(primary.datadir, "pg_hba.conf"), "a") as f:
        f.write("local replication postgres trust\n")
    primary.psql("SELECT pg_reload_conf()")


class Replica(Cluster):
    """A hot standby that follows ``primary``; same roles and passwords, TLS off."""

    def __init__(self, primary: Cluster, bindir: Optional[str] = None) -> None:
        super().__init__(tls=False, bindir=bindir or primary.bindir)
        self.primary = primary

    def _create(self) -> None:
        self.tmpdir = self.socket_dir = tempfile.mkdtemp(prefix="pgwire-replica-", dir="/tmp")
        os.chmod(self.tmpdir, 0o755)
        self._chown(self.tmpdir)
        self.programs.prepare("/tmp", "pgwire-replica-")
        allow_replication(self.primary)
        assert self.primary.socket_dir is not None
        self._run("pg_basebackup", "-D", self.datadir, "-R", "-X", "stream", "-c", "fast",
                  "-h", self.primary.socket_dir, "-p", str(self.primary.port), "-U", "postgres")
        self._start_on_free_port()
        wait_for(lambda: self.psql("SELECT pg_is_in_recovery()").strip() == "t",
                 message="the replica did not enter recovery")

    def start(self) -> Replica:
        if self.tmpdir is None:
            self._create()
            _live.append(self)
        elif not self.running:
            self._pg_ctl_start()
        return self
