"""Channels: connect a messenger account (the sandbox, for now), list and show them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from rundfunk.services import channels as service
from rundfunk.web.api.fields import REQUEST, Name, PathId
from rundfunk.web.deps import ActorDep, AdminDep, RuntimeDep

router = APIRouter(prefix="/channels", tags=["channels"])


class ChannelCreate(BaseModel):
    model_config = REQUEST

    kind: Annotated[str, Field(min_length=1, max_length=16, examples=["sandbox"])]
    name: Name
    settings: dict[str, Any] | None = Field(
        default=None,
        description="Per-kind settings: keywords, throughput, sandbox behaviour.",
    )
    credentials: dict[str, str] | None = Field(
        default=None,
        description="Access tokens and secrets; stored encrypted, never returned.",
    )


class Channel(BaseModel):
    id: int
    kind: str
    name: str
    status: str = Field(description="active | disabled")
    status_reason: str | None = None


class ChannelList(BaseModel):
    items: list[Channel]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Channel)
async def create_channel(body: ChannelCreate, actor: AdminDep, runtime: RuntimeDep) -> Any:
    return await service.create_channel(
        runtime.db,
        actor=actor,
        kind=body.kind,
        name=body.name,
        settings=body.settings,
        credentials=body.credentials,
        box=runtime.box,
    )


@router.get("", response_model=ChannelList)
async def list_channels(actor: ActorDep, runtime: RuntimeDep) -> Any:
    return {"items": await service.list_channels(runtime.db, actor=actor)}


@router.get("/{channel_id}", response_model=Channel)
async def get_channel(channel_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    return await service.get_channel(runtime.db, actor=actor, channel_id=channel_id)
