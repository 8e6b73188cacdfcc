"""The scheduler: starts scheduled broadcasts, closes finished ones, requeues expired
leases and lets the sandbox's phones report their statuses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from rundfunk.db.session import Database
from rundfunk.services import broadcasts, dispatch, sandbox

log = logging.getLogger(__name__)


async def run_scheduler(
    db: Database, stop: asyncio.Event, *, poll_seconds: float, wake: Callable[[], None]
) -> None:
    while not stop.is_set():
        try:
            if await broadcasts.start_due(db):
                wake()
            if await dispatch.requeue_expired(db):
                wake()
            await sandbox.report_statuses(db)
            await broadcasts.finish_completed(db)
        except Exception:
            log.exception("scheduler pass failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
