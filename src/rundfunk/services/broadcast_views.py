"""Broadcasts as the API shows them: stats by status, topic keys, deliveries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, contacts, deliveries, topics
from rundfunk.services.actors import Actor
from rundfunk.services.errors import Invalid, NotFound
from rundfunk.services.recipient_cap import DEFERRED_CODE

STATS = ("total", "queued", "deferred", "sent", "delivered", "read", "failed", "skipped")


async def owned(conn: AsyncConnection, actor: Actor, broadcast_id: int) -> Any:
    """The broadcast row, if it belongs to the actor's workspace (NotFound otherwise)."""
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


async def _stats(conn: AsyncConnection, rows: Sequence[Any]) -> dict[int, dict[str, int]]:
    """Delivery counts by status for several broadcasts, in one grouped query."""
    stats = {row.id: {name: 0 for name in STATS} | {"total": row.total} for row in rows}
    if not stats:
        return stats
    deferred = deliveries.c.error_code == DEFERRED_CODE
    counted = await conn.execute(
        select(
            deliveries.c.broadcast_id,
            deliveries.c.status,
            func.sum(case((deferred, 1), else_=0)),
            func.count(),
        )
        .where(deliveries.c.broadcast_id.in_(list(stats)))
        .group_by(deliveries.c.broadcast_id, deliveries.c.status)
    )
    for broadcast_id, status, held_back, count in counted:
        # In flight counts as queued: it has not reached the platform yet. Queued rows
        # held back by the daily recipient cap count as deferred.
        if status in (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value):
            stats[broadcast_id]["deferred"] += int(held_back or 0)
            stats[broadcast_id]["queued"] += int(count) - int(held_back or 0)
        else:
            stats[broadcast_id][status] += int(count)
    return stats


async def _topic_keys(conn: AsyncConnection, rows: Sequence[Any]) -> dict[int, str]:
    """Topic id → key for every topic these broadcasts name, in one query."""
    wanted = {topic_id for row in rows for topic_id in row.topic_ids}
    if not wanted:
        return {}
    found = await conn.execute(select(topics.c.id, topics.c.key).where(topics.c.id.in_(wanted)))
    return {topic_id: key for topic_id, key in found}


def _public(row: Any, keys: list[str], stats: dict[str, int]) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel_id": row.channel_id,
        "status": row.status,
        "status_reason": row.status_reason,
        "text": row.text,
        "media_url": row.media_url,
        "template": _template_view(row.content),
        "topic_keys": keys,
        "send_at": row.send_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "stats": stats,
    }


def _template_view(content: Mapping[str, Any] | None) -> dict[str, Any] | None:
    template = (content or {}).get("template")
    if not isinstance(template, Mapping):
        return None
    keys = ("name", "language", "body_parameters", "header_parameters", "button_parameters")
    return {key: template.get(key) for key in (*keys, "header_media")}


async def _publish(conn: AsyncConnection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    # A fixed number of queries however many rows: stats and topic keys for all at once.
    stats = await _stats(conn, rows)
    keys = await _topic_keys(conn, rows)
    return [
        _public(row, sorted(keys[t] for t in row.topic_ids if t in keys), stats[row.id])
        for row in rows
    ]


async def get_broadcast(db: Database, *, actor: Actor, broadcast_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        row = await owned(conn, actor, broadcast_id)
        return (await _publish(conn, [row]))[0]


async def list_broadcasts(db: Database, *, actor: Actor, limit: int = 50) -> list[dict[str, Any]]:
    """The newest broadcasts with their stats: three queries, not one per broadcast."""
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(broadcasts)
                .where(broadcasts.c.workspace_id == actor.workspace_id)
                .order_by(broadcasts.c.id.desc())
                .limit(limit)
            )
        ).all()
        return await _publish(conn, rows)


async def list_deliveries(
    db: Database,
    *,
    actor: Actor,
    broadcast_id: int,
    status: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """One broadcast's deliveries (who, status, attempts, why it failed), by id."""
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        raise Invalid(f"status must be one of {', '.join(s.value for s in DeliveryStatus)}")
    query = (
        select(
            deliveries.c.id,
            deliveries.c.contact_id,
            contacts.c.address,
            contacts.c.name,
            deliveries.c.status,
            deliveries.c.attempts,
            deliveries.c.error_code,
            deliveries.c.error_reason,
            deliveries.c.provider_message_id,
            deliveries.c.sent_at,
            deliveries.c.updated_at,
        )
        .join(contacts, contacts.c.id == deliveries.c.contact_id)
        .where(deliveries.c.broadcast_id == broadcast_id, deliveries.c.id > after_id)
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(deliveries.c.status == status)
    async with db.read() as conn:
        await owned(conn, actor, broadcast_id)
        return [dict(row._mapping) for row in await conn.execute(query)]
