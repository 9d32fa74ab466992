"""Fan-out at scale: what listeners cost the server, and what subscribers cost the client.

    python benchmarks/bench_fanout.py              # a throwaway cluster, 3 rounds
    python benchmarks/bench_fanout.py --quick      # tiny counts, 1 round: does it all work?
    python benchmarks/bench_fanout.py --dsn '...'  # a server of yours (idle connections are
                                                   # capped by its max_connections)
    python benchmarks/run.py --workloads fanout    # the same, from the suite

1. The server's cost: the NOTIFY rate of a sender (psycopg2 if installed, else this
   library; one statement and transaction per notification) while one listener takes
   them, with 0, 10, 100 and 1,000 more connections that LISTEN (each on a channel of its
   own) and do nothing else; and while one fan-out connection holds 1,000 or 10,000
   subscriptions instead, each read by an asyncio task.
2. The client's cost: CPU time of the client process per notification delivered to one
   subscription, with 1, 100 and 10,000 subscriptions on one channel and 10,000 spread
   over 1,000 channels, for the blocking and the asyncio client; for a burst (one
   transaction) and for one notification per channel at a time.

Loopback only; bounded counts and times.  Writes ``results/fanout.md``, ``.json`` and
``.png`` (with matplotlib).  The processes it starts are in ``bench_fanout_roles.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (HERE, ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bench_fanout_report  # noqa: E402

import pgwire_pubsub  # noqa: E402

ROLES = os.path.join(HERE, "bench_fanout_roles.py")
PAYLOAD = "x" * 64
TIMEOUT = 600.0  # seconds for one measuring process, a failure guard

FULL: Dict[str, Any] = {
    "rounds": 3, "warmup": 200, "seconds": 2.0, "max_notifies": 50_000,
    "idle": [0, 10, 100, 1000], "hubs": [1000, 10_000],
    # (subscribers, channels, pattern, count): count is the burst's size, or the rounds
    "clients": [(1, 1, "burst", 100_000), (100, 1, "burst", 20_000),
                (10_000, 1, "burst", 2000), (10_000, 1000, "burst", 100_000),
                (1, 1, "paced", 2000), (100, 1, "paced", 500),
                (10_000, 1, "paced", 20), (10_000, 1000, "paced", 20)],
}
QUICK: Dict[str, Any] = {
    "rounds": 1, "warmup": 20, "seconds": 0.2, "max_notifies": 500,
    "idle": [0, 10], "hubs": [100],
    "clients": [(1, 1, "burst", 2000), (100, 10, "burst", 1000), (1, 1, "paced", 20),
                (100, 10, "paced", 5)],
}


# -- part 1: the server's cost -------------------------------------------------------------


class Sender:
    """NOTIFY statements, one a transaction, as fast as one connection sends them."""

    def __init__(self, conninfo: Dict[str, Any]) -> None:
        try:
            import psycopg2
        except ImportError:
            self.pubsub = pgwire_pubsub.connect(**conninfo)
            self.execute = self.pubsub.conn.execute
            self.name = f"pgwire_pubsub {pgwire_pubsub.__version__}"
            return
        keys = ("host", "port", "user", "password", "dbname", "sslmode")
        self.conn = psycopg2.connect(**{k: conninfo[k] for k in keys if conninfo.get(k)})
        self.conn.autocommit = True
        self.execute = self.conn.cursor().execute
        self.name = f"psycopg2 {psycopg2.__version__.split()[0]}"

    def rate(self, warmup: int, seconds: float, most: int) -> Tuple[float, int]:
        """(notifications a second, how many were sent): for ``seconds`` or ``most``."""
        statement = f"NOTIFY bench, '{PAYLOAD}'"
        warm, deadline = 0, time.perf_counter() + seconds / 4
        while warm < warmup and time.perf_counter() < deadline:
            self.execute(statement)
            warm += 1
        sent, started = 0, time.perf_counter()
        deadline = started + seconds
        while sent < most and (sent % 50 or time.perf_counter() < deadline):
            self.execute(statement)
            sent += 1
        return sent / (time.perf_counter() - started), warm + sent

    def close(self) -> None:
        (self.pubsub if hasattr(self, "pubsub") else self.conn).close()


def start_role(conninfo: Dict[str, Any], role: str, count: int) -> subprocess.Popen[str]:
    """A listener or the idle connections (``count``: subscribers, or connections), in a
    process of its own, once it says it is ready."""
    proc = subprocess.Popen(
        [sys.executable, ROLES, role, "--conninfo", json.dumps(conninfo),
         "--subscribers", str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # READY, once it listens (or nothing: it failed)
    if line.strip() != "READY":
        proc.kill()
        raise RuntimeError(f"the {role} process did not start: {line!r}")
    return proc


def finish_listener(proc: subprocess.Popen[str], expected: int) -> Dict[str, Any]:
    """Tell it how many to expect; what it received (every reader, all of them)."""
    out, _ = proc.communicate(f"EXPECT {expected}\n", timeout=TIMEOUT)
    results = [json.loads(x[7:]) for x in out.splitlines() if x.startswith("RESULT ")]
    if not results or results[0]["received"] != expected:
        raise RuntimeError(f"the listener received {results} of {expected}")
    return dict(results[0])


def server_cost(conninfo: Dict[str, Any], plan: Dict[str, Any], capacity: int,
                log: Any) -> Dict[str, Any]:
    scenarios: List[Tuple[str, int, Optional[int]]] = [("no listener", 0, None)]
    scenarios += [(f"1 listener + {n:,} idle listening connections" if n else "1 listener",
                   n, 0) for n in plan["idle"] if n + 8 <= capacity]
    scenarios += [(f"1 fan-out connection, {n:,} subscribers", 0, n) for n in plan["hubs"]]
    rates: Dict[str, List[float]] = {name: [] for name, _, _ in scenarios}
    sender_name = ""
    for round_number in range(plan["rounds"]):
        for name, idle_count, listener in scenarios:
            with ExitStack() as stack:
                if idle_count:
                    idle = start_role(conninfo, "idle", idle_count)
                    stack.callback(idle.communicate, "", timeout=TIMEOUT)
                proc = None if listener is None else start_role(conninfo, "listener",
                                                                 listener)
                sender = Sender(conninfo)
                sender_name = sender.name
                try:
                    rate, sent = sender.rate(plan["warmup"], plan["seconds"],
                                             plan["max_notifies"])
                finally:
                    sender.close()
                if proc is not None:
                    finish_listener(proc, sent)
            rates[name].append(rate)
            log(f"[round {round_number + 1}/{plan['rounds']}] {name:<48} {rate:,.0f} NOTIFY/s")
    return {"sender": sender_name, "rows": [
        {"scenario": name, "idle": idle_count, "subscribers": listener,
         "rates": rates[name]} for name, idle_count, listener in scenarios]}


# -- part 2: the client's cost -------------------------------------------------------------


def client_run(conninfo: Dict[str, Any], client: str, subscribers: int, channels: int,
               pattern: str, count: int) -> Dict[str, Any]:
    argv = [sys.executable, ROLES, "client", "--conninfo", json.dumps(conninfo),
            "--client", client, "--subscribers", str(subscribers), "--channels",
            str(channels), "--pattern", pattern, "--count", str(count)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"{' '.join(argv[2:])} failed: {proc.stderr.strip()[-500:]}")


def client_cost(conninfo: Dict[str, Any], plan: Dict[str, Any], log: Any) -> List[Any]:
    rows = [{"client": client, "subscribers": n, "channels": c, "pattern": p, "count": k,
             "runs": []} for client in ("blocking", "asyncio")
            for n, c, p, k in plan["clients"]]
    for round_number in range(plan["rounds"]):
        for row in rows:
            result = client_run(conninfo, row["client"], row["subscribers"], row["channels"],
                                row["pattern"], row["count"])
            row["runs"].append(result)
            log(f"[round {round_number + 1}/{plan['rounds']}] {row['client']:<8} "
                f"{row['subscribers']:>6,} subscribers on {row['channels']:>5,} channel(s), "
                f"{row['pattern']:<5}: {result['cpu_ns_per_delivery']:,.1f} ns CPU/delivery")
    return rows


# -- main ----------------------------------------------------------------------------------


def capacity_of(conninfo: Dict[str, Any]) -> int:
    with pgwire_pubsub.connect(**conninfo) as pubsub:
        rows = pubsub.conn.execute("SELECT current_setting('max_connections')::int - "
                                   "current_setting('superuser_reserved_connections')::int")
        return int(rows[0][0])


def measure(conninfo: Dict[str, Any], args: argparse.Namespace, server: str) -> Dict[str, Any]:
    plan = dict(QUICK if args.quick else FULL)
    if args.rounds:
        plan["rounds"] = args.rounds
    conninfo = {"sslmode": "disable", **conninfo}

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    meta = bench_fanout_report.machine(conninfo, server, args.argv, plan)
    parts: Dict[str, Any] = {}
    if "server" in args.parts:
        parts["server"] = server_cost(conninfo, plan, capacity_of(conninfo), log)
    if "client" in args.parts:
        parts["client"] = client_cost(conninfo, plan, log)
    meta["load_after"] = bench_fanout_report.load_average()
    return bench_fanout_report.write(meta, parts, args.out, args.name)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description="The fan-out benchmark: the server's cost "
                                     "of listeners, the client's cost of subscribers.")
    parser.add_argument("--dsn", help="use this server instead of a throwaway cluster")
    parser.add_argument("--quick", action="store_true", help="tiny counts, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; quick 1)")
    parser.add_argument("--parts", default="server,client", help="server, client or both")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="output folder")
    parser.add_argument("--name", help="output file name (default: fanout; quick: "
                        "fanout-quick)")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.parts = [p for p in args.parts.split(",") if p]
    args.name = args.name or ("fanout-quick" if args.quick else "fanout")
    if args.dsn:
        from pgwire_pubsub.testing.pgcluster import parse_dsn

        conninfo: Dict[str, Any] = parse_dsn(args.dsn)
        return measure(conninfo, args, "given by --dsn")
    from pgwire_pubsub.testing.pgcluster import Cluster

    # 1,000 idle connections, the listener, the sender and ours: more than the default 50.
    settings = {"log_connections": "off", "max_connections": "1100"}
    with Cluster(tls=False, settings=settings) as cluster:
        return measure(cluster.dsn_kwargs("postgres"), args,
                       "a throwaway cluster (fsync off), over TCP on 127.0.0.1")


if __name__ == "__main__":
    main()
