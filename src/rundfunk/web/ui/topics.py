"""The console's topics page (editors and up): the interests subscribers choose with
``START <key>``, with their subscriber counts; create, rename and delete them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from rundfunk.services import topics as service
from rundfunk.services.errors import NotFound, ServiceError
from rundfunk.services.sessions import SessionMember
from rundfunk.web.deps import DatabaseDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import errors_of, page, redirect
from rundfunk.web.ui.session import EditorDep

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]


async def _page(
    request: Request,
    member: SessionMember,
    db: DatabaseDep,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    renaming: dict[str, Any] | None = None,
    notice: str = "",
) -> Response:
    items = await service.list_topics_with_counts(db, actor=member.actor)
    return page(
        request,
        "topics/list.html",
        member=member,
        status=status,
        items=items,
        errors=errors or {},
        values=values or {"key": "", "name": ""},
        renaming=renaming or {},
        notice=notice,
    )


@router.get("/topics")
async def list_page(request: Request, member: EditorDep, db: DatabaseDep) -> Response:
    return await _page(request, member, db)


@router.post("/topics")
async def create(
    request: Request, member: EditorDep, db: DatabaseDep, key: Text = "", name: Text = ""
) -> Response:
    try:
        await service.create_topic(db, actor=member.actor, key=key, name=name)
    except ServiceError as exc:
        values = {"key": key, "name": name}
        return await _page(request, member, db, status=422, errors=errors_of(exc), values=values)
    return redirect(request, "/topics", flash=N_("Topic created."))


@router.post("/topics/{topic_id}/rename")
async def rename(
    request: Request, topic_id: int, member: EditorDep, db: DatabaseDep, name: Text = ""
) -> Response:
    try:
        await service.rename_topic(db, actor=member.actor, topic_id=topic_id, name=name)
    except ServiceError as exc:
        if exc.field is None:
            raise
        renaming = {"id": topic_id, "name": name, "error": exc.message}
        return await _page(request, member, db, status=422, renaming=renaming)
    return redirect(request, "/topics", flash=N_("Topic renamed."))


@router.post("/topics/{topic_id}/delete")
async def delete(request: Request, topic_id: int, member: EditorDep, db: DatabaseDep) -> Response:
    try:
        await service.delete_topic(db, actor=member.actor, topic_id=topic_id)
    except NotFound:
        raise
    except ServiceError as exc:
        return await _page(request, member, db, status=409, notice=exc.message)
    return redirect(request, "/topics", flash=N_("Topic deleted."))
