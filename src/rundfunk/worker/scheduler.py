"""The scheduler: starts scheduled broadcasts, closes finished ones, requeues expired
leases and lets the sandbox's phones report their statuses.

On PostgreSQL every worker runs this loop, but only the holder of the scheduler lock
(``election.SchedulerLock``) does the work; on SQLite the one worker process is the
scheduler.

After the database could not be reached (a failed pass, or the lock's connection
broke), the scheduler requeues no expired leases for ``REQUEUE_QUIET_S``: live workers
write the outcomes they kept through the outage first (``kept_writes``, within half a
second), so an outage longer than lease + settle time does not send their rows again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from sqlalchemy import select

from rundfunk.core.errors import ChannelError
from rundfunk.db.session import Database
from rundfunk.db.tables import channels
from rundfunk.services import broadcasts, dispatch, sandbox, templates
from rundfunk.services.registry import ChannelRegistry
from rundfunk.worker.election import SchedulerLock

log = logging.getLogger(__name__)

REQUEUE_QUIET_S = 5.0


async def run_scheduler(
    db: Database,
    stop: asyncio.Event,
    *,
    poll_seconds: float,
    wake: Callable[[], None],
    registry: ChannelRegistry | None = None,
    settle_seconds: float = 120.0,
    template_sync_seconds: float = 3600.0,
    lock: SchedulerLock | None = None,
    requeue_quiet: float = REQUEUE_QUIET_S,
) -> None:
    syncer = TemplateSync(db, registry, every=template_sync_seconds) if registry else None
    loop = asyncio.get_running_loop()
    quiet_until = 0.0  # no requeueing before (see the module docstring)
    lock_failures = 0
    try:
        while not stop.is_set():
            held = lock is None or await lock.hold()
            if lock is not None and lock.failures != lock_failures:
                lock_failures = lock.failures
                quiet_until = loop.time() + requeue_quiet
            if held and not await _pass(
                db,
                wake,
                settle_seconds=settle_seconds,
                syncer=syncer,
                requeue=loop.time() >= quiet_until,
            ):
                quiet_until = loop.time() + requeue_quiet
            # else another worker schedules: try for the lock again next pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_seconds)
    finally:
        if lock is not None:
            await lock.close()


async def _pass(
    db: Database,
    wake: Callable[[], None],
    *,
    settle_seconds: float,
    syncer: TemplateSync | None,
    requeue: bool = True,
) -> bool:
    """One pass; False when it failed (logged)."""
    try:
        if await broadcasts.start_due(db):
            wake()
        if requeue and await dispatch.requeue_expired(db, settle_seconds=settle_seconds):
            wake()
        await sandbox.report_statuses(db)
        await broadcasts.finish_completed(db)
        if syncer is not None:
            await syncer.run_due()
    except Exception:
        log.exception("scheduler pass failed; trying again")
        return False
    return True


class TemplateSync:
    """Keeps each active WhatsApp channel's templates fresh (statuses change at Meta).

    Looks for channels at most once a minute, not on every scheduler pass, and syncs
    each one every ``every`` seconds (a new channel within a minute).
    """

    LOOK_SECONDS = 60.0

    def __init__(self, db: Database, registry: ChannelRegistry, *, every: float) -> None:
        self.db = db
        self.registry = registry
        self.every = every
        self._synced_at: dict[int, float] = {}
        self._next_look = 0.0

    async def run_due(self) -> None:
        now = time.monotonic()
        if now < self._next_look:
            return
        self._next_look = now + min(self.every, self.LOOK_SECONDS)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(channels.c.id, channels.c.workspace_id).where(
                        channels.c.kind == "whatsapp", channels.c.status == "active"
                    )
                )
            ).all()
        for channel_id, workspace_id in rows:
            last = self._synced_at.get(channel_id)
            if last is not None and now - last < self.every:
                continue
            self._synced_at[channel_id] = now
            try:
                found = await (await self.registry.whatsapp(channel_id)).templates()
            except ChannelError as exc:
                log.warning("template sync of channel %s failed: %s", channel_id, exc.reason)
                continue
            await templates.store_synced(
                self.db, workspace_id=workspace_id, channel_id=channel_id, found=found
            )
