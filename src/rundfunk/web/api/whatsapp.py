"""WhatsApp channel extras: templates, business profile, media upload, growth links."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from rundfunk.services import templates as template_service
from rundfunk.services import whatsapp as service
from rundfunk.web.api.fields import REQUEST, PathId
from rundfunk.web.deps import ActorDep, AdminDep, EditorDep, RuntimeDep
from rundfunk.web.errors import ErrorResponse

router = APIRouter(
    prefix="/channels",
    tags=["whatsapp"],
    responses={
        502: {
            "model": ErrorResponse,
            "description": "WhatsApp refused or could not be reached (code platform_error).",
        }
    },
)

TopicQuery = Annotated[
    str | None, Query(min_length=1, max_length=64, description="A topic key; none: all news.")
]


class TemplateParameters(BaseModel):
    body: int
    header: int
    header_format: str | None = None
    url_buttons: int


class Template(BaseModel):
    name: str
    language: str
    category: str = Field(description="MARKETING | UTILITY | AUTHENTICATION")
    status: str = Field(description="APPROVED | PAUSED | DISABLED | PENDING | REJECTED")
    components: list[dict[str, Any]]
    parameters: TemplateParameters = Field(description="How many parameters sending needs.")


class TemplateList(BaseModel):
    items: list[Template]


class TemplateSync(TemplateList):
    synced: int


@router.post("/{channel_id}/templates/sync", response_model=TemplateSync)
async def sync_templates(channel_id: PathId, actor: EditorDep, runtime: RuntimeDep) -> Any:
    """Fetch the business account's templates from WhatsApp now (also done hourly)."""
    synced = await service.sync_templates(
        runtime.db, runtime.registry, actor=actor, channel_id=channel_id
    )
    items = await template_service.list_templates(runtime.db, actor=actor, channel_id=channel_id)
    return {"synced": synced, "items": items}


@router.get("/{channel_id}/templates", response_model=TemplateList)
async def list_templates(channel_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    items = await template_service.list_templates(runtime.db, actor=actor, channel_id=channel_id)
    return {"items": items}


class ProfileUpdate(BaseModel):
    model_config = REQUEST

    about: str | None = Field(default=None, max_length=139)
    address: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=128)
    websites: list[str] | None = Field(
        default=None,
        max_length=2,
        description="At most 2; left out: the workspace's imprint and privacy-policy URLs.",
    )
    vertical: str | None = Field(default=None, description="e.g. RETAIL, NONPROFIT, OTHER")


class Profile(BaseModel):
    profile: dict[str, Any]
    imprint_url: str | None = None
    privacy_url: str | None = None


@router.get("/{channel_id}/profile", response_model=Profile)
async def get_profile(channel_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    """The number's WhatsApp business profile, with the workspace's imprint URLs."""
    return await service.get_profile(
        runtime.db, runtime.registry, actor=actor, channel_id=channel_id
    )


@router.patch("/{channel_id}/profile", response_model=Profile)
async def update_profile(
    channel_id: PathId, body: ProfileUpdate, actor: AdminDep, runtime: RuntimeDep
) -> Any:
    return await service.update_profile(
        runtime.db,
        runtime.registry,
        actor=actor,
        channel_id=channel_id,
        fields=body.model_dump(exclude_none=True),
    )


class Media(BaseModel):
    media_id: str = Field(description="Send it by this id (media_id) for 30 days.")
    media_kind: str = Field(description="image | video | audio | document | sticker")
    mime_type: str
    size: int


@router.post("/{channel_id}/media", response_model=Media, status_code=201)
async def upload_media(
    channel_id: PathId,
    actor: ActorDep,
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="The file (multipart/form-data).")],
) -> Any:
    """Upload a file to WhatsApp; the limits are WhatsApp's (image 5 MB, video 16 MB, …)."""
    data = await file.read()
    return await service.upload_media(
        runtime.db,
        runtime.registry,
        actor=actor,
        channel_id=channel_id,
        data=data,
        mime_type=(file.content_type or "application/octet-stream").split(";")[0].strip(),
        filename=file.filename or "file",
    )


class GrowthLink(BaseModel):
    topic: str | None = Field(description="The topic key; null: all news.")
    name: str
    text: str = Field(description="What the link pre-fills: START or START <topic>.")
    url: str = Field(description="https://wa.me/<number>?text=START%20<topic>")
    qr_png: str
    qr_svg: str


class GrowthLinkList(BaseModel):
    items: list[GrowthLink]


@router.get("/{channel_id}/links", response_model=GrowthLinkList)
async def growth_links(channel_id: PathId, actor: ActorDep, runtime: RuntimeDep) -> Any:
    """Click-to-chat links (and their QR codes) that open WhatsApp with START typed in."""
    items = await service.growth_links(runtime.db, actor=actor, channel_id=channel_id)
    base = f"/api/v1/channels/{channel_id}/links/qr"
    for item in items:
        query = f"?topic={item['topic']}" if item["topic"] else ""
        item["qr_png"] = f"{base}.png{query}"
        item["qr_svg"] = f"{base}.svg{query}"
    return {"items": items}


@router.get(
    "/{channel_id}/links/qr.{fmt}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
)
async def growth_qr(
    channel_id: PathId,
    fmt: Literal["png", "svg"],
    actor: ActorDep,
    runtime: RuntimeDep,
    topic: TopicQuery = None,
) -> Response:
    image = await service.qr_code(
        runtime.db, actor=actor, channel_id=channel_id, topic=topic, kind=fmt
    )
    media = "image/svg+xml" if fmt == "svg" else "image/png"
    return Response(image, media_type=media)
