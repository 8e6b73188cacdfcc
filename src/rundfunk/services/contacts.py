"""Contacts: one person on one channel, their subscriptions and consent history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from rundfunk.db.session import Database
from rundfunk.db.tables import consent_events, contacts, subscriptions, topics
from rundfunk.services.actors import Actor
from rundfunk.services.errors import Invalid, NotFound

STATUSES = ("subscribed", "unsubscribed", "none")
_FIELDS = (
    contacts.c.id,
    contacts.c.channel_id,
    contacts.c.address,
    contacts.c.name,
    contacts.c.language,
    contacts.c.status,
    contacts.c.blocked,
    contacts.c.tags,
    contacts.c.attributes,
    contacts.c.last_inbound_at,
    contacts.c.created_at,
)


async def list_contacts(
    db: Database,
    *,
    actor: Actor,
    channel_id: int | None = None,
    status: str | None = None,
    topic_key: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Contacts by id, ``limit`` at a time from ``after_id`` (keyset pagination)."""
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    query = (
        select(*_FIELDS)
        .where(contacts.c.workspace_id == actor.workspace_id, contacts.c.id > after_id)
        .order_by(contacts.c.id)
        .limit(limit)
    )
    if channel_id is not None:
        query = query.where(contacts.c.channel_id == channel_id)
    if status is not None:
        query = query.where(contacts.c.status == status)
    if topic_key is not None:
        query = query.where(
            contacts.c.id.in_(
                select(subscriptions.c.contact_id)
                .join(topics, topics.c.id == subscriptions.c.topic_id)
                .where(topics.c.key == topic_key, topics.c.workspace_id == actor.workspace_id)
            )
        )
    async with db.read() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def get_contact(db: Database, *, actor: Actor, contact_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(*_FIELDS).where(
                    contacts.c.id == contact_id, contacts.c.workspace_id == actor.workspace_id
                )
            )
        ).first()
        if row is None:
            raise NotFound(f"no contact {contact_id}")
        subs = await conn.execute(
            select(topics.c.key, topics.c.name, subscriptions.c.created_at)
            .join(topics, topics.c.id == subscriptions.c.topic_id)
            .where(subscriptions.c.contact_id == contact_id)
            .order_by(topics.c.key)
        )
        history = await conn.execute(
            select(
                consent_events.c.id,
                consent_events.c.kind,
                topics.c.key.label("topic_key"),
                consent_events.c.source,
                consent_events.c.keyword,
                consent_events.c.text_shown,
                consent_events.c.actor,
                consent_events.c.created_at,
            )
            .outerjoin(topics, topics.c.id == consent_events.c.topic_id)
            .where(consent_events.c.contact_id == contact_id)
            .order_by(consent_events.c.id)
        )
        return {
            **row._mapping,
            "subscriptions": [dict(s._mapping) for s in subs],
            "consent_history": [dict(h._mapping) for h in history],
        }
