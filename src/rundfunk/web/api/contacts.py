"""Contacts: the people on a channel, their opt-in status, topics and consent history;
the export of everything stored about one person and its erasure (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from rundfunk.services import contact_data
from rundfunk.services import contacts as service
from rundfunk.web.api.fields import MAX_ID, PAGE_LIMIT_MAX, AfterId, PathId, next_after_id
from rundfunk.web.deps import ActorDep, AdminDep, RuntimeDep

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
    blocked_at: datetime | None = Field(default=None, description="Since when, if blocked.")
    blocked_messages: int = Field(default=0, description="Messages written while blocked.")
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


class ExportedContact(Contact):
    updated_at: datetime


class ExportedChannel(BaseModel):
    id: int
    kind: str
    name: str


class ExportedConversation(BaseModel):
    id: int
    status: str
    assignee_id: int | None = None
    last_inbound_at: datetime | None = None
    last_message_at: datetime
    created_at: datetime


class ExportedMessage(BaseModel):
    id: int
    conversation_id: int | None = Field(description="None for START/STOP keyword traffic.")
    direction: str = Field(description="in | out | note (an internal note of the team)")
    kind: str
    text: str | None = None
    media_url: str | None = None
    payload: dict[str, Any] | None = None
    status: str
    author_id: int | None = Field(default=None, description="The member who wrote it.")
    error_reason: str | None = None
    created_at: datetime


class ExportedDelivery(BaseModel):
    id: int
    broadcast_id: int
    broadcast_text: str
    status: str
    attempts: int
    error_code: str | None = None
    error_reason: str | None = None
    sent_at: datetime | None = None
    updated_at: datetime


class ContactExport(BaseModel):
    """Everything Rundfunk stores about one person (GDPR Art. 15 and 20)."""

    format: str = Field(description="rundfunk.contact-export/1")
    exported_at: datetime
    contact: ExportedContact
    channel: ExportedChannel | None
    subscriptions: list[Subscription]
    consent_events: list[ConsentEvent]
    conversation: ExportedConversation | None
    messages: list[ExportedMessage]
    deliveries: list[ExportedDelivery]


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
    search: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Part of the name or address."),
    ] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
    after_id: Annotated[AfterId, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> Any:
    items = await service.list_contacts(
        runtime.db,
        actor=actor,
        channel_id=channel_id,
        status=status,
        topic_key=topic.strip().lower() if topic else None,
        search=search,
        tag=tag,
        after_id=after_id,
        limit=limit,
    )
    return {"items": items, "next_after_id": next_after_id(items, limit)}


@router.get("/{contact_id}", response_model=ContactDetail)
async def get_contact(contact_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    return await service.get_contact(runtime.db, actor=actor, contact_id=contact_id)


@router.get("/{contact_id}/export", response_model=ContactExport)
async def export_contact(contact_id: PathId, actor: AdminDep, runtime: RuntimeDep) -> Any:
    """Everything stored about the person: contact, subscriptions, consent history,
    conversation, messages (internal notes included) and broadcast deliveries."""
    return await contact_data.export_contact(runtime.db, actor=actor, contact_id=contact_id)


@router.delete("/{contact_id}", status_code=status.HTTP_204_NO_CONTENT)
async def erase_contact(contact_id: PathId, actor: AdminDep, runtime: RuntimeDep) -> Response:
    """Erase the person (GDPR Art. 17): the contact, its messages, conversation, consent
    events, subscriptions and deliveries. Broadcast totals count one fewer; the audit
    log keeps only counts."""
    await contact_data.erase_contact(runtime.db, actor=actor, contact_id=contact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
