"""The workspace's audit log: who created, sent, paused or cancelled what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from rundfunk.services import audit as service
from rundfunk.web.api.fields import PAGE_LIMIT_MAX, AfterId
from rundfunk.web.deps import AdminDep, RuntimeDep

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEntry(BaseModel):
    id: int
    actor: str = Field(description="token:<id>, member:<id>, cli, system or platform")
    action: str = Field(examples=["broadcast.send"])
    target_type: str | None = None
    target_id: int | None = None
    details: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_after_id: int | None = Field(description="Pass as after_id for the next page.")


@router.get("", response_model=AuditPage)
async def list_audit(
    actor: AdminDep,
    runtime: RuntimeDep,
    after_id: Annotated[AfterId, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT_MAX)] = 100,
) -> Any:
    items = await service.list_entries(runtime.db, actor=actor, after_id=after_id, limit=limit)
    return {"items": items, "next_after_id": items[-1]["id"] if len(items) == limit else None}
