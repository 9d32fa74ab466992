"""The benchmark suite: pgwire_pubsub (blocking and asyncio) beside pgpubsub 0.0.5,
psycopg2, psycopg 3 (blocking and asyncio), asyncpg and pg8000, on every workload, in one
command.

    python benchmarks/run.py                 # a throwaway cluster, 3 rounds, every peer
    python benchmarks/run.py --quick         # tiny counts, 1 round: does it all work?
    python benchmarks/run.py --pypy          # also the pure-Python peers under PyPy
    python benchmarks/run.py --dsn 'host=... user=...' [--connect-dsn '...']

Workloads: app_traffic, trigger_burst and receive_burst (the receive workloads, each in
every way a library receives: pgwire_pubsub's ``get_events()`` and ``events()``, and
their asyncio forms), connect (with SCRAM), notify, notify_many, pingpong, memory,
import.  Each library's run of a workload is a fresh process (``bench_workloads.py``;
the workloads are in ``bench_library.py``, ``bench_async_library.py`` and
``bench_backlog.py``, the libraries in ``bench_libpq_peers.py``, ``bench_wire_peers.py``
and ``bench_async_peers.py``); rounds interleave the libraries, and the report gives the
median with min-max over rounds, and ratios to psycopg2.  Writes ``results/<name>.md``,
``.json`` and ``.png``.
Peers that do not import are skipped (``pip install -e '.[bench]'`` brings them).
``--workloads fanout`` (run only when named) is ``bench_fanout.py``: subscribers and
listeners at scale, on a cluster of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (HERE, ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bench_library  # noqa: E402
import bench_report  # noqa: E402
import bench_workloads  # noqa: E402

WORKER = os.path.join(HERE, "bench_workloads.py")
WORKLOADS = ["app_traffic", "trigger_burst", "receive_burst", "connect", "notify",
             "notify_many", "pingpong", "memory", "import"]
RECEIVE_WORKLOADS = bench_library.RECEIVE_WORKLOADS
LIBS = ["pgwire_pubsub", "pgwire_pubsub.aio", "pgpubsub", "psycopg2", "psycopg",
        "psycopg-async", "asyncpg", "pg8000"]
PYPY_LIBS = ["pgwire_pubsub", "pgwire_pubsub.aio", "pg8000"]  # the pure-Python ones
# Run only when named; bench_fanout.py measures it, on a throwaway cluster of its own that
# allows the 1,000 idle connections it needs (or on --dsn's server).
FANOUT = "fanout"

FULL: Dict[str, Dict[str, int]] = {
    "app_traffic": {"count": 100_000, "warmup": 10_000},
    "trigger_burst": {"count": 100_000, "warmup": 10_000},
    "connect": {"count": 200},
    "notify": {"count": 5000},
    "notify_many": {"batches": 20, "size": 1000},
    "receive_burst": {"count": 200_000, "warmup": 20_000},
    "pingpong": {"count": 2000},
    "memory": {"count": 100_000},
    "import": {"repeats": 10},
}
QUICK: Dict[str, Dict[str, int]] = {
    "app_traffic": {"count": 2000, "warmup": 200},
    "trigger_burst": {"count": 2000, "warmup": 200},
    "connect": {"count": 5},
    "notify": {"count": 50},
    "notify_many": {"batches": 2, "size": 1000},
    "receive_burst": {"count": 2000, "warmup": 200},
    "pingpong": {"count": 50},
    "memory": {"count": 2000},
    "import": {"repeats": 1},
}


@dataclass
class Peer:
    """A library under one interpreter, receiving in one of its ways: its first way runs
    every workload, any other way only the receive workloads."""

    key: str  # e.g. "pg8000", "pg8000@pypy", "pgwire_pubsub:events@pypy"
    lib: str
    python: str
    implementation: str  # CPython or PyPy
    version: str
    how: str = ""  # how the suite uses the library
    way: str = ""  # how it receives ("" when it has one way)
    way_label: str = ""  # that way, as the receive workloads' tables name it
    primary: bool = True  # the library's first way

    @property
    def label(self) -> str:
        suffix = " (PyPy)" if self.implementation == "PyPy" else ""
        return f"{self.lib} {self.version}{suffix}"

    def runs(self, workload: str) -> bool:
        return self.primary or workload in RECEIVE_WORKLOADS


# -- the server -----------------------------------------------------------------------------


def conninfo_from_dsn(dsn: str) -> Dict[str, Any]:
    from pgwire_pubsub.testing.pgcluster import parse_dsn

    params: Dict[str, Any] = parse_dsn(dsn)
    if "port" in params:
        params["port"] = int(params["port"])
    return params


def server_version(main: Dict[str, Any]) -> str:
    import pgwire_pubsub

    with pgwire_pubsub.connect(**{"sslmode": "disable", **main}) as pubsub:
        return str(pubsub.conn.parameters.get("server_version", "?"))


# -- peers and runs -------------------------------------------------------------------------


def interpreter(python: str) -> Tuple[str, str]:
    """(implementation, a version line) of an interpreter."""
    code = (
        "import platform, sys; impl = platform.python_implementation(); print(impl); "
        "v = getattr(sys, 'pypy_version_info', None); "
        "print(f'PyPy {v.major}.{v.minor}.{v.micro} (Python {platform.python_version()})' "
        "if v else f'{impl} {platform.python_version()}')"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True,
                         timeout=60).stdout.splitlines()
    return out[0], out[1].strip()


def find_peers(libs: List[str], python: str, log: bool = True) -> List[Peer]:
    """The libraries that import under ``python``; keyed by name, with ``@pypy`` for those
    that run under another interpreter than this one (``--pypy``)."""
    implementation, _ = interpreter(python)
    peers = []
    for lib in libs:
        proc = subprocess.run([python, WORKER, "--lib", lib, "--version"], capture_output=True,
                              text=True, timeout=120)
        tag = f"{lib} ({implementation})"
        if proc.returncode != 0:
            if log:
                reason = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"skipping {tag}: {reason}", file=sys.stderr)
            continue
        suffix = "" if python == sys.executable else f"@{implementation.lower()}"
        cls = bench_workloads.LIBRARIES[lib]
        how = " ".join((cls.__doc__ or "").split())
        for n, way in enumerate(cls.ways):
            key = lib + (f":{way}" if n else "") + suffix
            peers.append(Peer(key, lib, python, implementation, proc.stdout.strip(), how,
                              way, cls.way_labels.get(way, way), primary=n == 0))
    return peers


def default_pypy() -> Optional[str]:
    venv = os.path.join(ROOT, ".venv-pypy", "bin", "python")
    if os.path.exists(venv):
        return venv
    return shutil.which("pypy3")


def run_worker(peer: Peer, workload: str, conninfo: Dict[str, Any], opts: Dict[str, Any],
               timeout: float, profile: int = 0) -> Dict[str, Any]:
    if peer.way:
        opts = {**opts, "way": peer.way}
    argv = [peer.python, WORKER, "--lib", peer.lib, "--workload", workload,
            "--conninfo", json.dumps(conninfo), "--opts", json.dumps(opts)]
    if profile:
        argv += ["--profile", str(profile)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    if profile:
        sys.stderr.write(proc.stderr)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: Dict[str, Any] = json.loads(line[len("RESULT "):])
            return result
    tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return {"error": tail}


def memory_runs(peer: Peer, count: int) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(field, options) of the memory workload's runs: traced memory and RSS, at 64-byte
    and 1 KiB payloads (PyPy: RSS only, tracemalloc does not trace there)."""
    methods = ["rss"] if peer.implementation == "PyPy" else ["traced", "rss"]
    for method in methods:
        yield f"bytes_{method}", {"count": count, "method": method}
        yield f"bytes_{method}_1k", {"count": max(1, count // 5), "method": method,
                                     "payload": bench_library.BIG_PAYLOAD}


def run_one(peer: Peer, workload: str, conninfo: Dict[str, Any], counts: Dict[str, Any],
            timeout: float) -> Dict[str, Any]:
    if not bench_workloads.supports(peer.lib, workload):
        return {"na": True}
    if workload != "memory":
        return run_worker(peer, workload, conninfo, counts[workload], timeout)
    merged: Dict[str, Any] = {"ops": counts["memory"]["count"]}
    for field, opts in memory_runs(peer, counts["memory"]["count"]):
        result = run_worker(peer, "memory", conninfo, opts, timeout)
        if "error" in result:
            return result
        merged[field] = result["bytes_per_pending"]
    return merged


def describe(result: Dict[str, Any]) -> str:
    if "error" in result:
        return f"FAILED: {result['error']}"
    if result.get("na"):
        return "n/a"
    keys = ("rate", "cpu_us", "median_us", "bytes_traced", "bytes_rss", "import_ms", "cpu_ms")
    return ", ".join(f"{k}={result[k]:,.3g}" for k in keys if k in result)


# -- machine -------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state() -> Optional[str]:
    """The checkout measured: its commit, and whether it had uncommitted changes."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return out.stdout.strip() or None


def load_average() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark pgwire_pubsub against the other PostgreSQL clients.")
    parser.add_argument("--dsn", help="use this server instead of a throwaway cluster")
    parser.add_argument("--connect-dsn", help="the role for the connect workload (with --dsn; "
                        "it should authenticate with scram-sha-256); default: --dsn")
    parser.add_argument("--quick", action="store_true", help="tiny counts, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds, interleaved (default 3; quick 1)")
    parser.add_argument("--libs", default=",".join(LIBS), help="comma-separated peers")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated workloads")
    parser.add_argument("--pypy", nargs="?", const="auto", metavar="PYTHON",
                        help="also run the pure-Python peers under PyPy (default: "
                        ".venv-pypy/bin/python, else pypy3)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="output directory")
    parser.add_argument("--name", help="output file name (default: latest; quick: quick)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--memory-constant", type=float, default=64.0,
                        help="the 'small constant' of the memory target, in bytes")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="run pgwire_pubsub's workloads once under cProfile, print the "
                        "N hottest functions of each, and exit")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.libs = [x for x in args.libs.split(",") if x]
    args.workloads = [x for x in args.workloads.split(",") if x]
    for lib in args.libs:
        if lib not in LIBS:
            parser.error(f"unknown library {lib!r}; choose from {', '.join(LIBS)}")
    for workload in args.workloads:
        if workload not in WORKLOADS and workload != FANOUT:
            parser.error(f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.name is None:
        args.name = "quick" if args.quick else "latest"
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if FANOUT in args.workloads:
        import bench_fanout

        args.workloads.remove(FANOUT)
        options = ["--rounds", str(args.rounds), "--out", args.out] + ["--quick"] * args.quick
        fanout = bench_fanout.main(options + ["--dsn", args.dsn] * bool(args.dsn))
        if not args.workloads:
            return fanout
    if args.dsn:
        main_info = conninfo_from_dsn(args.dsn)
        scram = conninfo_from_dsn(args.connect_dsn) if args.connect_dsn else main_info
        return bench(args, {"main": main_info, "scram": scram}, "given by --dsn")
    from pgwire_pubsub.testing.pgcluster import Cluster

    with Cluster(tls=False, settings={"log_connections": "off"}) as cluster:
        conninfo = {"main": cluster.dsn_kwargs("postgres"),
                    "scram": cluster.dsn_kwargs("scram_user")}
        return bench(args, conninfo, "a throwaway cluster (fsync off), over TCP on 127.0.0.1")


def bench(args: argparse.Namespace, conninfo: Dict[str, Any], server: str) -> Dict[str, Any]:
    counts = QUICK if args.quick else FULL
    if args.profile:
        for workload in args.workloads:
            if workload in ("import", "memory"):
                continue
            for peer in find_peers(["pgwire_pubsub"], sys.executable):
                if peer.runs(workload):
                    print(f"==== {workload} {peer.way_label}", file=sys.stderr)
                    print(describe(run_worker(peer, workload, conninfo, counts[workload],
                                              args.timeout, profile=args.profile)),
                          file=sys.stderr)
        return {}

    peers = find_peers(args.libs, sys.executable)
    pypy = default_pypy() if args.pypy == "auto" else args.pypy
    pypy_version = None
    if args.pypy:
        if pypy is None:
            sys.exit("--pypy: no PyPy found (.venv-pypy/bin/python or pypy3)")
        pypy_version = interpreter(pypy)[1]
        if interpreter(sys.executable)[0] != "PyPy":
            peers += [p for p in find_peers([x for x in args.libs if x in PYPY_LIBS], pypy)
                      if p.implementation == "PyPy"]
    if not peers:
        sys.exit("no library to benchmark")

    meta: Dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["python benchmarks/run.py", *args.argv]),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": interpreter(sys.executable)[1],
        "pypy": pypy_version,
        "postgresql": server_version(conninfo["main"]),
        "checkout": git_state(),
        "server": server,
        "connect_role": conninfo["scram"].get("user"),
        "rounds": args.rounds,
        "quick": args.quick,
        "counts": {w: counts[w] for w in args.workloads},
        "load_before": load_average(),
        "memory_constant": args.memory_constant,
    }
    print(f"peers: {', '.join(p.label for p in peers)}", file=sys.stderr)
    raw: Dict[str, Dict[str, List[Dict[str, Any]]]] = {
        p.key: {w: [] for w in args.workloads} for p in peers}
    started = time.monotonic()
    for round_number in range(args.rounds):
        for workload in args.workloads:
            shift = round_number % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                if not peer.runs(workload):
                    continue
                result = run_one(peer, workload, conninfo, counts, args.timeout)
                raw[peer.key][workload].append(result)
                print(f"[round {round_number + 1}/{args.rounds}] {workload:<13} "
                      f"{peer.label + ' ' + peer.way_label:<46} {describe(result)}",
                      file=sys.stderr)
    meta["load_after"] = load_average()
    meta["duration_s"] = round(time.monotonic() - started, 1)

    report = bench_report.Report(meta, [asdict(p) | {"label": p.label} for p in peers], raw,
                                 args.workloads)
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, args.name)
    data = report.as_json()
    with open(base + ".json", "w") as f:
        json.dump(data, f, indent=1)
    markdown = report.markdown()
    with open(base + ".md", "w") as f:
        f.write(markdown)
    chart = report.chart(base + ".png")
    print(markdown)
    print(f"wrote {base}.md, {base}.json" + (f", {chart}" if chart else
          " (no chart: matplotlib is not installed)"), file=sys.stderr)
    return data


if __name__ == "__main__":
    main()
