"""Channels: connect a messenger account (sandbox or WhatsApp), list, show, change."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from rundfunk.services import channels as service
from rundfunk.web.api.fields import REQUEST, Name, PathId
from rundfunk.web.deps import ActorDep, AdminDep, RuntimeDep
from rundfunk.worker.runtime import Runtime

router = APIRouter(prefix="/channels", tags=["channels"])

_CONFIG_HELP = (
    "The kind's configuration. WhatsApp: phone_number_id, waba_id, access_token, "
    "app_secret (both stored encrypted, never returned), and optionally api_version, "
    "verify_token (generated when "
    "left out), display_phone_number, throughput (messages/s, default 80, up to 1000), "
    "daily_recipient_cap (unique recipients per 24 h), pair_interval_seconds (default 6). "
    "The Graph API's address is the operator's setting (RUNDFUNK_WHATSAPP_API_BASE_URL): "
    "api_base_url is refused (422)."
)


class ChannelCreate(BaseModel):
    model_config = REQUEST

    kind: Annotated[
        str,
        Field(
            min_length=1,
            max_length=16,
            examples=["whatsapp"],
            # Documented as the kinds there are; the service refuses others by name.
            json_schema_extra={"enum": list(service.KINDS)},
        ),
    ]
    name: Name
    config: dict[str, Any] | None = Field(default=None, description=_CONFIG_HELP)
    settings: dict[str, Any] | None = Field(
        default=None,
        description="Per-kind settings: keywords, throughput, sandbox behaviour.",
    )
    credentials: dict[str, str] | None = Field(
        default=None,
        description="Secrets of other kinds; stored encrypted, never returned.",
    )


class ChannelUpdate(BaseModel):
    model_config = REQUEST

    name: Name | None = None
    config: dict[str, Any] | None = Field(
        default=None, description="Fields to change; the others keep their value."
    )
    status: Literal["active", "disabled"] | None = Field(
        default=None,
        description="active: send again after fixing what disabled it (e.g. a new token).",
    )


class Channel(BaseModel):
    id: int
    kind: str
    name: str
    status: str = Field(description="active | disabled")
    status_reason: str | None = Field(
        default=None, description="Why it was disabled (e.g. WhatsApp error 190)."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Settings, no secrets.")
    webhook_url: str | None = Field(
        default=None, description="Enter this as the callback URL in Meta's developer console."
    )
    verify_token: str | None = Field(
        default=None, description="The webhook verify token (shown to admins)."
    )


class ChannelList(BaseModel):
    items: list[Channel]


def _shown(channel: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    path = channel.pop("webhook_path", None)
    channel["webhook_url"] = f"{runtime.settings.public_url}{path}" if path else None
    return channel


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Channel)
async def create_channel(body: ChannelCreate, actor: AdminDep, runtime: RuntimeDep) -> Any:
    created = await service.create_channel(
        runtime.db,
        actor=actor,
        kind=body.kind,
        name=body.name,
        settings=body.settings,
        credentials=body.credentials,
        config=body.config,
        box=runtime.box,
    )
    return _shown(created, runtime)


@router.get("", response_model=ChannelList)
async def list_channels(actor: ActorDep, runtime: RuntimeDep) -> Any:
    found = await service.list_channels(runtime.db, actor=actor, box=runtime.box)
    return {"items": [_shown(c, runtime) for c in found]}


@router.get("/{channel_id}", response_model=Channel)
async def get_channel(channel_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    found = await service.get_channel(
        runtime.db, actor=actor, channel_id=channel_id, box=runtime.box
    )
    return _shown(found, runtime)


@router.patch("/{channel_id}", response_model=Channel)
async def update_channel(
    channel_id: PathId, body: ChannelUpdate, actor: AdminDep, runtime: RuntimeDep
) -> Any:
    """Rename, reconfigure (a fresh access token) or re-activate a disabled channel."""
    updated = await service.update_channel(
        runtime.db,
        actor=actor,
        channel_id=channel_id,
        box=runtime.box,
        name=body.name,
        config=body.config,
        status=body.status,
    )
    runtime.registry.forget(channel_id)
    runtime.wake()
    return _shown(updated, runtime)
