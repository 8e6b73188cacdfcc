"""Canned responses in the console: the list with a form to add one, editing, deleting.

Every member (agent and up) may manage them, as ``services.canned`` allows; the
reply box inserts them by short code. Routes join ``inbox.router``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from rundfunk.services import canned
from rundfunk.services.errors import ServiceError
from rundfunk.web.deps import DatabaseDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import errors_of, page, redirect
from rundfunk.web.ui.session import AgentDep

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]
LIST = "/inbox/canned"
ONE = "/inbox/canned/{canned_id:int}"


@router.get(LIST)
async def canned_page(request: Request, member: AgentDep, db: DatabaseDep) -> Response:
    items = await canned.list_canned(db, actor=member.actor)
    return page(request, "inbox/canned.html", member=member, items=items, errors={}, values={})


@router.post(LIST)
async def create(
    request: Request,
    member: AgentDep,
    db: DatabaseDep,
    short_code: Text = "",
    text: Text = "",
) -> Response:
    try:
        await canned.create_canned(db, actor=member.actor, short_code=short_code, text=text)
    except ServiceError as exc:
        items = await canned.list_canned(db, actor=member.actor)
        return page(
            request,
            "inbox/canned.html",
            member=member,
            status=422,
            items=items,
            errors=errors_of(exc),
            values={"short_code": short_code, "text": text},
        )
    return redirect(request, LIST, flash=N_("The canned response is saved."))


@router.get(ONE)
async def edit_page(
    request: Request, canned_id: int, member: AgentDep, db: DatabaseDep
) -> Response:
    found = await canned.get_canned(db, actor=member.actor, canned_id=canned_id)
    return page(
        request, "inbox/canned_edit.html", member=member, item=found, errors={}, values=found
    )


@router.post(ONE)
async def update(
    request: Request,
    canned_id: int,
    member: AgentDep,
    db: DatabaseDep,
    short_code: Text = "",
    text: Text = "",
) -> Response:
    try:
        await canned.update_canned(
            db, actor=member.actor, canned_id=canned_id, short_code=short_code, text=text
        )
    except ServiceError as exc:
        found = await canned.get_canned(db, actor=member.actor, canned_id=canned_id)
        return page(
            request,
            "inbox/canned_edit.html",
            member=member,
            status=422,
            item=found,
            errors=errors_of(exc),
            values={"short_code": short_code, "text": text},
        )
    return redirect(request, LIST, flash=N_("The canned response is saved."))


@router.post(ONE + "/delete")
async def delete(request: Request, canned_id: int, member: AgentDep, db: DatabaseDep) -> Response:
    await canned.delete_canned(db, actor=member.actor, canned_id=canned_id)
    return redirect(request, LIST, flash=N_("The canned response is deleted."))
