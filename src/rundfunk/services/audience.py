"""Who a broadcast reaches: the set-based audience filter shared by counting and fan-out."""

from __future__ import annotations

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from rundfunk.db.tables import contacts, subscriptions


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
