"""Blocking a contact: no broadcast, no reply, and what they write stays out of the inbox
(stored on the contact and counted). Agents and up; every block and unblock is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from rundfunk.services import blocking as service
from rundfunk.web.api.fields import PAGE_LIMIT_MAX, PathId
from rundfunk.web.deps import ActorDep, RuntimeDep

router = APIRouter(prefix="/contacts", tags=["contacts"])


class BlockState(BaseModel):
    id: int
    blocked: bool
    blocked_at: datetime | None = Field(description="Since when (None: not blocked).")
    blocked_messages: int = Field(description="Messages they wrote while blocked, ever.")


class BlockedMessage(BaseModel):
    id: int
    kind: str
    text: str | None = None
    media_url: str | None = None
    created_at: datetime


class BlockedMessages(BaseModel):
    items: list[BlockedMessage] = Field(description="Newest first.")
    total: int = Field(description="How many are stored.")


@router.post("/{contact_id}/block", response_model=BlockState)
async def block_contact(contact_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    """Block the contact: left out of every broadcast, replies refused (queued ones are
    not sent), their open conversation resolved; what they write from now on is stored
    on the contact, never in the inbox, and START does not subscribe them."""
    state = await service.block_contact(runtime.db, actor=actor, contact_id=contact_id)
    return service.as_dict(state)


@router.post("/{contact_id}/unblock", response_model=BlockState)
async def unblock_contact(contact_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    """Lift the block; the subscription status stays what it was."""
    state = await service.unblock_contact(runtime.db, actor=actor, contact_id=contact_id)
    return service.as_dict(state)


@router.get("/{contact_id}/blocked-messages", response_model=BlockedMessages)
async def blocked_messages(
    contact_id: PathId,
    actor: ActorDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50,
) -> Any:
    """What the contact wrote while blocked."""
    found, total = await service.blocked_messages(
        runtime.db, actor=actor, contact_id=contact_id, limit=limit
    )
    return {"items": [vars(m) for m in found], "total": total}
