"""Broadcasts: compose, schedule, start (fan-out), pause, resume, cancel, and stats.

States: draft → scheduled → sending → done, plus paused and cancelled. Starting a
broadcast materialises its audience into ``deliveries`` with one set-based
``INSERT … SELECT`` (~2 M rows/s on SQLite against 3-10x slower row by row).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import and_, exists, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from rundfunk.core import personalize
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, channels, contacts, deliveries, subscriptions, topics
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role, system_actor
from rundfunk.services.errors import Conflict, Invalid, NotFound
from rundfunk.services.topics import topic_ids_for_keys

STATS = ("total", "queued", "sent", "delivered", "read", "failed", "skipped")
# A send_at this far in the past is still "now" (clock skew, slow clients).
PAST_GRACE = timedelta(seconds=60)


def audience_filter(channel_id: int, topic_ids: list[int]) -> ColumnElement[bool]:
    """Who a broadcast reaches: opted-in, unblocked contacts of the channel (in a topic)."""
    condition = and_(
        contacts.c.channel_id == channel_id,
        contacts.c.status == "subscribed",
        contacts.c.blocked.is_(False),
    )
    if topic_ids:
        condition = and_(
            condition,
            exists().where(
                subscriptions.c.contact_id == contacts.c.id, subscriptions.c.topic_id.in_(topic_ids)
            ),
        )
    return condition


async def audience_size(conn: AsyncConnection, channel_id: int, topic_ids: list[int]) -> int:
    count = await conn.scalar(
        select(func.count()).select_from(contacts).where(audience_filter(channel_id, topic_ids))
    )
    return int(count or 0)


def _check_media_url(media_url: str | None) -> None:
    if media_url is None:
        return
    parsed = urlparse(media_url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or len(media_url) > 2000:
        raise Invalid("media_url must be an http(s) URL of at most 2000 characters")


async def create_broadcast(
    db: Database,
    *,
    actor: Actor,
    channel_id: int,
    text: str,
    topic_keys: list[str] | None = None,
    media_url: str | None = None,
    send_at: datetime | None = None,
) -> dict[str, Any]:
    actor.require(Role.EDITOR)
    try:
        personalize.validate(text)
    except personalize.PersonalizationError as exc:
        raise Invalid(f"text: {exc}") from exc
    _check_media_url(media_url)
    now = utcnow()
    if send_at is not None:
        if send_at.tzinfo is None:
            raise Invalid("send_at needs a time zone, e.g. 2026-12-01T09:00:00+01:00 or ...Z")
        if send_at < now - PAST_GRACE:
            raise Invalid("send_at is in the past")
    async with db.write() as conn:
        channel = (
            await conn.execute(
                select(channels.c.status).where(
                    channels.c.id == channel_id, channels.c.workspace_id == actor.workspace_id
                )
            )
        ).first()
        if channel is None:
            raise NotFound(f"no channel {channel_id}")
        topic_ids = await topic_ids_for_keys(conn, actor.workspace_id, topic_keys or [])
        if await audience_size(conn, channel_id, topic_ids) == 0:
            raise Invalid(
                "audience is empty: nobody on this channel"
                + (" subscribed to these topics" if topic_ids else " has opted in")
            )
        result = await conn.execute(
            broadcasts.insert().values(
                workspace_id=actor.workspace_id,
                channel_id=channel_id,
                text=text,
                media_url=media_url,
                topic_ids=topic_ids,
                status="scheduled" if send_at else "draft",
                send_at=send_at,
                total=0,
                created_by=actor.label,
                created_at=now,
            )
        )
        assert result.inserted_primary_key is not None
        broadcast_id = int(result.inserted_primary_key[0])
        await audit.record(
            conn, actor, "broadcast.create", target_type="broadcast", target_id=broadcast_id
        )
    return await get_broadcast(db, actor=actor, broadcast_id=broadcast_id)


async def _owned(conn: AsyncConnection, actor: Actor, broadcast_id: int) -> Any:
    row = (
        await conn.execute(
            select(broadcasts).where(
                broadcasts.c.id == broadcast_id, broadcasts.c.workspace_id == actor.workspace_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no broadcast {broadcast_id}")
    return row


async def send_broadcast(db: Database, *, actor: Actor, broadcast_id: int) -> dict[str, Any]:
    """Send now: start a draft or scheduled broadcast, or resume a paused one."""
    actor.require(Role.EDITOR)
    async with db.write() as conn:
        row = await _owned(conn, actor, broadcast_id)
        if row.status == "paused":
            await conn.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id)
                .values(status="sending", status_reason=None)
            )
            await audit.record(
                conn, actor, "broadcast.resume", target_type="broadcast", target_id=broadcast_id
            )
        elif row.status in {"draft", "scheduled"}:
            total = await _fan_out(conn, row)
            if total == 0:
                raise Invalid("audience is empty: nobody would receive this broadcast")
            await audit.record(
                conn,
                actor,
                "broadcast.send",
                target_type="broadcast",
                target_id=broadcast_id,
                details={"total": total},
            )
        else:
            raise Conflict(f"broadcast {broadcast_id} is {row.status} and cannot be sent")
    return await get_broadcast(db, actor=actor, broadcast_id=broadcast_id)


async def _fan_out(conn: AsyncConnection, row: Any) -> int:
    now = utcnow()
    claimed = await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.id == row.id, broadcasts.c.status.in_(("draft", "scheduled")))
        .values(status="sending", started_at=now)
    )
    if claimed.rowcount != 1:
        return 0
    audience = select(
        literal(row.id),
        contacts.c.id,
        contacts.c.channel_id,
        literal(DeliveryStatus.QUEUED.value),
        literal(0),
        literal(now, broadcasts.c.created_at.type),
        literal(now, broadcasts.c.created_at.type),
    ).where(audience_filter(row.channel_id, list(row.topic_ids)))
    inserted = await conn.execute(
        deliveries.insert().from_select(
            [
                "broadcast_id",
                "contact_id",
                "channel_id",
                "status",
                "attempts",
                "next_attempt_at",
                "updated_at",
            ],
            audience,
        )
    )
    total = int(inserted.rowcount or 0)
    values: dict[str, Any] = {"total": total}
    if total == 0:
        values.update(status="done", finished_at=now)
    await conn.execute(update(broadcasts).where(broadcasts.c.id == row.id).values(**values))
    return total


async def start_due(db: Database, *, now: datetime | None = None) -> list[int]:
    """Start every scheduled broadcast whose time has come (the scheduler's job)."""
    now = now or utcnow()
    started: list[int] = []
    async with db.read() as conn:
        due = (
            await conn.execute(
                select(broadcasts.c.id, broadcasts.c.workspace_id).where(
                    broadcasts.c.status == "scheduled", broadcasts.c.send_at <= now
                )
            )
        ).all()
    for item in due:
        async with db.write() as conn:
            row = (await conn.execute(select(broadcasts).where(broadcasts.c.id == item.id))).one()
            total = await _fan_out(conn, row)
            await audit.record(
                conn,
                system_actor(item.workspace_id),
                "broadcast.send",
                target_type="broadcast",
                target_id=item.id,
                details={"total": total, "scheduled": True},
            )
        started.append(item.id)
    return started


async def pause_broadcast(
    db: Database, *, actor: Actor, broadcast_id: int, reason: str = "paused by user"
) -> dict[str, Any]:
    actor.require(Role.EDITOR)
    async with db.write() as conn:
        row = await _owned(conn, actor, broadcast_id)
        if row.status != "sending":
            raise Conflict(
                f"broadcast {broadcast_id} is {row.status}; only a sending broadcast can be paused"
            )
        await conn.execute(
            update(broadcasts)
            .where(broadcasts.c.id == broadcast_id)
            .values(status="paused", status_reason=reason)
        )
        await audit.record(
            conn, actor, "broadcast.pause", target_type="broadcast", target_id=broadcast_id
        )
    return await get_broadcast(db, actor=actor, broadcast_id=broadcast_id)


async def cancel_broadcast(db: Database, *, actor: Actor, broadcast_id: int) -> dict[str, Any]:
    """Cancel: nothing more is sent; deliveries not yet sent become skipped."""
    actor.require(Role.EDITOR)
    now = utcnow()
    async with db.write() as conn:
        row = await _owned(conn, actor, broadcast_id)
        if row.status in {"done", "cancelled"}:
            raise Conflict(f"broadcast {broadcast_id} is already {row.status}")
        await conn.execute(
            update(broadcasts)
            .where(broadcasts.c.id == broadcast_id)
            .values(status="cancelled", finished_at=now, status_reason="cancelled")
        )
        await conn.execute(
            update(deliveries)
            .where(
                deliveries.c.broadcast_id == broadcast_id,
                deliveries.c.status == DeliveryStatus.QUEUED.value,
            )
            .values(
                status=DeliveryStatus.SKIPPED.value,
                error_reason="broadcast cancelled",
                updated_at=now,
            )
        )
        await audit.record(
            conn, actor, "broadcast.cancel", target_type="broadcast", target_id=broadcast_id
        )
    return await get_broadcast(db, actor=actor, broadcast_id=broadcast_id)


async def _stats(conn: AsyncConnection, broadcast_id: int, total: int) -> dict[str, int]:
    counts = {name: 0 for name in STATS}
    rows = await conn.execute(
        select(deliveries.c.status, func.count())
        .where(deliveries.c.broadcast_id == broadcast_id)
        .group_by(deliveries.c.status)
    )
    for status, count in rows:
        # In flight counts as queued: it has not reached the platform yet.
        key = "queued" if status == DeliveryStatus.SENDING.value else status
        counts[key] += int(count)
    counts["total"] = total
    return counts


def _public(row: Any, keys: list[str], stats: dict[str, int]) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel_id": row.channel_id,
        "status": row.status,
        "status_reason": row.status_reason,
        "text": row.text,
        "media_url": row.media_url,
        "topic_keys": keys,
        "send_at": row.send_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "stats": stats,
    }


async def get_broadcast(db: Database, *, actor: Actor, broadcast_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        row = await _owned(conn, actor, broadcast_id)
        keys = list(
            (
                await conn.execute(select(topics.c.key).where(topics.c.id.in_(list(row.topic_ids))))
            ).scalars()
        )
        return _public(row, sorted(keys), await _stats(conn, broadcast_id, row.total))


async def list_broadcasts(db: Database, *, actor: Actor, limit: int = 50) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(broadcasts.c.id)
            .where(broadcasts.c.workspace_id == actor.workspace_id)
            .order_by(broadcasts.c.id.desc())
            .limit(limit)
        )
        ids = list(rows.scalars())
    return [await get_broadcast(db, actor=actor, broadcast_id=i) for i in ids]


async def finish_completed(db: Database) -> int:
    """Mark sending broadcasts with no queued or in-flight delivery left as done."""
    pending = exists().where(
        deliveries.c.broadcast_id == broadcasts.c.id,
        deliveries.c.status.in_((DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)),
    )
    async with db.write() as conn:
        result = await conn.execute(
            update(broadcasts)
            .where(broadcasts.c.status == "sending", ~pending)
            .values(status="done", finished_at=utcnow())
        )
    return int(result.rowcount or 0)
