"""Live orders: every browser tab shows the ``orders`` table as it changes, from ONE
PostgreSQL connection for all tabs.

    python examples/live_orders/app.py --dsn 'host=127.0.0.1 port=5432 user=postgres dbname=test'

Each tab opens a server-sent-events stream (``/events``), which is one subscription on
the app's one ``AsyncPubSub``: the trigger from ``pgwire_pubsub.triggers`` sends each
change of a row as a JSON notification on the channel ``orders``, and every subscription
gets it.  PostgreSQL delivers a notification at most once: whatever was sent while the
listener was reconnecting (``Reconnected``) or while a tab fell behind its bound
(``Dropped``) is lost, so the tab is told, and the current rows are read again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
from pathlib import Path
from typing import Any, AsyncIterator, List, Optional

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import pgwire_pubsub.aio
from pgwire_pubsub import Dropped, Notify, Reconnected, ReconnectPolicy, triggers

PAGE = Path(__file__).with_name("page.html")
CHANNEL = TABLE = "orders"
SHOWN = 100  # the newest orders a page shows
KEEPALIVE = 15.0  # seconds: a comment on an idle stream, which also finds closed tabs

CREATE_TABLE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    item text NOT NULL,
    quantity integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now()
)"""
HAS_TRIGGER = (f"SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid = '{TABLE}'::regclass "
               f"AND tgname = '{triggers.TRIGGER_NAME}'")
# The rows as the trigger sends them (one JSON object each), oldest first.
CURRENT_ROWS = (f"SELECT coalesce(jsonb_agg(o ORDER BY o.id), '[]')::text FROM "
                f"(SELECT * FROM {TABLE} ORDER BY id DESC LIMIT {SHOWN}) o")


class Rows:
    """The current rows, read once for all the tabs that need them at the same moment (after
    a reconnection, every tab does: one query serves them all)."""

    def __init__(self, pubsub: pgwire_pubsub.aio.AsyncPubSub) -> None:
        self.pubsub = pubsub
        self.reading: Optional[asyncio.Future[str]] = None
        self.started = 0.0

    async def read(self, since: float) -> str:
        """The rows as a JSON array, read after the loop's time ``since``."""
        reading = self.reading
        failed = reading is not None and reading.done() and (
            reading.cancelled() or reading.exception() is not None)
        if reading is None or self.started <= since or failed:
            self.started = asyncio.get_running_loop().time()
            self.reading = reading = asyncio.ensure_future(self._query())
        return await asyncio.shield(reading)  # a tab that goes does not stop the others

    async def _query(self) -> str:
        rows = await self.pubsub.conn.execute(CURRENT_ROWS)
        return str(rows[0][0])


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def tab_stream(app: Starlette, max_pending: int) -> AsyncIterator[str]:
    """One tab's stream: the current rows, then every change, with the gaps marked."""
    pubsub: pgwire_pubsub.aio.AsyncPubSub = app.state.pubsub
    loop = asyncio.get_running_loop()
    yield "retry: 1000\n\n"  # the browser's pause before it reconnects to the app
    async with pubsub.subscribe(CHANNEL, max_pending=max_pending) as subscription:
        # Listening first, then reading: a change from then on is in the rows, or follows.
        yield await state(app, loop.time())
        while not subscription.closed:
            events = await subscription.get_events(timeout=KEEPALIVE)
            if not events:
                yield ": keepalive\n\n"
                continue
            reload = False
            for event in events:
                if type(event) is Notify:
                    yield f"event: change\ndata: {event.payload}\n\n"  # JSON from the trigger
                elif isinstance(event, Reconnected):
                    yield sse("gap", {"down_seconds": round(event.down_seconds, 3)})
                    reload = True
                elif isinstance(event, Dropped):
                    yield sse("dropped", {"count": event.dropped})
                    reload = True
            if reload:
                yield await state(app, loop.time())


async def state(app: Starlette, since: float) -> str:
    try:
        rows = await app.state.rows.read(since)
    except pgwire_pubsub.aio.Error as exc:  # e.g. the connection was lost meanwhile
        return sse("notice", f"could not read the current orders ({exc}); they are read "
                             "again when the connection is back")
    return f"event: state\ndata: {rows}\n\n"


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


async def events(request: Request) -> Response:
    try:
        max_pending = int(request.query_params.get("max_pending", request.app.state.max_pending))
    except ValueError:
        return JSONResponse({"error": "max_pending must be a whole number"}, status_code=400)
    if not 1 <= max_pending <= 100_000:
        return JSONResponse({"error": "max_pending must be from 1 to 100000"}, status_code=400)
    return StreamingResponse(tab_stream(request.app, max_pending),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def add_order(request: Request) -> Response:
    """Insert an order (the page's form); the trigger announces it to every tab."""
    try:
        body = await request.json()
        item, quantity = str(body["item"]).strip(), int(body.get("quantity", 1))
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'send {"item": "tea", "quantity": 2}'}, status_code=400)
    if not item or not 1 <= quantity <= 1_000_000:
        return JSONResponse({"error": "an order needs an item and a quantity from 1 to "
                                      "1000000"}, status_code=400)
    rows = await request.app.state.pubsub.conn.execute(
        f"INSERT INTO {TABLE} (item, quantity) VALUES ($1, $2::integer) RETURNING id",
        [item, str(quantity)])
    return JSONResponse({"id": int(rows[0][0])}, status_code=201)


async def prepare(pubsub: pgwire_pubsub.aio.AsyncPubSub) -> None:
    """The table and its trigger, if missing."""
    await pubsub.conn.execute(CREATE_TABLE)
    rows = await pubsub.conn.execute(HAS_TRIGGER)
    if rows[0][0] == "0":
        await triggers.create_tables_notify_func(pubsub)
        await triggers.create_table_notify_trigger(pubsub, TABLE)


def create_app(dsn: Optional[str], max_pending: int) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One connection for every tab; a lost one is re-established (and marked).
        policy = ReconnectPolicy(initial_delay=0.05, max_delay=2.0)
        pubsub = await pgwire_pubsub.aio.connect(dsn, reconnect=policy,
                                                 fallback_application_name="live_orders")
        async with pubsub:
            await prepare(pubsub)
            app.state.pubsub = pubsub
            app.state.rows = Rows(pubsub)
            app.state.max_pending = max_pending
            yield

    return Starlette(routes=[
        Route("/", page),
        Route("/events", events),
        Route("/orders", add_order, methods=["POST"]),
    ], lifespan=lifespan)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Live orders: the orders table, live, in "
                                     "every browser tab, from one PostgreSQL connection.")
    parser.add_argument("--dsn", help="PostgreSQL connection string (default: the PG* "
                        "environment variables, as for psql)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    parser.add_argument("--max-pending", type=int, default=1000,
                        help="changes a tab may fall behind before it loses some (and "
                        "reloads); a page may ask for less with /?max_pending=N")
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sys.exit(f"cannot serve on {args.host}:{args.port}: {exc.strerror}; "
                 "choose another with --port")
    host, port = sock.getsockname()[:2]
    print(f"live orders on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    app = create_app(args.dsn, args.max_pending)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises Ctrl-C again once stopped
        Server(app).run(sockets=[sock])


class Server(uvicorn.Server):
    """uvicorn waits for every response to end before it stops, and a stream never ends by
    itself: closing the client first closes every subscription, which ends the streams."""

    def __init__(self, app: Starlette) -> None:
        super().__init__(uvicorn.Config(app, log_level="warning"))
        self.app = app

    async def shutdown(self, sockets: Optional[List[socket.socket]] = None) -> None:
        pubsub = getattr(self.app.state, "pubsub", None)
        if pubsub is not None:
            await pubsub.close()
        await super().shutdown(sockets)


if __name__ == "__main__":
    main()
