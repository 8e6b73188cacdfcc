"""Broadcasts: compose one message for a channel's subscribers, then send, pause, cancel.

Sending wakes the in-process dispatcher so the first messages leave at once instead
of at its next poll.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from rundfunk.services import broadcast_views as views
from rundfunk.services import broadcasts as service
from rundfunk.web.api.fields import (
    PAGE_LIMIT_MAX,
    REQUEST,
    AfterId,
    AwareDateTime,
    Id,
    MediaUrl,
    MessageText,
    PathId,
    RichContent,
    next_after_id,
)
from rundfunk.web.deps import ActorDep, EditorDep, RuntimeDep

router = APIRouter(prefix="/broadcasts", tags=["broadcasts"])

TopicKey = Annotated[str, Field(min_length=1, max_length=64)]


class BroadcastCreate(RichContent):
    model_config = REQUEST

    channel_id: Id
    text: MessageText | None = Field(
        default=None,
        description="The message; {{ contact.name }}-style fields are personalised per "
        "contact. On WhatsApp give `template` instead (broadcasts are template messages).",
    )
    topic_keys: list[TopicKey] | None = Field(
        default=None,
        max_length=100,
        description="Only subscribers of any of these topics; none: every subscriber.",
    )
    media_url: MediaUrl | None = None
    send_at: AwareDateTime | None = Field(
        default=None,
        description="Schedule for this time (ISO 8601 with time zone); none: stays a draft.",
    )


class BroadcastStats(BaseModel):
    total: int
    queued: int
    deferred: int = Field(description="Held back by the channel's daily recipient cap.")
    sent: int
    delivered: int
    read: int
    failed: int
    skipped: int


class Broadcast(BaseModel):
    id: int
    channel_id: int
    status: str = Field(
        description="draft | scheduled | sending | paused | done | failed | cancelled "
        "(failed: every send failed, or the review refused a scheduled one; see status_reason)"
    )
    status_reason: str | None = None
    text: str = Field(description="The text, or a template broadcast's body with placeholders.")
    media_url: str | None = None
    template: dict[str, Any] | None = Field(
        default=None, description="name, language and parameters of a template broadcast."
    )
    topic_keys: list[str]
    send_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_by: str
    created_at: datetime
    stats: BroadcastStats


class BroadcastList(BaseModel):
    items: list[Broadcast]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Broadcast)
async def create_broadcast(body: BroadcastCreate, actor: EditorDep, runtime: RuntimeDep) -> Any:
    return await service.create_broadcast(
        runtime.db,
        actor=actor,
        channel_id=body.channel_id,
        text=body.text,
        topic_keys=body.topic_keys,
        **body.rich(),
        media_url=body.media_url,
        send_at=body.send_at,
    )


@router.get("", response_model=BroadcastList)
async def list_broadcasts(
    actor: ActorDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Newest first.")] = 50,
) -> Any:
    return {"items": await views.list_broadcasts(runtime.db, actor=actor, limit=limit)}


@router.get("/{broadcast_id}", response_model=Broadcast)
async def get_broadcast(broadcast_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    return await views.get_broadcast(runtime.db, actor=actor, broadcast_id=broadcast_id)


@router.post("/{broadcast_id}/send", response_model=Broadcast)
async def send_broadcast(broadcast_id: PathId, actor: EditorDep, runtime: RuntimeDep) -> Any:
    """Send now: start a draft or scheduled broadcast, or resume a paused one."""
    result = await service.send_broadcast(runtime.db, actor=actor, broadcast_id=broadcast_id)
    runtime.wake()
    return result


@router.post("/{broadcast_id}/pause", response_model=Broadcast)
async def pause_broadcast(broadcast_id: PathId, actor: EditorDep, runtime: RuntimeDep) -> Any:
    return await service.pause_broadcast(runtime.db, actor=actor, broadcast_id=broadcast_id)


@router.post("/{broadcast_id}/cancel", response_model=Broadcast)
async def cancel_broadcast(broadcast_id: PathId, actor: EditorDep, runtime: RuntimeDep) -> Any:
    """Nothing more is sent; deliveries still queued become skipped."""
    return await service.cancel_broadcast(runtime.db, actor=actor, broadcast_id=broadcast_id)


class Delivery(BaseModel):
    id: int
    contact_id: int
    address: str
    name: str | None = None
    status: str = Field(description="queued | sending | sent | delivered | read | failed | skipped")
    attempts: int
    error_code: str | None = Field(default=None, description="The platform's error code.")
    error_reason: str | None = None
    provider_message_id: str | None = None
    sent_at: datetime | None = None
    updated_at: datetime


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_after_id: int | None = Field(description="Pass as after_id for the next page.")


@router.get("/{broadcast_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    broadcast_id: PathId,
    actor: EditorDep,
    runtime: RuntimeDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    after_id: Annotated[AfterId, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> Any:
    """Who got the broadcast, who did not, and why (failed ones carry the reason)."""
    items = await views.list_deliveries(
        runtime.db,
        actor=actor,
        broadcast_id=broadcast_id,
        status=status,
        after_id=after_id,
        limit=limit,
    )
    return {"items": items, "next_after_id": next_after_id(items, limit)}
