"""Topics: the interests subscribers choose with ``START <key>`` ("sport", "linie-7")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from rundfunk.services import topics as service
from rundfunk.web.api.fields import REQUEST, Name
from rundfunk.web.deps import ActorDep, EditorDep, RuntimeDep

router = APIRouter(prefix="/topics", tags=["topics"])


class TopicCreate(BaseModel):
    model_config = REQUEST

    key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=64,
            examples=["sport"],
            description="What subscribers type after START: letters, digits, '-' or '_'.",
            # The service's rule (it trims and lower-cases first), documented.
            json_schema_extra={"pattern": r"^\s*[A-Za-z0-9][A-Za-z0-9_-]{0,63}\s*$"},
        ),
    ]
    name: Name


class Topic(BaseModel):
    id: int
    key: str
    name: str


class TopicList(BaseModel):
    items: list[Topic]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Topic)
async def create_topic(body: TopicCreate, actor: EditorDep, runtime: RuntimeDep) -> Any:
    return await service.create_topic(runtime.db, actor=actor, key=body.key, name=body.name)


@router.get("", response_model=TopicList)
async def list_topics(actor: ActorDep, runtime: RuntimeDep) -> Any:
    return {"items": await service.list_topics(runtime.db, actor=actor)}
