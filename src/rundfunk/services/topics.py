"""Topics: interests a contact can subscribe to ("Sport", "S-Bahn Linie 7")."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import topics
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Conflict, Invalid

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


async def create_topic(db: Database, *, actor: Actor, key: str, name: str) -> dict[str, Any]:
    actor.require(Role.EDITOR)
    key = key.strip().lower()
    if not KEY.match(key):
        raise Invalid(
            "key must be 1-64 letters, digits, '-' or '_' (subscribers type it after START)"
        )
    if not name.strip():
        raise Invalid("name must not be empty")
    try:
        async with db.write() as conn:
            result = await conn.execute(
                topics.insert().values(
                    workspace_id=actor.workspace_id, key=key, name=name.strip(), created_at=utcnow()
                )
            )
            assert result.inserted_primary_key is not None
            topic_id = int(result.inserted_primary_key[0])
            await audit.record(conn, actor, "topic.create", target_type="topic", target_id=topic_id)
    except IntegrityError as exc:
        raise Conflict(f"topic {key!r} already exists") from exc
    return {"id": topic_id, "key": key, "name": name.strip()}


async def list_topics(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(topics.c.id, topics.c.key, topics.c.name)
            .where(topics.c.workspace_id == actor.workspace_id)
            .order_by(topics.c.key)
        )
        return [dict(r._mapping) for r in rows]


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
