"""Contacts: the people on a channel, their opt-in status, topics and consent history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from rundfunk.services import contacts as service
from rundfunk.web.api.fields import MAX_ID, PAGE_LIMIT_MAX, AfterId, PathId, next_after_id
from rundfunk.web.deps import ActorDep, RuntimeDep

router = APIRouter(prefix="/contacts", tags=["contacts"])

ContactStatus = Literal["subscribed", "unsubscribed", "none"]


class Contact(BaseModel):
    id: int
    channel_id: int
    address: str
    name: str | None = None
    language: str | None = None
    status: ContactStatus = Field(description="The channel-wide opt-in.")
    blocked: bool
    tags: list[Any]
    attributes: dict[str, Any]
    last_inbound_at: datetime | None = None
    created_at: datetime


class Subscription(BaseModel):
    key: str
    name: str
    created_at: datetime


class ConsentEvent(BaseModel):
    id: int
    kind: str = Field(description="opt_in | opt_out")
    topic_key: str | None = None
    source: str = Field(description="keyword | api | platform | send_error")
    keyword: str | None = Field(default=None, description="What the person wrote.")
    text_shown: str | None = Field(default=None, description="The confirmation we answered.")
    actor: str
    created_at: datetime


class ContactDetail(Contact):
    subscriptions: list[Subscription]
    consent_history: list[ConsentEvent]


class ContactPage(BaseModel):
    items: list[Contact]
    next_after_id: int | None = Field(description="Pass as after_id for the next page.")


@router.get("", response_model=ContactPage)
async def list_contacts(
    actor: ActorDep,
    runtime: RuntimeDep,
    channel_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: ContactStatus | None = None,
    topic: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    after_id: Annotated[AfterId, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> Any:
    items = await service.list_contacts(
        runtime.db,
        actor=actor,
        channel_id=channel_id,
        status=status,
        topic_key=topic.strip().lower() if topic else None,
        after_id=after_id,
        limit=limit,
    )
    return {"items": items, "next_after_id": next_after_id(items, limit)}


@router.get("/{contact_id}", response_model=ContactDetail)
async def get_contact(contact_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    return await service.get_contact(runtime.db, actor=actor, contact_id=contact_id)
