"""Live updates for console pages with Server-Sent Events.

A stream checks a cheap fingerprint of what a page shows (the newest message id, a
broadcast's counts) and sends ``event: change`` when it moved; the page's script then
reloads the fragment that shows it. It checks when its workspace signals a committed
change (``db.changes``: in process, or from every node through Redis pub/sub) and, as
a fallback for signals that cannot reach it, every ``INTERVAL_S`` — or only every
``SIGNALLED_FALLBACK_S`` where every writer's signal does reach it (SQLite's single
process, or Redis). Checks are at least ``MIN_GAP_S`` apart, so a broadcast sending a
thousand messages a second costs each open page ten small queries a second at most.
Comparing database state, not events, keeps a page right even when a signal is lost.
Streams end after ``LIFETIME_S``; browsers reconnect on their own, so a stream never
outlives a deploy for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from rundfunk.db.session import Database

LIFETIME_S = 300.0
HEARTBEAT_S = 15.0
INTERVAL_S = 1.0
SIGNALLED_FALLBACK_S = 5.0
MIN_GAP_S = 0.1

Fingerprint = Callable[[], Awaitable[Any]]


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


async def _changes(
    request: Request,
    fingerprint: Fingerprint,
    db: Database,
    workspace_id: int,
    lifetime: float,
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    started = last_sent = loop.time()
    previous: Any = object()
    fallback = SIGNALLED_FALLBACK_S if db.changes.shared or db.is_sqlite else INTERVAL_S
    # Tell the browser how soon to come back after the stream ends.
    yield "retry: 1000\n\n"
    with db.changes.watch(workspace_id) as signalled:
        while loop.time() - started < lifetime:
            if await request.is_disconnected():
                return
            checked = loop.time()
            current = await fingerprint()
            if current != previous:
                previous = current
                last_sent = loop.time()
                yield _event("change", current)
            elif loop.time() - last_sent > HEARTBEAT_S:
                last_sent = loop.time()
                yield ": still here\n\n"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signalled.wait(), timeout=fallback)
            signalled.clear()
            await asyncio.sleep(max(0.0, checked + MIN_GAP_S - loop.time()))


def stream(
    request: Request,
    fingerprint: Fingerprint,
    *,
    db: Database,
    workspace_id: int,
    lifetime: float = LIFETIME_S,
) -> StreamingResponse:
    """An event stream that says ``change`` each time ``fingerprint()`` returns something
    new, checked when ``workspace_id`` signals a change (and now and then regardless)."""
    return StreamingResponse(
        _changes(request, fingerprint, db, workspace_id, lifetime),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
