"""The console's contacts pages: search and filter the people on the channels, one
person's page (status, tags, topics, consent history, conversation), and for admins
the data export (JSON download) and the erasure with its confirmation step.

Agents and up see contacts and edit tags; export and erasure are for admins and up.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response

from rundfunk.services import blocking, contact_data, topics
from rundfunk.services import contacts as service
from rundfunk.services.actors import Role
from rundfunk.services.channels import list_channels
from rundfunk.services.errors import ServiceError
from rundfunk.services.sessions import SessionMember
from rundfunk.web.deps import DatabaseDep
from rundfunk.web.ui.i18n import N_
from rundfunk.web.ui.render import errors_of, page, redirect
from rundfunk.web.ui.session import AdminDep, AgentDep

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
Text = Annotated[str, Form()]

STATUS_LABELS = {
    "subscribed": N_("Subscribed"),
    "unsubscribed": N_("Unsubscribed"),
    "none": N_("Never subscribed"),
}
KIND_LABELS = {"opt_in": N_("Opted in"), "opt_out": N_("Opted out")}
SOURCE_LABELS = {
    "keyword": N_("by keyword"),
    "api": N_("through the API"),
    "platform": N_("by the messenger platform"),
    "send_error": N_("after a sending error"),
}
DIRECTION_LABELS = {"in": N_("Received"), "out": N_("Sent"), "note": N_("Internal note")}


def _int(value: str) -> int | None:
    """A number from a query string, or None for anything else (no 422 for a typo)."""
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def actor_label(actor: str) -> tuple[str, str]:
    """(message to translate, number) for a consent event's actor."""
    kind, _, number = actor.partition(":")
    labels = {
        "contact": N_("the person"),
        "member": N_("team member #%(n)s"),
        "token": N_("API token #%(n)s"),
        "platform": N_("the messenger platform"),
        "system": N_("Rundfunk"),
        "cli": N_("the command line"),
    }
    return labels.get(kind, actor), number


@router.get("/contacts")
async def list_page(
    request: Request,
    member: AgentDep,
    db: DatabaseDep,
    q: str = "",
    channel: str = "",
    topic: str = "",
    status: str = "",
    tag: str = "",
    after: str = "",
) -> Response:
    actor = member.actor
    filters: dict[str, Any] = {
        "channel_id": _int(channel),
        "status": status if status in service.STATUSES else None,
        "topic_key": topic.strip().lower() or None,
        "search": q.strip()[:200] or None,
        "tag": tag.strip()[:40] or None,
    }
    after_id = _int(after) or 0
    items = await service.list_contacts(
        db, actor=actor, after_id=after_id, limit=PAGE_SIZE + 1, newest_first=True, **filters
    )
    more = len(items) > PAGE_SIZE
    items = items[:PAGE_SIZE]
    filtered = any(value is not None for value in filters.values())
    total = await service.count_contacts(db, actor=actor, **filters)
    everyone = await service.count_contacts(db, actor=actor) if filtered else total
    channels = await list_channels(db, actor=actor)
    query = {
        "q": q.strip(),
        "channel": str(filters["channel_id"] or ""),
        "topic": filters["topic_key"] or "",
        "status": filters["status"] or "",
        "tag": filters["tag"] or "",
    }
    return page(
        request,
        "contacts/list.html",
        member=member,
        items=items,
        total=total,
        everyone=everyone,
        filtered=filtered,
        query=query,
        next_after=items[-1]["id"] if more else None,
        paged=after_id > 0,
        channels=channels,
        channel_names={c["id"]: c["name"] for c in channels},
        topics=await topics.list_topics(db, actor=actor),
        tags=await service.known_tags(db, actor=actor),
        status_labels=STATUS_LABELS,
    )


async def _detail(
    request: Request,
    member: SessionMember,
    db: DatabaseDep,
    contact_id: int,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    tags_value: str | None = None,
) -> Response:
    actor = member.actor
    contact = await service.get_contact(db, actor=actor, contact_id=contact_id)
    talk = await service.recent_messages(db, actor=actor, contact_id=contact_id)
    while_blocked, blocked_total = await blocking.blocked_messages(
        db, actor=actor, contact_id=contact_id
    )
    channels = {c["id"]: c for c in await list_channels(db, actor=actor)}
    return page(
        request,
        "contacts/detail.html",
        member=member,
        status=status,
        contact=contact,
        channel=channels.get(contact["channel_id"]),
        talk=talk,
        while_blocked=while_blocked,  # the block section (``contact_blocking``)
        blocked_total=blocked_total,
        errors=errors or {},
        tags_value=", ".join(contact["tags"]) if tags_value is None else tags_value,
        can_manage=member.role.rank >= Role.ADMIN.rank,
        status_labels=STATUS_LABELS,
        kind_labels=KIND_LABELS,
        source_labels=SOURCE_LABELS,
        direction_labels=DIRECTION_LABELS,
        actor_label=actor_label,
    )


@router.get("/contacts/{contact_id}")
async def detail_page(
    request: Request, contact_id: int, member: AgentDep, db: DatabaseDep
) -> Response:
    return await _detail(request, member, db, contact_id)


@router.post("/contacts/{contact_id}/tags")
async def save_tags(
    request: Request, contact_id: int, member: AgentDep, db: DatabaseDep, tags: Text = ""
) -> Response:
    try:
        await service.set_tags(db, actor=member.actor, contact_id=contact_id, tags=tags)
    except ServiceError as exc:
        if exc.field is None:
            raise
        return await _detail(
            request, member, db, contact_id, status=422, errors=errors_of(exc), tags_value=tags
        )
    return redirect(request, f"/contacts/{contact_id}", flash=N_("Tags saved."))


@router.get("/contacts/{contact_id}/export.json")
async def export(contact_id: int, member: AdminDep, db: DatabaseDep) -> Response:
    data = await contact_data.export_contact(db, actor=member.actor, contact_id=contact_id)
    body = json.dumps(jsonable_encoder(data), ensure_ascii=False, indent=2)
    return Response(
        body,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="contact-{contact_id}.json"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/contacts/{contact_id}/erase")
async def erase_page(
    request: Request, contact_id: int, member: AdminDep, db: DatabaseDep
) -> Response:
    actor = member.actor
    contact = await service.get_contact(db, actor=actor, contact_id=contact_id)
    counts = await contact_data.erasure_preview(db, actor=actor, contact_id=contact_id)
    return page(request, "contacts/erase.html", member=member, contact=contact, counts=counts)


@router.post("/contacts/{contact_id}/erase")
async def erase(request: Request, contact_id: int, member: AdminDep, db: DatabaseDep) -> Response:
    await contact_data.erase_contact(db, actor=member.actor, contact_id=contact_id)
    return redirect(
        request, "/contacts", flash=N_("The contact and everything stored about them is erased.")
    )
