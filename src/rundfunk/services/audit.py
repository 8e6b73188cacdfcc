"""The audit log: who did what, written inside the transaction that did it."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.tables import audit_log
from rundfunk.db.types import utcnow
from rundfunk.services.actors import Actor


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
