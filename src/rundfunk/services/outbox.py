"""Outbound conversation messages waiting for the dispatcher (replies, confirmations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.session import notify_work
from rundfunk.db.tables import messages
from rundfunk.db.types import utcnow


async def queue_message(
    conn: AsyncConnection,
    *,
    workspace_id: int,
    channel_id: int,
    contact_id: int,
    text: str | None,
    conversation_id: int | None = None,
    media_url: str | None = None,
    kind: str = "text",
    author_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """Store an outbound message as queued; the dispatcher sends it (woken on commit)."""
    now = utcnow()
    result = await conn.execute(
        messages.insert().values(
            workspace_id=workspace_id,
            channel_id=channel_id,
            contact_id=contact_id,
            conversation_id=conversation_id,
            direction="out",
            kind=kind,
            text=text,
            media_url=media_url,
            payload=payload,
            status=DeliveryStatus.QUEUED.value,
            author_id=author_id,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    assert result.inserted_primary_key is not None
    await notify_work(conn)
    return int(result.inserted_primary_key[0])
