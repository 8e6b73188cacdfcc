"""Live updates for console pages with Server-Sent Events.

A stream checks a cheap fingerprint of what a page shows (the newest message id, a
broadcast's counts) once per ``interval`` and sends ``event: change`` when it moved;
the page's script then reloads the fragment that shows it. Looking at the database,
rather than at events inside one process, means a browser sees changes made by any
process on any machine. Streams end after ``LIFETIME_S``; browsers reconnect on their
own, so a stream never outlives a deploy for long.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

LIFETIME_S = 300.0
HEARTBEAT_S = 15.0
INTERVAL_S = 1.0

Fingerprint = Callable[[], Awaitable[Any]]


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


async def _changes(
    request: Request, fingerprint: Fingerprint, interval: float, lifetime: float
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    started = last_sent = loop.time()
    previous: Any = object()
    # Tell the browser how soon to come back after the stream ends.
    yield "retry: 1000\n\n"
    while loop.time() - started < lifetime:
        if await request.is_disconnected():
            return
        current = await fingerprint()
        if current != previous:
            previous = current
            last_sent = loop.time()
            yield _event("change", current)
        elif loop.time() - last_sent > HEARTBEAT_S:
            last_sent = loop.time()
            yield ": still here\n\n"
        await asyncio.sleep(interval)


def stream(
    request: Request,
    fingerprint: Fingerprint,
    *,
    interval: float = INTERVAL_S,
    lifetime: float = LIFETIME_S,
) -> StreamingResponse:
    """An event stream that says ``change`` each time ``fingerprint()`` returns something new."""
    return StreamingResponse(
        _changes(request, fingerprint, interval, lifetime),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
