"""Where one notify's time goes: the system calls (send, select/poll, recv, pthread_sigmask),
and the interpreter before and after them, for pgwire_pubsub and for psycopg2 (libpq).

    python benchmarks/syscall_timing.py [--count 2000] [--dsn DSN] [--out FILE]

A ping-pong, as the benchmark's: a client notifies 'ping' and waits for the 'pong' that a
listener in another process sends back, so a listener is waiting each time.  Only the notify
call is timed: its wall time (``time.monotonic_ns``), and the calls its own thread makes
inside it, through an ``LD_PRELOAD`` shim (benchmarks/syscall_shim.c, built here with gcc).
Each client runs twice, sending ``NOTIFY ping, '...'`` (what pgwire_pubsub's ``notify``
sends) and ``SELECT pg_notify('ping', '...')`` (the benchmark's statement).  Every figure is
a mean per notify over COUNT of them, after COUNT / 10 untimed.  psycopg2 is measured when
it imports (the ``bench`` extra).

Without --dsn a throwaway cluster is started with the test fixtures' helper.  Linux only.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from typing import Any, Callable, Dict, List, Optional, Tuple

import pgwire_pubsub

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from throwaway import server_dsn  # noqa: E402

KINDS = ("send", "recv", "wait", "sigmask")  # in the shim's order
STALL = 30.0
STATEMENTS = {
    "NOTIFY": "NOTIFY ping, '{}'",
    "SELECT pg_notify": "SELECT pg_notify('ping', '{}')",
}


def build_shim(into: str) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        sys.exit("needs gcc (or cc) to build the LD_PRELOAD shim")
    target = os.path.join(into, "syscall_shim.so")
    subprocess.run([gcc, "-O2", "-shared", "-fPIC", "-o", target,
                    os.path.join(HERE, "syscall_shim.c"), "-ldl"], check=True)
    return target


# -- the client under the shim -------------------------------------------------------------


def pgwire_client(dsn: str, sql: str) -> Tuple[Callable[[str], None], Callable[[], None]]:
    ps = pgwire_pubsub.connect(dsn)
    ps.listen("pong")

    def send(payload: str) -> None:
        if sql.startswith("NOTIFY"):
            ps.notify("ping", payload)
        else:
            ps.conn.execute(sql.format(payload))

    def wait() -> None:
        if ps.get_event(select_timeout=STALL) is None:
            raise SystemExit("no pong")

    return send, wait


def psycopg2_client(dsn: str, sql: str) -> Tuple[Callable[[str], None], Callable[[], None]]:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cursor = conn.cursor()
    cursor.execute("LISTEN pong")

    def send(payload: str) -> None:
        cursor.execute(sql.format(payload))

    def wait() -> None:
        while not conn.notifies:
            if not select.select([conn], [], [], STALL)[0]:
                raise SystemExit("no pong")
            conn.poll()
        conn.notifies.pop(0)

    return send, wait


CLIENTS = {"pgwire_pubsub": pgwire_client, "psycopg2": psycopg2_client}


def shim_totals(shim: Any) -> List[int]:
    out = (ctypes.c_longlong * (2 * len(KINDS) + 2))()
    shim.shim_read(out)
    return list(out)


def child(lib: str, statement: str, dsn: str, count: int, shim_path: str) -> None:
    """Runs under LD_PRELOAD: times COUNT notifies; prints the means as JSON."""
    shim = ctypes.CDLL(shim_path)  # the preloaded library itself: the same counters
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    ponger = subprocess.Popen([sys.executable, __file__, "--ponger", dsn], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert ponger.stdout is not None and ponger.stdout.readline() == "ready\n"
        send, wait = CLIENTS[lib](dsn, STATEMENTS[statement])
        warmup = max(1, count // 10)
        wall = before = after = 0
        start_totals: List[int] = []
        for i in range(warmup + count):
            if i == warmup:
                start_totals = shim_totals(shim)
                wall = before = after = 0
            payload = str(i)
            shim.shim_switch(1)
            t0 = time.monotonic_ns()
            send(payload)
            t1 = time.monotonic_ns()
            shim.shim_switch(0)
            totals = shim_totals(shim)
            first, last = totals[-2], totals[-1]
            wall += t1 - t0
            if first:
                before += first - t0
                after += t1 - last
            wait()
        end = shim_totals(shim)
    finally:
        ponger.kill()
        ponger.wait()
    spent = [e - s for e, s in zip(end, start_totals)]
    n = len(KINDS)
    result: Dict[str, float] = {"wall": wall / count / 1e3, "before": before / count / 1e3,
                                "after": after / count / 1e3}
    for i, kind in enumerate(KINDS):
        result[kind] = spent[i] / count / 1e3
        result[kind + "_calls"] = spent[n + i] / count
    result["interpreter"] = result["wall"] - sum(result[k] for k in KINDS)
    print(json.dumps(result))


def ponger(dsn: str) -> None:
    """Answers every 'ping' with a 'pong' (no shim here)."""
    ps = pgwire_pubsub.connect(dsn)
    ps.listen("ping")
    print("ready", flush=True)
    for event in ps.events(select_timeout=None):
        if isinstance(event, pgwire_pubsub.Notify):
            ps.notify("pong", event.payload)


# -- the report ------------------------------------------------------------------------


def measure(dsn: str, count: int, shim_path: str) -> List[Tuple[str, str, Dict[str, float]]]:
    rows = []
    for lib in CLIENTS:
        if lib == "psycopg2":
            try:
                import psycopg2  # noqa: F401
            except ImportError:
                print("psycopg2 is not installed: only pgwire_pubsub is measured")
                continue
        for statement in STATEMENTS:
            env = dict(os.environ, LD_PRELOAD=shim_path)
            out = subprocess.run([sys.executable, __file__, "--child", lib, statement, dsn,
                                  str(count), shim_path], env=env, capture_output=True,
                                 text=True, check=True).stdout
            rows.append((lib, statement, json.loads(out.splitlines()[-1])))
            print(f"{lib}, {statement}: {rows[-1][2]['wall']:.1f} \u00b5s", flush=True)
    return rows


def table(rows: List[Tuple[str, str, Dict[str, float]]], count: int) -> str:
    lines = [
        f"`python benchmarks/syscall_timing.py --count {count}`, {date.today()}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}; \u00b5s per notify call (mean)",
        "",
        "| client | statement | whole call | send | select / poll | recv | pthread_sigmask "
        "| interpreter: before the first call | after the last | in between |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lib, statement, r in rows:
        between = r["interpreter"] - r["before"] - r["after"]
        lines.append(
            f"| {lib} | `{statement}` | {r['wall']:.1f} | {r['send']:.1f} | {r['wait']:.1f} "
            f"| {r['recv']:.1f} | {r['sigmask']:.1f} ({r['sigmask_calls']:.0f} calls) "
            f"| {r['before']:.1f} | {r['after']:.1f} | {between:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        child(args[1], args[2], args[3], int(args[4]), args[5])
        return
    if args[:1] == ["--ponger"]:
        ponger(args[1])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="notifies timed per run")
    parser.add_argument("--dsn")
    parser.add_argument("--out", help="also write the table to this file")
    options = parser.parse_args(args)
    with tempfile.TemporaryDirectory(prefix="syscall-shim-") as tmp:
        shim_path = build_shim(tmp)
        with server_dsn(options.dsn) as dsn:
            rows = measure(dsn, options.count, shim_path)
    text = table(rows, options.count)
    print(text)
    if options.out:
        with open(options.out, "w") as out:
            out.write(text)


if __name__ == "__main__":
    main()
