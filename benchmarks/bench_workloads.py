"""The benchmark suite's worker: one workload of one client library.

Each run measures one library on one workload in a process of its own, so that
measurements never mix; ``run.py`` starts these processes:

    python benchmarks/bench_workloads.py --lib psycopg2 --workload notify \\
        --conninfo '{"main": {...}, "scram": {...}}' --opts '{"count": 5000}'

prints one line ``RESULT {json}``.  ``--version`` prints the library's version
(and fails when it does not import), which is how ``run.py`` finds the peers.

The workloads are written once, in ``bench_library.Library`` (and as coroutines in
``bench_async_library.AsyncLibrary``); the libraries are in ``bench_libpq_peers.py``
(psycopg2, pgpubsub, psycopg 3), ``bench_wire_peers.py`` (pgwire_pubsub, pg8000) and
``bench_async_peers.py`` (pgwire_pubsub.aio, asyncpg, psycopg 3's AsyncConnection).
Every library is used the natural, fastest documented way; where that needs a choice,
its class says which and why.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Dict, List, Optional, Type

from bench_async_peers import Asyncpg, PgwireAio, PsycopgAsync
from bench_libpq_peers import Pgpubsub, Psycopg2, Psycopg3
from bench_library import PAYLOAD_SIZE, RECEIVE_WORKLOADS, ROOT, ConnInfo, Library, Result
from bench_wire_peers import Pg8000, Pgwire

LIBRARIES: Dict[str, Type[Library]] = {
    cls.name: cls for cls in (Pgwire, PgwireAio, Pgpubsub, Psycopg2, Psycopg3, PsycopgAsync,
                              Asyncpg, Pg8000)
}


# -- import time ----------------------------------------------------------------------------

IMPORT_PROBE = (
    "import time; w, c = time.perf_counter(), time.process_time(); import {module}; "
    "print(time.perf_counter() - w, time.process_time() - c)"
)


def import_time(module: str, repeats: int) -> Result:
    """Wall and CPU time of ``import module`` in fresh interpreters, measured inside the
    child around the import alone.  Every library gets the same bytecode cache: a private
    one (``PYTHONPYCACHEPREFIX``) that a first, untimed import fills, whether or not the
    environment says PYTHONDONTWRITEBYTECODE and whatever the installer left."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        for i in range(repeats + 1):
            out = subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE.format(module=module)],
                env=env, capture_output=True, text=True, check=True, timeout=120,
            ).stdout.split()
            if i:
                walls.append(float(out[0]) * 1e3)
                cpus.append(float(out[1]) * 1e3)
    return {
        "ops": repeats,
        "import_ms": statistics.median(walls),
        "cpu_ms": statistics.median(cpus),
        "module": module,
    }


# -- entry point -----------------------------------------------------------------------------


def run(lib: str, workload: str, conninfo: ConnInfo, opts: Dict[str, Any]) -> Result:
    cls = LIBRARIES[lib]
    if workload == "import":
        return import_time(cls.imported_module(), int(opts.get("repeats", 5)))
    bench: Library = cls(conninfo)
    if workload == "connect":
        return bench.connect(int(opts["count"]))
    if workload == "notify":
        return bench.notify(int(opts["count"]))
    if workload == "notify_many":
        result = bench.notify_many(int(opts["batches"]), int(opts["size"]))
        result["how"] = cls.notify_many_how
        return result
    way = str(opts.get("way", cls.ways[0]))
    if way not in cls.ways:
        raise ValueError(f"{lib} receives in these ways: {', '.join(cls.ways)}; not {way!r}")
    if workload in RECEIVE_WORKLOADS:
        count, warmup = int(opts["count"]), int(opts.get("warmup", 0)) or 1000
        if workload == "receive_burst":
            return bench.receive_burst(count, warmup, way)
        return bench.backlog(workload, count, warmup, way)
    if workload == "pingpong":
        return bench.pingpong(int(opts["count"]))
    if workload == "memory":
        method = opts.get("method", "traced")
        return bench.memory(int(opts["count"]), method, int(opts.get("payload", PAYLOAD_SIZE)))
    raise ValueError(f"unknown workload {workload!r}")


def supports(lib: str, workload: str) -> bool:
    """False where the library has no such operation (reported as N/A)."""
    return not (workload == "notify_many" and LIBRARIES[lib].notify_many_how is None)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="One benchmark workload for one library.")
    parser.add_argument("--lib", required=True, choices=sorted(LIBRARIES))
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--workload")
    parser.add_argument("--conninfo", default="{}")
    parser.add_argument("--opts", default="{}")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="run under cProfile (CPU time) and print the N functions with "
                        "the most time of their own to stderr")
    args = parser.parse_args(argv)
    if args.version:
        try:
            print(LIBRARIES[args.lib].version())
        except ImportError as exc:
            print(f"not installed: {exc}", file=sys.stderr)
            return 3
        return 0
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU time: waiting is not hot
        profiler.enable()
    try:
        result = run(args.lib, args.workload, json.loads(args.conninfo), json.loads(args.opts))
    except Exception:
        traceback.print_exc()
        return 1
    if profiler is not None:
        import pstats

        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.profile)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
