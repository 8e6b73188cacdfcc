"""A person's rights over their data (GDPR Art. 15, 17, 20): export everything stored
about one contact, and erase it.

Both are for admins and owners. The export is plain data (JSON-ready apart from
datetimes). Erasure deletes the contact with everything that hangs on it — messages,
the conversation, consent events, subscriptions and deliveries — in one transaction,
lowers the ``total`` of every broadcast that counted the person, and leaves an audit
entry that holds counts only, never a name, address or text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import (
    broadcasts,
    channels,
    consent_events,
    contacts,
    conversations,
    deliveries,
    messages,
    subscriptions,
    topics,
)
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.contacts import consent_history
from rundfunk.services.errors import NotFound

FORMAT = "rundfunk.contact-export/1"


async def _contact(conn: AsyncConnection, actor: Actor, contact_id: int) -> Any:
    row = (
        await conn.execute(
            select(contacts).where(
                contacts.c.id == contact_id, contacts.c.workspace_id == actor.workspace_id
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no contact {contact_id}")
    return row


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


async def export_contact(db: Database, *, actor: Actor, contact_id: int) -> dict[str, Any]:
    """Everything stored about one person: the contact, its channel, subscriptions,
    consent history, conversation, every message (internal notes included) and every
    broadcast delivery with its broadcast's id."""
    actor.require(Role.ADMIN)
    async with db.read() as conn:
        row = await _contact(conn, actor, contact_id)
        channel = (
            await conn.execute(
                select(channels.c.id, channels.c.kind, channels.c.name).where(
                    channels.c.id == row.channel_id
                )
            )
        ).first()
        subs = _rows(
            await conn.execute(
                select(topics.c.key, topics.c.name, subscriptions.c.created_at)
                .join(topics, topics.c.id == subscriptions.c.topic_id)
                .where(subscriptions.c.contact_id == contact_id)
                .order_by(topics.c.key)
            )
        )
        events = _rows(await conn.execute(consent_history(contact_id)))
        conversation = (
            await conn.execute(
                select(
                    conversations.c.id,
                    conversations.c.status,
                    conversations.c.assignee_id,
                    conversations.c.last_inbound_at,
                    conversations.c.last_message_at,
                    conversations.c.created_at,
                ).where(conversations.c.contact_id == contact_id)
            )
        ).first()
        sent = _rows(
            await conn.execute(
                select(
                    messages.c.id,
                    messages.c.conversation_id,
                    messages.c.direction,
                    messages.c.kind,
                    messages.c.text,
                    messages.c.media_url,
                    messages.c.payload,
                    messages.c.status,
                    messages.c.author_id,
                    messages.c.error_reason,
                    messages.c.created_at,
                )
                .where(messages.c.contact_id == contact_id)
                .order_by(messages.c.id)
            )
        )
        received = _rows(
            await conn.execute(
                select(
                    deliveries.c.id,
                    deliveries.c.broadcast_id,
                    broadcasts.c.text.label("broadcast_text"),
                    deliveries.c.status,
                    deliveries.c.attempts,
                    deliveries.c.error_code,
                    deliveries.c.error_reason,
                    deliveries.c.sent_at,
                    deliveries.c.updated_at,
                )
                .join(broadcasts, broadcasts.c.id == deliveries.c.broadcast_id)
                .where(deliveries.c.contact_id == contact_id)
                .order_by(deliveries.c.id)
            )
        )
    return {
        "format": FORMAT,
        "exported_at": utcnow(),
        "contact": {
            "id": row.id,
            "channel_id": row.channel_id,
            "address": row.address,
            "name": row.name,
            "language": row.language,
            "status": row.status,
            "blocked": row.blocked,
            "tags": row.tags,
            "attributes": row.attributes,
            "last_inbound_at": row.last_inbound_at,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        },
        "channel": dict(channel._mapping) if channel else None,
        "subscriptions": subs,
        "consent_events": events,
        "conversation": dict(conversation._mapping) if conversation else None,
        "messages": sent,
        "deliveries": received,
    }


async def _count(conn: AsyncConnection, table: Any, contact_id: int) -> int:
    query = select(func.count()).select_from(table).where(table.c.contact_id == contact_id)
    return int(await conn.scalar(query) or 0)


async def erasure_preview(db: Database, *, actor: Actor, contact_id: int) -> dict[str, int]:
    """What ``erase_contact`` would delete, counted (for a confirmation step)."""
    actor.require(Role.ADMIN)
    async with db.read() as conn:
        await _contact(conn, actor, contact_id)
        return await _counts(conn, contact_id)


async def _counts(conn: AsyncConnection, contact_id: int) -> dict[str, int]:
    return {
        "messages": await _count(conn, messages, contact_id),
        "conversations": await _count(conn, conversations, contact_id),
        "consent_events": await _count(conn, consent_events, contact_id),
        "subscriptions": await _count(conn, subscriptions, contact_id),
        "deliveries": await _count(conn, deliveries, contact_id),
    }


async def erase_contact(db: Database, *, actor: Actor, contact_id: int) -> dict[str, int]:
    """Delete the person and everything stored about them; returns what was deleted.

    The rows are deleted child first (the foreign keys cascade too, but explicit
    deletes do not depend on them). Broadcasts that counted this person in their
    ``total`` count one fewer, so their funnel still adds up.
    """
    actor.require(Role.ADMIN)
    async with db.write() as conn:
        await _contact(conn, actor, contact_id)
        counts = await _counts(conn, contact_id)
        counted_in = select(deliveries.c.broadcast_id).where(deliveries.c.contact_id == contact_id)
        await conn.execute(
            update(broadcasts)
            .where(broadcasts.c.id.in_(counted_in), broadcasts.c.total > 0)
            .values(total=broadcasts.c.total - 1)
        )
        for table in (deliveries, messages, conversations, consent_events, subscriptions):
            await conn.execute(delete(table).where(table.c.contact_id == contact_id))
        await conn.execute(delete(contacts).where(contacts.c.id == contact_id))
        await audit.record(
            conn,
            actor,
            "contact.erase",
            target_type="contact",
            target_id=contact_id,
            details=counts,
        )
    return counts
