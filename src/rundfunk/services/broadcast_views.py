"""Broadcasts as the API shows them: stats by status, topic keys, deliveries.

Also the console's read-only helpers around composing: the live recipient count, a
sample contact for the preview, failures by reason, and a dry run of the compose checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.core import personalize
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, channels, contacts, deliveries, members, topics
from rundfunk.services.actors import Actor, Role
from rundfunk.services.audience import audience_size
from rundfunk.services.broadcast_review import check_audience_renders
from rundfunk.services.content import compose
from rundfunk.services.errors import Invalid, NotFound
from rundfunk.services.media import check_media_url
from rundfunk.services.recipient_cap import DEFERRED_CODE
from rundfunk.services.topics import topic_ids_for_keys

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


async def failure_reasons(
    db: Database, *, actor: Actor, broadcast_id: int, limit: int = 20
) -> list[dict[str, Any]]:
    """Failed and skipped deliveries grouped by why, most frequent first."""
    count = func.count().label("count")
    query = (
        select(deliveries.c.status, deliveries.c.error_code, deliveries.c.error_reason, count)
        .where(
            deliveries.c.broadcast_id == broadcast_id,
            deliveries.c.status.in_((DeliveryStatus.FAILED.value, DeliveryStatus.SKIPPED.value)),
        )
        .group_by(deliveries.c.status, deliveries.c.error_code, deliveries.c.error_reason)
        .order_by(count.desc(), deliveries.c.status)
        .limit(limit)
    )
    async with db.read() as conn:
        await owned(conn, actor, broadcast_id)
        return [dict(row._mapping) for row in await conn.execute(query)]


async def _channel_kind(conn: AsyncConnection, actor: Actor, channel_id: int) -> str:
    kind = await conn.scalar(
        select(channels.c.kind).where(
            channels.c.id == channel_id, channels.c.workspace_id == actor.workspace_id
        )
    )
    if kind is None:
        raise NotFound(f"no channel {channel_id}", field="channel_id")
    return str(kind)


async def recipient_count(
    db: Database, *, actor: Actor, channel_id: int, topic_keys: Sequence[str] = ()
) -> int:
    """How many people a broadcast to this channel (and these topics) would reach now."""
    async with db.read() as conn:
        await _channel_kind(conn, actor, channel_id)
        topic_ids = await topic_ids_for_keys(conn, actor.workspace_id, list(topic_keys))
        return await audience_size(conn, channel_id, topic_ids)


async def sample_contact(db: Database, *, actor: Actor, channel_id: int) -> dict[str, Any] | None:
    """The channel's newest subscriber, as personalization sees a contact (for previews)."""
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(
                    contacts.c.id,
                    contacts.c.address,
                    contacts.c.name,
                    contacts.c.language,
                    contacts.c.attributes,
                )
                .where(
                    contacts.c.workspace_id == actor.workspace_id,
                    contacts.c.channel_id == channel_id,
                    contacts.c.status == "subscribed",
                )
                .order_by(contacts.c.id.desc())
                .limit(1)
            )
        ).first()
    return dict(row._mapping) if row is not None else None


async def check_compose(
    db: Database,
    *,
    actor: Actor,
    channel_id: int,
    text: str | None,
    topic_keys: Sequence[str] = (),
    media_url: str | None = None,
    template: Mapping[str, Any] | None = None,
) -> int:
    """What ``create_broadcast`` would refuse, checked without writing: the console's
    confirmation step names the count before anything exists. Returns the audience size.
    """
    actor.require(Role.EDITOR)
    if text is not None and template is None:
        try:
            personalize.validate(text)
        except personalize.PersonalizationError as exc:
            raise Invalid(f"text: {exc}", field="text") from exc
    check_media_url(media_url)
    async with db.read() as conn:
        kind = await _channel_kind(conn, actor, channel_id)
        stored_text, content = await compose(
            conn,
            kind=kind,
            channel_id=channel_id,
            text=text,
            media_url=media_url,
            template=template,
            broadcast=True,
        )
        topic_ids = await topic_ids_for_keys(conn, actor.workspace_id, list(topic_keys))
        size = await audience_size(conn, channel_id, topic_ids)
        if size == 0:
            raise Invalid(
                "audience is empty: nobody on this channel"
                + (" subscribed to these topics" if topic_ids else " has opted in"),
                field="audience",
            )
        # The message rendered for a sample of this audience (broadcast_review).
        await check_audience_renders(
            conn,
            workspace_id=actor.workspace_id,
            channel_id=channel_id,
            kind=kind,
            topic_ids=topic_ids,
            text=stored_text,
            media_url=media_url,
            content=content,
        )
    return size


async def review_broadcast(db: Database, *, actor: Actor, broadcast_id: int) -> int:
    """The review a saved draft's send will run (``broadcast_review``), without writing:
    ``RenderRefused`` with the reason, else how many recipients were checked."""
    actor.require(Role.EDITOR)
    async with db.read() as conn:
        row = await owned(conn, actor, broadcast_id)
        return await check_audience_renders(
            conn,
            workspace_id=actor.workspace_id,
            channel_id=row.channel_id,
            kind=await _channel_kind(conn, actor, row.channel_id),
            topic_ids=list(row.topic_ids),
            text=row.text,
            media_url=row.media_url,
            content=row.content,
        )


async def creator_names(db: Database, *, actor: Actor, labels: Sequence[str]) -> dict[str, str]:
    """Display names for ``created_by`` labels like ``member:3`` (names only, no e-mail)."""
    ids = {int(label[7:]) for label in labels if re.fullmatch(r"member:\d+", label)}
    if not ids:
        return {}
    async with db.read() as conn:
        rows = await conn.execute(
            select(members.c.id, members.c.name).where(
                members.c.workspace_id == actor.workspace_id, members.c.id.in_(ids)
            )
        )
        return {f"member:{member_id}": name for member_id, name in rows if name}
