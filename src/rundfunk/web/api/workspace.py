"""The caller's workspace: its settings (name, legal links, confirmation texts) and members."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rundfunk.services import workspaces as service
from rundfunk.web.api.fields import MAX_TEXT, MAX_URL, REQUEST, Name
from rundfunk.web.deps import ActorDep, AdminDep, RuntimeDep

router = APIRouter(tags=["workspace"])


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
    return value


def _optional_url(value: str) -> str:
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL, or empty")
    return value


Url = Annotated[str, Field(max_length=MAX_URL), AfterValidator(_optional_url)]
Template = Annotated[
    str,
    Field(
        max_length=MAX_TEXT,
        description="May use {workspace}, {privacy_url}, {imprint_url}; empty: the default.",
    ),
]


class WorkspaceUpdate(BaseModel):
    model_config = REQUEST

    name: Name | None = None
    timezone: Annotated[str, Field(max_length=64), AfterValidator(_timezone)] | None = None
    privacy_url: Url | None = None
    imprint_url: Url | None = None
    welcome_text: Template | None = None
    goodbye_text: Template | None = None
    help_text: Template | None = None


class Workspace(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    name: str
    timezone: str
    privacy_url: str
    imprint_url: str
    welcome_text: str = Field(description="Sent to a person who opts in.")
    goodbye_text: str = Field(description="Sent to a person who opts out.")
    help_text: str = Field(description="Sent on HELP.")


class Member(BaseModel):
    id: int
    email: str
    name: str
    role: str = Field(description="owner | admin | editor | agent")


class MemberList(BaseModel):
    items: list[Member]


@router.get("/workspace", response_model=Workspace)
async def get_workspace(actor: ActorDep, runtime: RuntimeDep) -> Any:
    settings = await service.get_settings(runtime.db, actor.workspace_id)
    return {**settings, "id": actor.workspace_id}


@router.patch("/workspace", response_model=Workspace)
async def update_workspace(body: WorkspaceUpdate, actor: AdminDep, runtime: RuntimeDep) -> Any:
    """Change only the fields sent; admin or owner."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    settings = await service.update_settings(runtime.db, actor=actor, changes=changes)
    return {**settings, "id": actor.workspace_id}


@router.get("/members", response_model=MemberList)
async def list_members(actor: AdminDep, runtime: RuntimeDep) -> Any:
    return {"items": await service.list_members(runtime.db, actor=actor)}
