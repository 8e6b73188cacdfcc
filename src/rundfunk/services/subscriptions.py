"""Opt-in and opt-out: the subscription state and its append-only consent events.

Both verbs work inside the caller's transaction so that the state change, the
consent event and the confirmation message commit together.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.tables import consent_events, contacts, subscriptions
from rundfunk.db.types import utcnow


async def opt_in(
    conn: AsyncConnection,
    *,
    workspace_id: int,
    contact_id: int,
    topic_id: int | None,
    source: str,
    actor: str,
    keyword: str | None = None,
    text_shown: str | None = None,
) -> None:
    now = utcnow()
    await conn.execute(
        update(contacts)
        .where(contacts.c.id == contact_id)
        .values(status="subscribed", updated_at=now)
    )
    if topic_id is not None:
        exists = await conn.scalar(
            select(subscriptions.c.id).where(
                subscriptions.c.contact_id == contact_id, subscriptions.c.topic_id == topic_id
            )
        )
        if exists is None:
            await conn.execute(
                subscriptions.insert().values(
                    workspace_id=workspace_id,
                    contact_id=contact_id,
                    topic_id=topic_id,
                    created_at=now,
                )
            )
    await _event(
        conn, workspace_id, contact_id, "opt_in", topic_id, source, actor, keyword, text_shown
    )


async def opt_out(
    conn: AsyncConnection,
    *,
    workspace_id: int,
    contact_id: int,
    topic_id: int | None,
    source: str,
    actor: str,
    keyword: str | None = None,
    text_shown: str | None = None,
) -> None:
    """Leave one topic, or (``topic_id`` None) every broadcast of the channel at once."""
    now = utcnow()
    if topic_id is None:
        await conn.execute(
            update(contacts)
            .where(contacts.c.id == contact_id)
            .values(status="unsubscribed", updated_at=now)
        )
        await conn.execute(delete(subscriptions).where(subscriptions.c.contact_id == contact_id))
    else:
        await conn.execute(
            delete(subscriptions).where(
                subscriptions.c.contact_id == contact_id, subscriptions.c.topic_id == topic_id
            )
        )
    await _event(
        conn, workspace_id, contact_id, "opt_out", topic_id, source, actor, keyword, text_shown
    )


async def _event(
    conn: AsyncConnection,
    workspace_id: int,
    contact_id: int,
    kind: str,
    topic_id: int | None,
    source: str,
    actor: str,
    keyword: str | None,
    text_shown: str | None,
) -> None:
    await conn.execute(
        consent_events.insert().values(
            workspace_id=workspace_id,
            contact_id=contact_id,
            kind=kind,
            topic_id=topic_id,
            source=source,
            keyword=keyword,
            text_shown=text_shown,
            actor=actor,
            created_at=utcnow(),
        )
    )
