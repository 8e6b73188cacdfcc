"""What the console's inbox shows: conversation lists with a preview and an unread
marker, a thread with its authors, the members one may assign, and the cheap
fingerprints the live pages poll.

Reads only; every change goes through ``services.inbox``. Everything is scoped to
the actor's workspace; another workspace's conversation is ``NotFound``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.core.templates import TemplateShape
from rundfunk.db.session import Database
from rundfunk.db.tables import channels, contacts, conversations, members, messages
from rundfunk.services import inbox, templates
from rundfunk.services.actors import Actor
from rundfunk.services.channels import service_window
from rundfunk.services.errors import Invalid, NotFound

# The inbox's tabs: a status, or open-and-pending work by assignee.
VIEWS = ("open", "pending", "resolved", "mine", "unassigned")
LIST_LIMIT = 100
THREAD_LIMIT = 200
_CHAT = ("in", "out")


def unread(last_inbound_at: datetime | None, seen_at: datetime | None) -> bool:
    """The contact wrote after a member last opened the thread (or nobody ever did)."""
    return last_inbound_at is not None and (seen_at is None or last_inbound_at > seen_at)


def _view_filter(actor: Actor, view: str) -> list[Any]:
    if view not in VIEWS:
        raise Invalid(f"view must be one of {', '.join(VIEWS)}", field="view")
    if view in ("open", "pending", "resolved"):
        return [conversations.c.status == view]
    active = conversations.c.status != "resolved"
    if view == "mine":
        return [active, conversations.c.assignee_id == actor.member_id]
    return [active, conversations.c.assignee_id.is_(None)]


async def list_view(
    db: Database, *, actor: Actor, view: str = "open", limit: int = LIST_LIMIT
) -> list[dict[str, Any]]:
    """One tab of the inbox, newest activity first, with the last message as a preview."""
    last = messages.alias("last")
    assignee = members.alias("assignee")
    last_id = (
        select(func.max(messages.c.id))
        .where(messages.c.conversation_id == conversations.c.id, messages.c.direction.in_(_CHAT))
        .correlate(conversations)
        .scalar_subquery()
    )
    query = (
        select(
            conversations.c.id,
            conversations.c.status,
            conversations.c.assignee_id,
            conversations.c.last_inbound_at,
            conversations.c.last_message_at,
            conversations.c.agent_last_seen_at,
            contacts.c.name.label("contact_name"),
            contacts.c.address.label("contact_address"),
            channels.c.name.label("channel_name"),
            channels.c.kind.label("channel_kind"),
            assignee.c.name.label("assignee_name"),
            last.c.text.label("preview"),
            last.c.kind.label("preview_kind"),
            last.c.direction.label("preview_direction"),
        )
        .join(contacts, contacts.c.id == conversations.c.contact_id)
        .join(channels, channels.c.id == conversations.c.channel_id)
        .outerjoin(assignee, assignee.c.id == conversations.c.assignee_id)
        .outerjoin(last, last.c.id == last_id)
        .where(conversations.c.workspace_id == actor.workspace_id, *_view_filter(actor, view))
        .order_by(conversations.c.last_message_at.desc(), conversations.c.id.desc())
        .limit(limit)
    )
    async with db.read() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(query)]
    for row in rows:
        row["unread"] = unread(row["last_inbound_at"], row["agent_last_seen_at"])
    return rows


async def view_counts(db: Database, *, actor: Actor) -> dict[str, int]:
    """How many conversations each tab holds (the tabs' numbers)."""
    active = conversations.c.status != "resolved"

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    query = select(
        count(conversations.c.status == "open"),
        count(conversations.c.status == "pending"),
        count(conversations.c.status == "resolved"),
        count(active & (conversations.c.assignee_id == (actor.member_id or 0))),
        count(active & conversations.c.assignee_id.is_(None)),
    ).where(conversations.c.workspace_id == actor.workspace_id)
    async with db.read() as conn:
        row = (await conn.execute(query)).one()
    return {view: int(value) for view, value in zip(VIEWS, row, strict=True)}


async def list_fingerprint(db: Database, *, actor: Actor) -> list[str]:
    """Changes whenever a conversation of the workspace appears, moves, changes status
    or assignee, or is opened by a member: the inbox list then reloads."""
    c = conversations.c
    query = select(
        func.count(),
        func.max(c.last_message_at),
        func.max(c.agent_last_seen_at),
        func.sum(case((c.status == "open", 1), else_=0)),
        func.sum(case((c.status == "pending", 1), else_=0)),
        func.count(c.assignee_id),
        func.sum(func.coalesce(c.assignee_id, 0)),
    ).where(c.workspace_id == actor.workspace_id)
    async with db.read() as conn:
        row = (await conn.execute(query)).one()
    return [str(value) for value in row]


async def _owned(conn: AsyncConnection, actor: Actor, conversation_id: int) -> Any:
    row = (
        await conn.execute(
            select(
                conversations.c.status,
                conversations.c.assignee_id,
                conversations.c.last_inbound_at,
            ).where(
                conversations.c.id == conversation_id,
                conversations.c.workspace_id == actor.workspace_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no conversation {conversation_id}")
    return row


async def thread_fingerprint(db: Database, *, actor: Actor, conversation_id: int) -> list[str]:
    """Changes with a new message, a message's delivery status, the conversation's
    status or assignee: the open thread then reloads."""
    async with db.read() as conn:
        head = await _owned(conn, actor, conversation_id)
        rows = await conn.execute(
            select(messages.c.status, func.count(), func.max(messages.c.id))
            .where(messages.c.conversation_id == conversation_id)
            .group_by(messages.c.status)
            .order_by(messages.c.status)
        )
        return [str(value) for value in (*head, *(v for r in rows for v in r))]


async def details(db: Database, *, actor: Actor, conversation_id: int) -> dict[str, Any]:
    """The thread's header: ``inbox.get_conversation`` (with the window) plus the
    channel, the assignee's name and the unread state."""
    conversation = await inbox.get_conversation(db, actor=actor, conversation_id=conversation_id)
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(
                    channels.c.name,
                    channels.c.kind,
                    channels.c.settings,
                    conversations.c.agent_last_seen_at,
                    members.c.name.label("assignee_name"),
                )
                .select_from(conversations)
                .join(channels, channels.c.id == conversations.c.channel_id)
                .outerjoin(members, members.c.id == conversations.c.assignee_id)
                .where(conversations.c.id == conversation_id)
            )
        ).one()
    window = service_window(row.kind, row.settings)
    return {
        **conversation,
        "channel_name": row.name,
        "channel_kind": row.kind,
        "assignee_name": row.assignee_name,
        "agent_last_seen_at": row.agent_last_seen_at,
        "has_window": window is not None,
        "window_hours": None if window is None else f"{window.total_seconds() / 3600:g}",
    }


async def thread(db: Database, *, actor: Actor, conversation_id: int) -> list[dict[str, Any]]:
    """The newest messages and notes of one conversation, oldest first, with authors."""
    async with db.read() as conn:
        await _owned(conn, actor, conversation_id)
        rows = await conn.execute(
            select(
                messages.c.id,
                messages.c.direction,
                messages.c.kind,
                messages.c.text,
                messages.c.media_url,
                messages.c.status,
                messages.c.error_reason,
                messages.c.created_at,
                members.c.name.label("author_name"),
            )
            .outerjoin(members, members.c.id == messages.c.author_id)
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.id.desc())
            .limit(THREAD_LIMIT)
        )
        return [dict(r._mapping) for r in reversed(rows.all())]


async def assignable(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """The workspace's members, for the assignment picker."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(members.c.id, members.c.name, members.c.email)
            .where(members.c.workspace_id == actor.workspace_id)
            .order_by(members.c.name, members.c.id)
        )
        return [
            {"id": r.id, "name": r.name or r.email, "is_you": r.id == actor.member_id} for r in rows
        ]


async def sendable_templates(
    db: Database, *, actor: Actor, channel_id: int
) -> list[dict[str, Any]]:
    """Approved templates the reply box can send: text-only headers (media headers
    and URL-button parameters need the API)."""
    found = await templates.list_templates(db, actor=actor, channel_id=channel_id)
    return [
        {**t, "body": TemplateShape.of(t["components"]).body or ""}
        for t in found
        if t["status"] == "APPROVED"
        and t["parameters"]["header_format"] in (None, "TEXT")
        and not t["parameters"]["url_buttons"]
    ]
