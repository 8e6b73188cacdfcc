"""The team inbox: private conversations, their messages, replies, notes, assignment.

A reply is queued and sent by the dispatcher (woken here); a note stays internal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from rundfunk.services import inbox as service
from rundfunk.services.errors import Invalid
from rundfunk.web.api.fields import (
    MAX_ID,
    PAGE_LIMIT_MAX,
    REQUEST,
    AfterId,
    Id,
    MediaUrl,
    MessageText,
    PathId,
    RichContent,
    next_after_id,
)
from rundfunk.web.deps import ActorDep, RuntimeDep

router = APIRouter(prefix="/conversations", tags=["conversations"])

ConversationStatus = Literal["open", "pending", "resolved"]


class Conversation(BaseModel):
    id: int
    channel_id: int
    contact_id: int
    contact_name: str | None = None
    contact_address: str
    status: ConversationStatus
    assignee_id: int | None = None
    last_inbound_at: datetime | None = None
    last_message_at: datetime
    created_at: datetime
    window_open: bool | None = Field(
        default=None,
        description="GET one conversation: whether free text may be sent now (the "
        "messenger's customer-service window); true when the channel has no window.",
    )
    window_closes_at: datetime | None = Field(
        default=None, description="GET one conversation: when the window closes, if it can."
    )


class ConversationPage(BaseModel):
    items: list[Conversation]
    next_after_id: int | None = Field(description="Pass as after_id for the next page.")


class Message(BaseModel):
    id: int
    direction: Literal["in", "out", "note"]
    kind: str
    text: str | None = None
    media_url: str | None = None
    status: str = Field(description="in: received; out: queued ... read | failed; note: stored")
    author_id: int | None = None
    error_reason: str | None = None
    created_at: datetime


class MessagePage(BaseModel):
    items: list[Message]
    next_after_id: int | None = Field(description="Pass as after_id for the next page.")


class ReplyCreate(RichContent):
    model_config = REQUEST

    text: MessageText | None = Field(
        default=None, description="The answer; a caption when media is sent."
    )
    media_url: MediaUrl | None = None


class NoteCreate(BaseModel):
    model_config = REQUEST

    text: MessageText


class Assignment(BaseModel):
    model_config = REQUEST

    member_id: Id | None = Field(description="The member to assign; null to unassign.")


@router.get("", response_model=ConversationPage)
async def list_conversations(
    actor: ActorDep,
    runtime: RuntimeDep,
    status: ConversationStatus | None = None,
    assignee_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    unassigned: bool = False,
    channel_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    after_id: Annotated[AfterId, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 50,
) -> Any:
    if unassigned and assignee_id is not None:
        raise Invalid("use either assignee_id or unassigned=true, not both")
    items = await service.list_conversations(
        runtime.db,
        actor=actor,
        status=status,
        assignee_id=assignee_id,
        unassigned=unassigned,
        channel_id=channel_id,
        after_id=after_id,
        limit=limit,
    )
    return {"items": items, "next_after_id": next_after_id(items, limit)}


@router.get("/{conversation_id}", response_model=Conversation)
async def get_conversation(conversation_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    return await service.get_conversation(runtime.db, actor=actor, conversation_id=conversation_id)


@router.get("/{conversation_id}/messages", response_model=MessagePage)
async def list_messages(
    conversation_id: PathId,
    actor: ActorDep,
    runtime: RuntimeDep,
    after_id: Annotated[AfterId, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> Any:
    items = await service.list_messages(
        runtime.db, actor=actor, conversation_id=conversation_id, after_id=after_id, limit=limit
    )
    return {"items": items, "next_after_id": next_after_id(items, limit)}


@router.post(
    "/{conversation_id}/messages", status_code=status.HTTP_201_CREATED, response_model=Message
)
async def reply(
    conversation_id: PathId, body: ReplyCreate, actor: ActorDep, runtime: RuntimeDep
) -> Any:
    """Answer the contact privately; the message is queued and sent by the dispatcher."""
    message = await service.reply(
        runtime.db,
        actor=actor,
        conversation_id=conversation_id,
        text=body.text,
        media_url=body.media_url,
        **body.rich(),
    )
    runtime.wake()
    return message


@router.post(
    "/{conversation_id}/notes", status_code=status.HTTP_201_CREATED, response_model=Message
)
async def add_note(
    conversation_id: PathId, body: NoteCreate, actor: ActorDep, runtime: RuntimeDep
) -> Any:
    """An internal note for the team; never sent to the contact."""
    return await service.add_note(
        runtime.db, actor=actor, conversation_id=conversation_id, text=body.text
    )


@router.post("/{conversation_id}/assign", response_model=Conversation)
async def assign(
    conversation_id: PathId, body: Assignment, actor: ActorDep, runtime: RuntimeDep
) -> Any:
    return await service.assign(
        runtime.db, actor=actor, conversation_id=conversation_id, member_id=body.member_id
    )


@router.post("/{conversation_id}/resolve", response_model=Conversation)
async def resolve(conversation_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    return await service.resolve(runtime.db, actor=actor, conversation_id=conversation_id)


@router.post("/{conversation_id}/reopen", response_model=Conversation)
async def reopen(conversation_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    return await service.reopen(runtime.db, actor=actor, conversation_id=conversation_id)
