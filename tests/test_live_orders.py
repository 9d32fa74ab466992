"""The live orders example (examples/live_orders), end to end in a real browser.

The app runs as its README says, on a database of its own; Playwright drives Debian's
``chromium`` (never a browser of Playwright's own).  Pages show rows in order, from one
PostgreSQL connection for every tab; when that connection is lost, each page shows the gap,
reloads the rows (including one written while the app could not reconnect) and goes on; a
tab that falls behind its bound says so and reloads too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest

import pgwire_pubsub
from pgwire_pubsub.testing.pgcluster import LineReader, Server, wait_for
from pgwire_pubsub.testing.postgres import Database

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright; the browser is Debian's "
                "chromium: apt-get install chromium)", allow_module_level=True)

APP = Path(__file__).resolve().parent.parent / "examples" / "live_orders" / "app.py"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
GUARD = 30.0  # seconds: a failure guard, never a performance target
GAP_LINE = re.compile(r"^connection lost for \d+\.\d+ s; reloading state$")
DROPPED_LINE = re.compile(r"^this tab fell behind: \d+ changes dropped; reloading state$")


def chromium() -> Optional[str]:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if os.access(found, os.X_OK) else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    expect.set_options(timeout=GUARD * 1000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """This test's tabs, closed after it."""
    opened = browser.new_context()
    yield opened
    opened.close()


@pytest.fixture
def app(postgres_server: Database) -> Iterator[str]:
    """The example app on a free port of 127.0.0.1, on a database of its own; its URL."""
    for module in ("starlette", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[examples]'")
    proc = subprocess.Popen(
        [sys.executable, str(APP), "--dsn", postgres_server.dsn, "--port", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        encoding="utf-8")
    assert proc.stdout is not None
    output = LineReader(proc.stdout)
    try:
        def started() -> str:
            assert proc.poll() is None, f"the app exited: {output.lines!r}"
            found = (re.search(r"http://\S+/", line) for line in output.lines)
            return next((m.group(0) for m in found if m), "")

        yield wait_for(started, GUARD, message="the app's URL")
    finally:
        proc.terminate()
        proc.wait(GUARD)


def open_page(context: BrowserContext, url: str) -> Page:
    """A tab on ``url`` once it holds the current rows (so it is subscribed)."""
    page = context.new_page()
    page.goto(url)
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#log li.state").first).to_have_text(re.compile(r"^state loaded"))
    return page


def items(page: Page) -> Any:
    return page.locator("#orders tr td:nth-child(2)")


def log(page: Page) -> Any:
    return page.locator("#log li")


def app_backends(admin: Any, database: Database) -> List[str]:
    rows = admin.conn.execute(
        "SELECT pid FROM pg_catalog.pg_stat_activity WHERE datname = $1 "
        "AND application_name = 'live_orders'", [database.dbname])
    return [str(row[0]) for row in rows]


def test_every_tab_shows_the_rows_in_order_and_the_gap_of_a_lost_connection(
    context: BrowserContext, app: str, postgres_server: Database, postgres_cluster: Server
) -> None:
    if not postgres_server.owned:
        pytest.skip("needs a database of its own, to keep the app out of it for a while")
    admin = pgwire_pubsub.connect(**postgres_cluster.dsn_kwargs())  # in another database
    writer = pgwire_pubsub.connect(postgres_server.dsn)
    with contextlib.closing(admin), contextlib.closing(writer):
        pages = [open_page(context, app), open_page(context, app)]
        first_lines = ["state loaded: 0 orders", "#1 insert: tea, quantity 2",
                       "#2 insert: coffee, quantity 2", "#3 insert: cake, quantity 2"]
        for item in ("tea", "coffee", "cake"):  # one transaction each
            writer.conn.execute("INSERT INTO orders (item, quantity) VALUES ($1, 2)", [item])
        for page in pages:
            expect(items(page)).to_have_text(["tea", "coffee", "cake"])
            expect(log(page)).to_have_text(first_lines)
        (listener,) = app_backends(admin, postgres_server)  # one connection for every tab

        # The listener's backend goes, and the app cannot reconnect until a row is written:
        # that row can reach the pages only by the reload that follows the gap.
        database = '"' + postgres_server.dbname.replace('"', '""') + '"'
        admin.conn.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        try:
            rows = admin.conn.execute(f"SELECT pg_terminate_backend({listener}, 30000)")
            assert rows == [("t",)]
            writer.conn.execute("INSERT INTO orders (item) VALUES ('written in the gap')")
        finally:
            admin.conn.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        for page in pages:
            expect(items(page)).to_have_text(["tea", "coffee", "cake", "written in the gap"])
        writer.conn.execute("INSERT INTO orders (item) VALUES ('after')")
        for page in pages:
            expect(items(page)).to_have_text(
                ["tea", "coffee", "cake", "written in the gap", "after"])
            expect(log(page)).to_have_text([*first_lines, GAP_LINE, "state loaded: 4 orders",
                                            "#5 insert: after, quantity 1"])
            expect(page.locator("#log li.gap")).to_have_css("font-weight", "600")
        assert app_backends(admin, postgres_server) != [listener]


def test_a_tab_that_falls_behind_its_bound_says_so_and_reloads(
    context: BrowserContext, app: str, postgres_server: Database
) -> None:
    keeping_up = open_page(context, app)
    behind = open_page(context, app + "?max_pending=5")
    postgres_server.psql("INSERT INTO orders (item) "
                         "SELECT 'bulk ' || i FROM generate_series(1, 300) i")
    for page in (keeping_up, behind):
        expect(items(page).last).to_have_text("bulk 300")
        expect(items(page)).to_have_count(100)  # the newest 100
    expect(log(keeping_up).last).to_have_text("#300 insert: bulk 300, quantity 1")
    expect(keeping_up.locator("#log li.dropped")).to_have_count(0)
    expect(behind.locator("#log li.dropped").first).to_have_text(DROPPED_LINE)
    # Nothing is shown twice, nor out of order, after the reload.
    expect(items(behind)).to_have_text([f"bulk {i}" for i in range(201, 301)])
