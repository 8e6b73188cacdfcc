"""Topics: interests a contact can subscribe to ("Sport", "S-Bahn Linie 7").

Editors create, rename and delete them; subscribers choose one by writing the opt-in
keyword followed by its key (``START sport``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, consent_events, contacts, subscriptions, topics
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Conflict, Invalid, NotFound

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_NAME = 200


def _name(name: str) -> str:
    name = name.strip()
    if not name:
        raise Invalid("name must not be empty", field="name")
    if len(name) > MAX_NAME:
        raise Invalid(
            "name may have at most %(max)s characters", field="name", params={"max": MAX_NAME}
        )
    return name


async def create_topic(db: Database, *, actor: Actor, key: str, name: str) -> dict[str, Any]:
    actor.require(Role.EDITOR)
    key = key.strip().lower()
    if not KEY.match(key):
        raise Invalid(
            "key must be 1-64 letters, digits, '-' or '_' (subscribers type it after START)",
            field="key",
        )
    name = _name(name)
    try:
        async with db.write() as conn:
            result = await conn.execute(
                topics.insert().values(
                    workspace_id=actor.workspace_id, key=key, name=name, created_at=utcnow()
                )
            )
            assert result.inserted_primary_key is not None
            topic_id = int(result.inserted_primary_key[0])
            await audit.record(conn, actor, "topic.create", target_type="topic", target_id=topic_id)
    except IntegrityError as exc:
        raise Conflict("topic '%(key)s' already exists", field="key", params={"key": key}) from exc
    return {"id": topic_id, "key": key, "name": name}


async def list_topics(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(topics.c.id, topics.c.key, topics.c.name)
            .where(topics.c.workspace_id == actor.workspace_id)
            .order_by(topics.c.key)
        )
        return [dict(r._mapping) for r in rows]


async def list_topics_with_counts(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """Topics with their subscriber count: subscriptions of contacts still opted in."""
    active = (
        select(subscriptions.c.topic_id, func.count().label("subscribers"))
        .join(contacts, contacts.c.id == subscriptions.c.contact_id)
        .where(
            subscriptions.c.workspace_id == actor.workspace_id,
            contacts.c.status == "subscribed",
        )
        .group_by(subscriptions.c.topic_id)
        .subquery()
    )
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                topics.c.id,
                topics.c.key,
                topics.c.name,
                topics.c.created_at,
                func.coalesce(active.c.subscribers, 0).label("subscribers"),
            )
            .outerjoin(active, active.c.topic_id == topics.c.id)
            .where(topics.c.workspace_id == actor.workspace_id)
            .order_by(topics.c.key)
        )
        return [dict(r._mapping) for r in rows]


async def _owned(conn: AsyncConnection, actor: Actor, topic_id: int) -> Any:
    row = (
        await conn.execute(
            select(topics.c.id, topics.c.key, topics.c.name).where(
                topics.c.id == topic_id, topics.c.workspace_id == actor.workspace_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no topic {topic_id}")
    return row


async def rename_topic(db: Database, *, actor: Actor, topic_id: int, name: str) -> dict[str, Any]:
    """Give a topic a new name; its key (what subscribers type) stays."""
    actor.require(Role.EDITOR)
    name = _name(name)
    async with db.write() as conn:
        row = await _owned(conn, actor, topic_id)
        await conn.execute(update(topics).where(topics.c.id == topic_id).values(name=name))
        await audit.record(conn, actor, "topic.rename", target_type="topic", target_id=topic_id)
    return {"id": topic_id, "key": row.key, "name": name}


async def delete_topic(db: Database, *, actor: Actor, topic_id: int) -> int:
    """Delete a topic and its subscriptions; returns how many subscriptions went.

    Refused while a draft broadcast is addressed to it: sending that draft later
    would otherwise reach a different audience than the editor chose. Consent events
    stay (they are the record of what people agreed to) but no longer name the topic.
    """
    actor.require(Role.EDITOR)
    async with db.write() as conn:
        await _owned(conn, actor, topic_id)
        drafts = await conn.execute(
            select(broadcasts.c.id, broadcasts.c.topic_ids).where(
                broadcasts.c.workspace_id == actor.workspace_id, broadcasts.c.status == "draft"
            )
        )
        using = sorted(b.id for b in drafts if topic_id in (b.topic_ids or []))
        if using:
            raise Conflict(
                f"draft broadcast {using[0]} is addressed to this topic; send or cancel it first"
            )
        await conn.execute(
            update(consent_events)
            .where(consent_events.c.topic_id == topic_id)
            .values(topic_id=None)
        )
        gone = await conn.execute(delete(subscriptions).where(subscriptions.c.topic_id == topic_id))
        await conn.execute(delete(topics).where(topics.c.id == topic_id))
        removed = int(gone.rowcount or 0)
        await audit.record(
            conn,
            actor,
            "topic.delete",
            target_type="topic",
            target_id=topic_id,
            details={"subscriptions": removed},
        )
    return removed


async def topic_ids_for_keys(
    conn: AsyncConnection, workspace_id: int, keys: list[str]
) -> list[int]:
    """The ids of these topic keys; raises ``Invalid`` naming any unknown key."""
    wanted = {k.strip().lower() for k in keys}
    rows = await conn.execute(
        select(topics.c.id, topics.c.key).where(
            topics.c.workspace_id == workspace_id, topics.c.key.in_(wanted)
        )
    )
    found = {r.key: r.id for r in rows}
    missing = sorted(wanted - set(found))
    if missing:
        raise Invalid(f"unknown topic keys: {', '.join(missing)}")
    return sorted(found.values())
