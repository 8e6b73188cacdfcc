"""The daily unique-recipient cap of a channel (WhatsApp's messaging limit tier)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.tables import channels, deliveries

if TYPE_CHECKING:
    from rundfunk.services.dispatch import SendJob

DAY = timedelta(hours=24)
DEFERRED_CODE = "messaging_limit"  # a queued delivery held back by the cap
QUEUED, SENDING = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value


async def hold_back_over_cap(
    conn: AsyncConnection, jobs: list[SendJob], now: datetime
) -> list[SendJob]:
    """Apply each channel's daily unique-recipient cap (WhatsApp's messaging limit tier).

    A person already reached in the last 24 hours costs nothing more; a new one takes a
    slot. Deliveries over the cap go back to the queue, marked deferred, until the
    oldest send of the window ages out.
    """
    if not jobs:
        return jobs
    found = await conn.execute(
        select(channels.c.id, channels.c.settings).where(
            channels.c.id.in_({job.channel_id for job in jobs})
        )
    )
    caps = {cid: settings.get("daily_recipient_cap") for cid, settings in found}
    caps = {cid: int(cap) for cid, cap in caps.items() if cap}
    if not caps:
        return jobs
    since = now - DAY
    claimed = {job.id for job in jobs}
    kept: list[SendJob] = []
    held: dict[int, list[int]] = {}
    for channel_id, cap in caps.items():
        reached_rows = await conn.execute(
            select(deliveries.c.id, deliveries.c.contact_id).where(
                deliveries.c.channel_id == channel_id,
                or_(deliveries.c.sent_at >= since, deliveries.c.status == SENDING),
            )
        )
        reached = {contact for row_id, contact in reached_rows if row_id not in claimed}
        for job in jobs:
            if job.channel_id != channel_id:
                continue
            if job.contact_id in reached or len(reached) < cap:
                reached.add(job.contact_id)
                kept.append(job)
            else:
                held.setdefault(channel_id, []).append(job.id)
    kept += [job for job in jobs if job.channel_id not in caps]
    for channel_id, ids in held.items():
        oldest = await conn.scalar(
            select(func.min(deliveries.c.sent_at)).where(
                deliveries.c.channel_id == channel_id, deliveries.c.sent_at >= since
            )
        )
        free_at = (oldest + DAY) if oldest is not None else now + timedelta(minutes=10)
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .values(
                status=QUEUED,
                lease_until=None,
                attempts=deliveries.c.attempts - 1,
                next_attempt_at=max(free_at, now + timedelta(seconds=1)),
                error_code=DEFERRED_CODE,
                error_reason=(
                    f"deferred: the channel's daily limit of {caps[channel_id]} unique "
                    "recipients per 24 h is reached; waits for the rolling window"
                ),
            )
        )
    return kept
