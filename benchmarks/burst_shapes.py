"""What a received burst costs by its shape: the benchmark's receive burst with payloads of
one length, of many lengths, and alternating between two channels.

    python benchmarks/burst_shapes.py [--count 200000] [--repeats 3] [--libs pgwire_pubsub,psycopg2]
                                      [--recv-size BYTES] [--dsn DSN] [--out FILE]

As the suite's receive_burst workload (benchmarks/bench_library.py): another connection
queues COUNT notifications in a transaction, the clock starts, a thread commits, and the
clock stops when the listener holds the last one; CPU time of the listener's process per
notification, the committing thread's own left out.  Each library and shape runs in a
fresh process per repeat (after a burst of COUNT / 10 untimed), the repeats interleaved; the
table gives the median and the min-max.  ``--recv-size`` changes how much pgwire_pubsub
reads at a time (32 KiB by default).

Without --dsn a throwaway cluster is started with the test fixtures' helper.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import date
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from bench_library import Background, ConnInfo, Meter, Result
from bench_workloads import LIBRARIES
from throwaway import server_dsn

SHAPES: Dict[str, str] = {
    "one sender, 64-byte payloads (the benchmark's)":
        "pg_notify('bench', lpad(i::text, 64, 'x'))",
    "one sender, payloads of 6 to 100 bytes":
        "pg_notify('bench', lpad(i::text, 6 + i * 37 % 95, 'x'))",
    "one sender, alternating between two channels":
        "pg_notify(CASE WHEN i % 2 = 0 THEN 'bench' ELSE 'bench2' END, lpad(i::text, 64, 'x'))",
}


def burst(lib: str, conninfo: ConnInfo, shape: str, count: int) -> Result:
    bench = LIBRARIES[lib](conninfo)
    listener, sender = bench.open(), bench.open()
    bench.listen(listener, "bench")
    bench.listen(listener, "bench2")
    sql = f"SELECT count({SHAPES[shape]}) FROM generate_series(1, {{n}}) i"
    result: Result = {}
    for n in (max(1, count // 10), count):  # the first one warms up
        bench.execute(sender, "BEGIN")
        bench.execute(sender, sql.format(n=n))
        commit = Background(lambda: bench.execute(sender, "COMMIT"))
        meter = Meter()
        commit.start()
        bench.receive(listener, n)
        meter.stop()
        commit.join()
        result = meter.result(n, commit.cpu)
    bench.close(listener)
    bench.close(sender)
    return result


def one_run(lib: str, shape: str, count: int, dsn: str, recv_size: Optional[int]) -> Result:
    """One burst in a fresh process."""
    command = [sys.executable, __file__, "--one", lib, shape, str(count), dsn,
               str(recv_size or 0)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result: Result = json.loads(out.splitlines()[-1])
    return result


def child(lib: str, shape: str, count: int, dsn: str, recv_size: int) -> None:
    if recv_size:
        from pgwire_pubsub._blocking import socketio

        socketio.RECV_SIZE, socketio._SIZES = recv_size, (recv_size,)
    from pgwire_pubsub.testing.pgcluster import parse_dsn

    print(json.dumps(burst(lib, {"main": dict(parse_dsn(dsn))}, shape, count)))


def measure(dsn: str, libs: List[str], count: int, repeats: int,
            recv_size: Optional[int]) -> Dict[str, Dict[str, List[float]]]:
    cpu: Dict[str, Dict[str, List[float]]] = {s: {lib: [] for lib in libs} for s in SHAPES}
    for _ in range(repeats):
        for shape in SHAPES:
            for lib in libs:
                cpu[shape][lib].append(one_run(lib, shape, count, dsn, recv_size)["cpu_us"])
                print(f"{shape}, {lib}: {cpu[shape][lib][-1]:.3f} \u00b5s", flush=True)
    return cpu


def cell(values: List[float]) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.2f} \u00b5s"
    return f"{median:.2f} \u00b5s ({min(values):.2f}\u2013{max(values):.2f})"


def table(cpu: Dict[str, Dict[str, List[float]]], libs: List[str], command: str) -> str:
    lines = [
        f"`{command}`, {date.today()}, {platform.python_implementation()} "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}; CPU per "
        "notification, median (min\u2013max)",
        "",
        "| burst | " + " | ".join(libs) + " |",
        "|---|" + "---|" * len(libs),
    ]
    for shape, by_lib in cpu.items():
        lines.append(f"| {shape} | " + " | ".join(cell(by_lib[lib]) for lib in libs) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--one"]:
        child(args[1], args[2], int(args[3]), args[4], int(args[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--libs", default="pgwire_pubsub,psycopg2")
    parser.add_argument("--recv-size", type=int)
    parser.add_argument("--dsn")
    parser.add_argument("--out", help="also write the table to this file")
    options = parser.parse_args(args)
    libs = options.libs.split(",")
    for lib in libs:
        LIBRARIES[lib].version()  # fails here when it does not import
    command = "python benchmarks/burst_shapes.py " + " ".join(args)
    with server_dsn(options.dsn) as dsn:
        cpu = measure(dsn, libs, options.count, options.repeats, options.recv_size)
    text = table(cpu, libs, command.strip())
    print(text)
    if options.out:
        with open(options.out, "w") as out:
            out.write(text)


if __name__ == "__main__":
    main()
