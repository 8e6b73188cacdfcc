"""Blocking a contact: no broadcast, no reply, and nothing they write reaches the inbox.

``contacts.blocked`` is honoured where it matters: the audience and the last-moment
consent check leave a blocked contact out of every broadcast, the inbox refuses a
reply (``inbox``), and the inbound rules (``core.keywords``) ignore what they write —
START subscribes nobody, and no conversation is opened or reopened. Their messages are
still stored, with the status ``blocked`` and outside every conversation, counted on
the contact (``blocked_messages``) and in ``rundfunk_blocked_messages_total``, and
listed on the contact's page (``blocked_messages``).

Blocking also fails the replies still queued for the person and resolves their open
conversation, so it leaves the team's open inbox at once. Unblocking only lifts the
block: the person's subscription status is what it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.changes import changed
from rundfunk.db.session import Database
from rundfunk.db.tables import contacts, conversations, messages
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import NotFound

BLOCKED = "blocked"  # the inbound status of a message written while blocked
_REFUSED_REPLY = "not sent: the contact is blocked"


@dataclass(frozen=True)
class BlockState:
    contact_id: int
    blocked: bool
    blocked_at: datetime | None
    blocked_messages: int  # written while blocked, ever


@dataclass(frozen=True)
class BlockedMessage:
    id: int
    kind: str
    text: str | None
    media_url: str | None
    created_at: datetime


async def _state(conn: AsyncConnection, actor: Actor, contact_id: int) -> BlockState:
    row = (
        await conn.execute(
            select(
                contacts.c.id,
                contacts.c.blocked,
                contacts.c.blocked_at,
                contacts.c.blocked_messages,
            ).where(contacts.c.id == contact_id, contacts.c.workspace_id == actor.workspace_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"no contact {contact_id}")
    return BlockState(row.id, row.blocked, row.blocked_at, row.blocked_messages)


async def block_state(db: Database, *, actor: Actor, contact_id: int) -> BlockState:
    actor.require(Role.AGENT)
    async with db.read() as conn:
        return await _state(conn, actor, contact_id)


async def block_contact(db: Database, *, actor: Actor, contact_id: int) -> BlockState:
    """Block a contact (agents and up: they meet the trolls first). Blocking a blocked
    contact changes nothing and is not audited again."""
    actor.require(Role.AGENT)
    now = utcnow()
    async with db.write() as conn:
        state = await _state(conn, actor, contact_id)
        if state.blocked:
            return state
        await conn.execute(
            update(contacts)
            .where(contacts.c.id == contact_id)
            .values(blocked=True, blocked_at=now, updated_at=now)
        )
        # Replies still waiting to go out are not sent (one in flight may still be).
        failed = await conn.execute(
            update(messages)
            .where(
                messages.c.contact_id == contact_id,
                messages.c.direction == "out",
                messages.c.status == DeliveryStatus.QUEUED.value,
            )
            .values(status=DeliveryStatus.FAILED.value, error_reason=_REFUSED_REPLY)
        )
        resolved = await conn.execute(
            update(conversations)
            .where(conversations.c.contact_id == contact_id, conversations.c.status != "resolved")
            .values(status="resolved")
        )
        await audit.record(
            conn,
            actor,
            "contact.block",
            target_type="contact",
            target_id=contact_id,
            details={
                "replies_not_sent": int(failed.rowcount or 0),
                "conversation_resolved": bool(resolved.rowcount),
            },
        )
        changed(conn, actor.workspace_id)
    return BlockState(contact_id, True, now, state.blocked_messages)


async def unblock_contact(db: Database, *, actor: Actor, contact_id: int) -> BlockState:
    """Lift a block: what the person writes from now on reaches the inbox again."""
    actor.require(Role.AGENT)
    async with db.write() as conn:
        state = await _state(conn, actor, contact_id)
        if not state.blocked:
            return state
        await conn.execute(
            update(contacts)
            .where(contacts.c.id == contact_id)
            .values(blocked=False, blocked_at=None, updated_at=utcnow())
        )
        await audit.record(
            conn,
            actor,
            "contact.unblock",
            target_type="contact",
            target_id=contact_id,
            details={"blocked_since": state.blocked_at.isoformat() if state.blocked_at else None},
        )
        changed(conn, actor.workspace_id)
    return BlockState(contact_id, False, None, state.blocked_messages)


async def blocked_messages(
    db: Database, *, actor: Actor, contact_id: int, limit: int = 20
) -> tuple[list[BlockedMessage], int]:
    """What the contact wrote while blocked, newest first, and how many are stored."""
    actor.require(Role.AGENT)
    where = (messages.c.contact_id == contact_id, messages.c.status == BLOCKED)
    async with db.read() as conn:
        await _state(conn, actor, contact_id)
        rows = await conn.execute(
            select(
                messages.c.id,
                messages.c.kind,
                messages.c.text,
                messages.c.media_url,
                messages.c.created_at,
            )
            .where(*where)
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
        found = [BlockedMessage(r.id, r.kind, r.text, r.media_url, r.created_at) for r in rows]
        total = await conn.scalar(select(func.count()).select_from(messages).where(*where))
    return found, int(total or 0)


async def note_blocked_message(conn: AsyncConnection, *, contact_id: int) -> None:
    """Count one more message from a blocked contact (inside the inbound transaction)."""
    await conn.execute(
        update(contacts)
        .where(contacts.c.id == contact_id)
        .values(blocked_messages=contacts.c.blocked_messages + 1)
    )


def as_dict(state: BlockState) -> dict[str, Any]:
    return {
        "id": state.contact_id,
        "blocked": state.blocked,
        "blocked_at": state.blocked_at,
        "blocked_messages": state.blocked_messages,
    }
