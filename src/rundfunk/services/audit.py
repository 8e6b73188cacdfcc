"""The audit log: who did what, written inside the transaction that did it, and read
back by admins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import audit_log
from rundfunk.db.types import utcnow
from rundfunk.services.actors import Actor, Role


async def record(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    *,
    target_type: str | None = None,
    target_id: int | None = None,
    details: Mapping[str, object] | None = None,
) -> None:
    await conn.execute(
        audit_log.insert().values(
            workspace_id=actor.workspace_id,
            actor=actor.label,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=dict(details or {}),
            created_at=utcnow(),
        )
    )


async def list_entries(
    db: Database, *, actor: Actor, after_id: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """The workspace's audit log, oldest first from ``after_id`` (admins and owners)."""
    actor.require(Role.ADMIN)
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                audit_log.c.id,
                audit_log.c.actor,
                audit_log.c.action,
                audit_log.c.target_type,
                audit_log.c.target_id,
                audit_log.c.details,
                audit_log.c.created_at,
            )
            .where(audit_log.c.workspace_id == actor.workspace_id, audit_log.c.id > after_id)
            .order_by(audit_log.c.id)
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows]
