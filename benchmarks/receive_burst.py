"""Receive-burst benchmark: CPU and wall time per notification for pgwire_pubsub.

Another connection sends COUNT notifications in one transaction; we time until
the listener holds the last one.

    python benchmarks/receive_burst.py [--count 200000] [--dsn DSN]

Without --dsn a throwaway cluster is started with the test fixtures' helper.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the checkout

import pgwire_pubsub

SQL = "SELECT pg_notify('bench', lpad(i::text, 64, 'x')) FROM generate_series(1, {count}) i"


def run(dsn: str, count: int) -> None:
    listener = pgwire_pubsub.connect(dsn)
    sender = pgwire_pubsub.connect(dsn)
    listener.listen("bench")
    thread = threading.Thread(target=sender.conn.execute, args=(SQL.format(count=count),))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    thread.start()
    received = 0
    while received < count:
        events = listener.get_events(select_timeout=10)
        if events is None:
            raise SystemExit(f"stalled after {received} notifications")
        received += len(events)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    thread.join()
    print(
        f"{count} notifications: {count / wall:,.0f}/s wall, "
        f"{cpu / count * 1e6:.2f} us CPU each (includes the sender thread's small share)"
    )
    listener.close()
    sender.close()


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--dsn")
    args = parser.parse_args(argv)
    if args.dsn:
        run(args.dsn, args.count)
        return
    from pgwire_pubsub.testing.pgcluster import Cluster

    with Cluster(tls=False) as cluster:
        cluster.start()
        run(cluster.dsn("postgres"), args.count)


if __name__ == "__main__":
    main()
