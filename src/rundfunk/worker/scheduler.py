"""The scheduler: starts scheduled broadcasts, closes finished ones, requeues expired
leases and lets the sandbox's phones report their statuses."""

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

log = logging.getLogger(__name__)


async def run_scheduler(
    db: Database,
    stop: asyncio.Event,
    *,
    poll_seconds: float,
    wake: Callable[[], None],
    registry: ChannelRegistry | None = None,
    settle_seconds: float = 120.0,
    template_sync_seconds: float = 3600.0,
) -> None:
    synced_at: dict[int, float] = {}
    while not stop.is_set():
        try:
            if await broadcasts.start_due(db):
                wake()
            if await dispatch.requeue_expired(db, settle_seconds=settle_seconds):
                wake()
            await sandbox.report_statuses(db)
            await broadcasts.finish_completed(db)
            if registry is not None:
                await _sync_templates(db, registry, synced_at, template_sync_seconds)
        except Exception:
            log.exception("scheduler pass failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=poll_seconds)


async def _sync_templates(
    db: Database, registry: ChannelRegistry, synced_at: dict[int, float], every: float
) -> None:
    """Keep each active WhatsApp channel's templates fresh (statuses change at Meta)."""
    now = time.monotonic()
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(channels.c.id, channels.c.workspace_id).where(
                    channels.c.kind == "whatsapp", channels.c.status == "active"
                )
            )
        ).all()
    for channel_id, workspace_id in rows:
        if now - synced_at.get(channel_id, -every) < every:
            continue
        synced_at[channel_id] = now
        try:
            found = await (await registry.whatsapp(channel_id)).templates()
        except ChannelError as exc:
            log.warning("template sync of channel %s failed: %s", channel_id, exc.reason)
            continue
        await templates.store_synced(
            db, workspace_id=workspace_id, channel_id=channel_id, found=found
        )
