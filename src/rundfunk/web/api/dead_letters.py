"""Failed webhook items: ``GET /webhooks/failed``, retry one, discard one (admins).

A message or status of a webhook that could not be applied even on its own is kept
in the dead-letter list (``services.dead_letters``) — the platform got its 200 and
will not send it again. Scoped to the caller's workspace like everything else.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from rundfunk.services import dead_letters as service
from rundfunk.web.api.fields import MAX_ID, PAGE_LIMIT_MAX, PathId
from rundfunk.web.deps import AdminDep, RuntimeDep

router = APIRouter(prefix="/webhooks/failed", tags=["webhooks"])


class FailedItem(BaseModel):
    id: int
    channel_id: int
    kind: str = Field(description="message | status | consent | template | webhook")
    item: dict[str, Any] = Field(description="The item as Rundfunk read it (channel-neutral).")
    error: str = Field(description="Why it could not be applied, the last time it was tried.")
    first_failed_at: datetime
    last_failed_at: datetime
    attempts: int


class FailedPage(BaseModel):
    items: list[FailedItem]
    next_after_id: int | None = Field(description="Pass as after_id for the next page.")


class Retried(BaseModel):
    applied: bool = Field(description="True: carried out and gone from the list.")
    messages: int = Field(description="Inbound messages it stored.")
    statuses_changed: int


@router.get("", response_model=FailedPage)
async def list_failed(
    actor: AdminDep,
    runtime: RuntimeDep,
    channel_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> Any:
    """Webhook items that could not be applied, oldest first."""
    found = await service.list_dead_letters(
        runtime.db, actor=actor, channel_id=channel_id, after_id=after_id, limit=limit
    )
    return {
        "items": [asdict(item) for item in found],
        "next_after_id": found[-1].id if len(found) == limit else None,
    }


@router.post(
    "/{dead_letter_id}/retry",
    response_model=Retried,
    responses={409: {"description": "It still cannot be applied; the error is updated."}},
)
async def retry_failed(dead_letter_id: PathId, actor: AdminDep, runtime: RuntimeDep) -> Any:
    """Apply the item again; on success it leaves the list."""
    result = await service.retry(
        runtime.db,
        actor=actor,
        dead_letter_id=dead_letter_id,
        policy=runtime.dispatcher.policy,
    )
    for disabled in result.effects.disabled_channels:
        runtime.registry.forget(disabled)
    runtime.wake()  # a confirmation or a requeued send may be due now
    changed = result.statuses_changed
    return {"applied": True, "messages": result.messages, "statuses_changed": changed}


@router.delete("/{dead_letter_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def discard_failed(dead_letter_id: PathId, actor: AdminDep, runtime: RuntimeDep) -> Response:
    """Give the item up without applying it (audited)."""
    await service.discard(runtime.db, actor=actor, dead_letter_id=dead_letter_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
