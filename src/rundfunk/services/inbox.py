"""The team inbox: private conversations, agent replies, notes, assignment, resolution.

A conversation is open (waiting for the team), pending (waiting for the contact; the
contact's next message opens it again) or resolved. ``mark_seen`` records when a
member last opened the thread: inbound messages after that are unread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.core.window import window_closes_at, window_open
from rundfunk.db.changes import changed
from rundfunk.db.session import Database
from rundfunk.db.tables import channels, contacts, conversations, members, messages
from rundfunk.db.types import utcnow
from rundfunk.services import audit, templates
from rundfunk.services.actors import Actor
from rundfunk.services.channels import service_window
from rundfunk.services.content import channel_kind, compose
from rundfunk.services.errors import Conflict, Invalid, NotFound
from rundfunk.services.media import check_media_url
from rundfunk.services.outbox import queue_message

STATUSES = ("open", "pending", "resolved")
MAX_TEXT = 4096

_CONVERSATION = (
    conversations.c.id,
    conversations.c.channel_id,
    conversations.c.contact_id,
    contacts.c.name.label("contact_name"),
    contacts.c.address.label("contact_address"),
    conversations.c.status,
    conversations.c.assignee_id,
    conversations.c.last_inbound_at,
    conversations.c.last_message_at,
    conversations.c.created_at,
)
_MESSAGE = (
    messages.c.id,
    messages.c.direction,
    messages.c.kind,
    messages.c.text,
    messages.c.media_url,
    messages.c.status,
    messages.c.author_id,
    messages.c.error_reason,
    messages.c.created_at,
)


def _conversations() -> Any:
    return select(*_CONVERSATION).join(contacts, contacts.c.id == conversations.c.contact_id)


async def list_conversations(
    db: Database,
    *,
    actor: Actor,
    status: str | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    channel_id: int | None = None,
    after_id: int = 0,
    limit: int = 50,
) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    query = (
        _conversations()
        .where(conversations.c.workspace_id == actor.workspace_id, conversations.c.id > after_id)
        .order_by(conversations.c.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(conversations.c.status == status)
    if assignee_id is not None:
        query = query.where(conversations.c.assignee_id == assignee_id)
    if unassigned:
        query = query.where(conversations.c.assignee_id.is_(None))
    if channel_id is not None:
        query = query.where(conversations.c.channel_id == channel_id)
    async with db.read() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def _get(conn: AsyncConnection, actor: Actor, conversation_id: int) -> dict[str, Any]:
    row = (
        await conn.execute(
            _conversations().where(
                conversations.c.id == conversation_id,
                conversations.c.workspace_id == actor.workspace_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no conversation {conversation_id}")
    return dict(row._mapping)


@dataclass(frozen=True)
class _ReplyState:
    """What decides whether an agent may send free text into a conversation now."""

    channel_id: int
    channel_disabled: str | None  # the reason, when the channel is disabled
    blocked: bool
    last_inbound_at: datetime | None
    window: timedelta | None  # None: the channel has no customer-service window

    def window_open(self, now: datetime) -> bool:
        return self.window is None or window_open(self.last_inbound_at, now, self.window)

    def window_closes_at(self) -> datetime | None:
        return None if self.window is None else window_closes_at(self.last_inbound_at, self.window)

    def check(
        self, now: datetime, *, template: bool = False, known: list[str] | None = None
    ) -> None:
        """Raise unless this reply may be queued at ``now``: free text only inside the
        window; outside it an approved template (``known`` names them)."""
        if self.channel_disabled is not None:
            raise Conflict(f"channel {self.channel_id} is disabled: {self.channel_disabled}")
        if self.blocked:
            raise Conflict("this contact is blocked; unblock them before replying")
        if not template and not self.window_open(now):
            assert self.window is not None
            hours = f"{self.window.total_seconds() / 3600:g}"
            since = (
                f"the contact last wrote at {self.last_inbound_at.isoformat()}"
                if self.last_inbound_at is not None
                else "the contact has never written"
            )
            names = ", ".join(known or []) or "none synced yet"
            raise Invalid(
                f"the {hours}-hour window is closed: {since}; only an approved template may be "
                f"sent (give template {{name, language, body_parameters}}); approved: {names}"
            )


async def _reply_state(conn: AsyncConnection, conversation: dict[str, Any]) -> _ReplyState:
    row = (
        await conn.execute(
            select(
                channels.c.kind,
                channels.c.settings,
                channels.c.status,
                channels.c.status_reason,
                contacts.c.blocked,
                contacts.c.last_inbound_at,
            )
            .join(channels, channels.c.id == contacts.c.channel_id)
            .where(contacts.c.id == conversation["contact_id"])
        )
    ).one()
    # Any message from the person opens the window, START or HELP too, but only chat
    # moves the conversation's own timestamp: the later of the two counts.
    seen = [t for t in (conversation["last_inbound_at"], row.last_inbound_at) if t is not None]
    return _ReplyState(
        channel_id=conversation["channel_id"],
        channel_disabled=(
            None if row.status == "active" else row.status_reason or "no reason given"
        ),
        blocked=row.blocked,
        last_inbound_at=max(seen, default=None),
        window=service_window(row.kind, row.settings),
    )


async def get_conversation(db: Database, *, actor: Actor, conversation_id: int) -> dict[str, Any]:
    """One conversation, with whether free text may be sent now (``window_open``) and
    until when (``window_closes_at``; None when the channel has no window)."""
    async with db.read() as conn:
        conversation = await _get(conn, actor, conversation_id)
        state = await _reply_state(conn, conversation)
    return {
        **conversation,
        "window_open": state.window_open(utcnow()),
        "window_closes_at": state.window_closes_at(),
    }


async def list_messages(
    db: Database, *, actor: Actor, conversation_id: int, after_id: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    async with db.read() as conn:
        await _get(conn, actor, conversation_id)
        rows = await conn.execute(
            select(*_MESSAGE)
            .where(messages.c.conversation_id == conversation_id, messages.c.id > after_id)
            .order_by(messages.c.id)
            .limit(limit)
        )
        return [dict(r._mapping) for r in rows]


def _check_text(text: str) -> str:
    if not text.strip():
        raise Invalid("text must not be empty")
    if len(text) > MAX_TEXT:
        raise Invalid(f"text is longer than {MAX_TEXT} characters")
    return text


async def _message(conn: AsyncConnection, message_id: int) -> dict[str, Any]:
    row = (await conn.execute(select(*_MESSAGE).where(messages.c.id == message_id))).one()
    return dict(row._mapping)


async def reply(
    db: Database,
    *,
    actor: Actor,
    conversation_id: int,
    text: str | None,
    media_url: str | None = None,
    template: Mapping[str, Any] | None = None,
    media_id: str | None = None,
    media_kind: str | None = None,
    filename: str | None = None,
    preview_url: bool = False,
) -> dict[str, Any]:
    """Queue an agent's answer; the dispatcher sends it to this one contact only.

    Refused up front rather than failed at send time: on a disabled channel, to a
    blocked contact, and outside the channel's customer-service window unless it is
    an approved template (the refusal names the templates that may be used).
    """
    if text is not None:
        _check_text(text)
    check_media_url(media_url)
    async with db.write() as conn:
        changed(conn, actor.workspace_id)
        conversation = await _get(conn, actor, conversation_id)
        channel_id = conversation["channel_id"]
        state = await _reply_state(conn, conversation)
        now = utcnow()
        known = None if state.window_open(now) else await templates.sendable_names(conn, channel_id)
        state.check(now, template=template is not None, known=known)
        stored_text, content = await compose(
            conn,
            kind=await channel_kind(conn, channel_id, actor.workspace_id),
            channel_id=channel_id,
            text=text,
            media_url=media_url,
            template=template,
            media_id=media_id,
            media_kind=media_kind,
            filename=filename,
            preview_url=preview_url,
        )
        message_id = await queue_message(
            conn,
            workspace_id=actor.workspace_id,
            channel_id=channel_id,
            contact_id=conversation["contact_id"],
            conversation_id=conversation_id,
            text=stored_text,
            media_url=media_url,
            author_id=actor.member_id,
            kind="template" if template is not None else "text",
            payload=content,
        )
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(last_message_at=utcnow())
        )
        await audit.record(
            conn, actor, "conversation.reply", target_type="conversation", target_id=conversation_id
        )
        return await _message(conn, message_id)


async def add_note(
    db: Database, *, actor: Actor, conversation_id: int, text: str
) -> dict[str, Any]:
    """An internal note: shown to the team, never sent."""
    _check_text(text)
    async with db.write() as conn:
        changed(conn, actor.workspace_id)
        conversation = await _get(conn, actor, conversation_id)
        result = await conn.execute(
            messages.insert().values(
                workspace_id=actor.workspace_id,
                channel_id=conversation["channel_id"],
                contact_id=conversation["contact_id"],
                conversation_id=conversation_id,
                direction="note",
                kind="text",
                text=text,
                status="stored",
                author_id=actor.member_id,
                attempts=0,
                created_at=utcnow(),
            )
        )
        assert result.inserted_primary_key is not None
        return await _message(conn, int(result.inserted_primary_key[0]))


async def assign(
    db: Database, *, actor: Actor, conversation_id: int, member_id: int | None
) -> dict[str, Any]:
    async with db.write() as conn:
        changed(conn, actor.workspace_id)
        await _get(conn, actor, conversation_id)
        if member_id is not None:
            found = await conn.scalar(
                select(members.c.id).where(
                    members.c.id == member_id, members.c.workspace_id == actor.workspace_id
                )
            )
            if found is None:
                raise NotFound(f"no member {member_id}")
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(assignee_id=member_id)
        )
        await audit.record(
            conn,
            actor,
            "conversation.assign",
            target_type="conversation",
            target_id=conversation_id,
            details={"member_id": member_id},
        )
        return await _get(conn, actor, conversation_id)


_STATUS_ACTIONS = {"open": "reopen", "pending": "pending", "resolved": "resolve"}


async def _set_status(
    db: Database, actor: Actor, conversation_id: int, status: str
) -> dict[str, Any]:
    async with db.write() as conn:
        changed(conn, actor.workspace_id)
        await _get(conn, actor, conversation_id)
        await conn.execute(
            update(conversations).where(conversations.c.id == conversation_id).values(status=status)
        )
        await audit.record(
            conn,
            actor,
            f"conversation.{_STATUS_ACTIONS[status]}",
            target_type="conversation",
            target_id=conversation_id,
        )
        return await _get(conn, actor, conversation_id)


async def resolve(db: Database, *, actor: Actor, conversation_id: int) -> dict[str, Any]:
    return await _set_status(db, actor, conversation_id, "resolved")


async def reopen(db: Database, *, actor: Actor, conversation_id: int) -> dict[str, Any]:
    return await _set_status(db, actor, conversation_id, "open")


async def set_pending(db: Database, *, actor: Actor, conversation_id: int) -> dict[str, Any]:
    """Waiting for the contact: the contact's next message opens the conversation again."""
    return await _set_status(db, actor, conversation_id, "pending")


async def set_status(
    db: Database, *, actor: Actor, conversation_id: int, status: str
) -> dict[str, Any]:
    """Open, pending or resolved, by name (the console's status buttons)."""
    if status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", field="status")
    return await _set_status(db, actor, conversation_id, status)


async def mark_seen(db: Database, *, actor: Actor, conversation_id: int) -> None:
    """A member opened the thread: every message received until now counts as read."""
    async with db.write() as conn:
        changed(conn, actor.workspace_id)
        await _get(conn, actor, conversation_id)
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(agent_last_seen_at=utcnow())
        )
