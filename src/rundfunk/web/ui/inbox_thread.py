"""One conversation in the console: the live thread, the reply box (free text, or an
approved template once a WhatsApp window has closed), internal notes, assignment
and status. Opening the thread marks it seen. Routes join ``inbox.router``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from rundfunk.services import canned, inbox, inbox_views
from rundfunk.services.errors import Invalid, ServiceError
from rundfunk.services.sessions import SessionMember
from rundfunk.web.deps import DatabaseDep, RuntimeDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.live import stream
from rundfunk.web.ui.render import errors_of, page, redirect
from rundfunk.web.ui.session import AgentDep

router = APIRouter(include_in_schema=False)

Text = Annotated[str, Form()]
THREAD = "/inbox/{conversation_id:int}"

STATUS_LABELS = {
    "open": N_("Open"),
    "pending": N_("Pending"),
    "resolved": N_("Resolved"),
}
MESSAGE_STATUS_LABELS = {
    "queued": N_("queued"),
    "sending": N_("sending"),
    "sent": N_("sent"),
    "delivered": N_("delivered"),
    "read": N_("read"),
    "failed": N_("failed"),
}
STATUS_FLASH = {
    "open": N_("The conversation is open again."),
    "pending": N_("The conversation is pending until the contact answers."),
    "resolved": N_("The conversation is resolved."),
}


async def _thread_context(
    db: DatabaseDep, member: SessionMember, conversation_id: int
) -> dict[str, Any]:
    actor = member.actor
    conversation = await inbox_views.details(db, actor=actor, conversation_id=conversation_id)
    return {
        "conversation": conversation,
        "messages": await inbox_views.thread(db, actor=actor, conversation_id=conversation_id),
        "status_labels": STATUS_LABELS,
        "message_status_labels": MESSAGE_STATUS_LABELS,
    }


async def _page(
    request: Request,
    db: DatabaseDep,
    member: SessionMember,
    conversation_id: int,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    actor = member.actor
    context = await _thread_context(db, member, conversation_id)
    conversation = context["conversation"]
    templates = (
        await inbox_views.sendable_templates(db, actor=actor, channel_id=conversation["channel_id"])
        if conversation["channel_kind"] == "whatsapp"
        else []
    )
    return page(
        request,
        "inbox/thread.html",
        member=member,
        status=status,
        errors=errors or {},
        values=values or {},
        members=await inbox_views.assignable(db, actor=actor),
        canned=await canned.list_canned(db, actor=actor),
        templates=templates,
        **context,
    )


def _failed(exc: ServiceError, field: str) -> dict[str, str]:
    """A refusal next to the form's main field unless the service named another."""
    errors = errors_of(exc)
    if "_" in errors:
        errors = {field: errors["_"]}
    return errors


@router.get(THREAD)
async def thread_page(
    request: Request, conversation_id: int, member: AgentDep, db: DatabaseDep
) -> Response:
    await inbox.mark_seen(db, actor=member.actor, conversation_id=conversation_id)
    return await _page(request, db, member, conversation_id)


@router.get(THREAD + "/messages")
async def thread_fragment(
    request: Request, conversation_id: int, member: AgentDep, db: DatabaseDep
) -> Response:
    """The messages and the window state alone; the member is looking, so it is seen."""
    await inbox.mark_seen(db, actor=member.actor, conversation_id=conversation_id)
    context = await _thread_context(db, member, conversation_id)
    return page(request, "inbox/_thread.html", member=member, **context)


@router.get(THREAD + "/live")
async def thread_live(
    request: Request, conversation_id: int, member: AgentDep, db: DatabaseDep
) -> Response:
    actor = member.actor
    await inbox_views.thread_fingerprint(db, actor=actor, conversation_id=conversation_id)

    async def fingerprint() -> list[str]:
        return await inbox_views.thread_fingerprint(
            db, actor=actor, conversation_id=conversation_id
        )

    return stream(request, fingerprint, db=db, workspace_id=member.actor.workspace_id)


async def _canned_text(db: DatabaseDep, member: SessionMember, canned_id: str) -> str:
    """Without script the canned picker sends its id: its text is the reply."""
    if not canned_id.isdigit():
        return ""
    found = await canned.get_canned(db, actor=member.actor, canned_id=int(canned_id))
    return str(found["text"])


@router.post(THREAD + "/reply")
async def send_reply(
    request: Request,
    conversation_id: int,
    member: AgentDep,
    runtime: RuntimeDep,
    text: Text = "",
    canned_id: Text = "",
) -> Response:
    db = runtime.db
    try:
        if not text.strip():
            text = await _canned_text(db, member, canned_id)
        await inbox.reply(db, actor=member.actor, conversation_id=conversation_id, text=text)
    except ServiceError as exc:
        return await _page(
            request,
            db,
            member,
            conversation_id,
            status=422,
            errors=_failed(exc, "text"),
            values={"text": text},
        )
    runtime.wake()
    await inbox.mark_seen(db, actor=member.actor, conversation_id=conversation_id)
    return redirect(request, f"/inbox/{conversation_id}", flash=N_("Your reply is on its way."))


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


@router.post(THREAD + "/template")
async def send_template(
    request: Request,
    conversation_id: int,
    member: AgentDep,
    runtime: RuntimeDep,
    template: Text = "",
    body_parameters: Text = "",
    header_parameters: Text = "",
) -> Response:
    db = runtime.db
    values = {
        "template": template,
        "body_parameters": body_parameters,
        "header_parameters": header_parameters,
    }
    try:
        name, _, language = template.partition("|")
        if not name or not language:
            raise Invalid("choose a template", field="template")
        spec = {
            "name": name,
            "language": language,
            "body_parameters": _lines(body_parameters),
            "header_parameters": _lines(header_parameters),
        }
        await inbox.reply(
            db, actor=member.actor, conversation_id=conversation_id, text=None, template=spec
        )
    except ServiceError as exc:
        return await _page(
            request,
            db,
            member,
            conversation_id,
            status=422,
            errors=_failed(exc, "template"),
            values=values,
        )
    runtime.wake()
    return redirect(request, f"/inbox/{conversation_id}", flash=N_("The template is on its way."))


@router.post(THREAD + "/note")
async def add_note(
    request: Request, conversation_id: int, member: AgentDep, db: DatabaseDep, note: Text = ""
) -> Response:
    try:
        await inbox.add_note(db, actor=member.actor, conversation_id=conversation_id, text=note)
    except ServiceError as exc:
        return await _page(
            request,
            db,
            member,
            conversation_id,
            status=422,
            errors=_failed(exc, "note"),
            values={"note": note},
        )
    return redirect(
        request, f"/inbox/{conversation_id}", flash=N_("Your note is saved for the team.")
    )


@router.post(THREAD + "/assign")
async def assign(
    request: Request,
    conversation_id: int,
    member: AgentDep,
    db: DatabaseDep,
    member_id: Text = "",
) -> Response:
    try:
        if member_id and not member_id.isdigit():
            raise Invalid("choose a member of the team", field="member_id")
        await inbox.assign(
            db,
            actor=member.actor,
            conversation_id=conversation_id,
            member_id=int(member_id) if member_id else None,
        )
    except ServiceError as exc:
        return await _page(
            request, db, member, conversation_id, status=422, errors=_failed(exc, "member_id")
        )
    flash = N_("The conversation is assigned.") if member_id else N_("Nobody is assigned now.")
    return redirect(request, f"/inbox/{conversation_id}", flash=flash)


@router.post(THREAD + "/status")
async def set_status(
    request: Request, conversation_id: int, member: AgentDep, db: DatabaseDep, status: Text = ""
) -> Response:
    try:
        await inbox.set_status(
            db, actor=member.actor, conversation_id=conversation_id, status=status
        )
    except ServiceError as exc:
        return await _page(
            request, db, member, conversation_id, status=422, errors=_failed(exc, "status")
        )
    return redirect(request, f"/inbox/{conversation_id}", flash=STATUS_FLASH[status])
