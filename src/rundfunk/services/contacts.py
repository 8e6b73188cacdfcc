"""Contacts: one person on one channel, their subscriptions and consent history.

Reading them (lists with search and filters, one contact with its subscriptions,
consent history and latest messages) and labelling them with tags. Export and
erasure of everything stored about a person live in ``contact_data``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Select, String, cast, func, or_, select, update

from rundfunk.db.session import Database
from rundfunk.db.tables import (
    consent_events,
    contacts,
    conversations,
    messages,
    subscriptions,
    topics,
)
from rundfunk.db.types import utcnow
from rundfunk.services import audit
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Invalid, NotFound

STATUSES = ("subscribed", "unsubscribed", "none")
MAX_TAGS = 20
MAX_TAG = 40
_PHONE_NOISE = re.compile(r"[\s+\-()/.]")
_FIELDS = (
    contacts.c.id,
    contacts.c.channel_id,
    contacts.c.address,
    contacts.c.name,
    contacts.c.language,
    contacts.c.status,
    contacts.c.blocked,
    contacts.c.blocked_at,
    contacts.c.blocked_messages,
    contacts.c.tags,
    contacts.c.attributes,
    contacts.c.last_inbound_at,
    contacts.c.created_at,
)


def _filtered(
    query: Select[Any],
    actor: Actor,
    *,
    channel_id: int | None,
    status: str | None,
    topic_key: str | None,
    search: str | None,
    tag: str | None,
) -> Select[Any]:
    """``query`` narrowed to the actor's workspace and the chosen filters."""
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", field="status")
    query = query.where(contacts.c.workspace_id == actor.workspace_id)
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
    if search and search.strip():
        text = search.strip()
        digits = _PHONE_NOISE.sub("", text)
        matches = [
            contacts.c.name.icontains(text, autoescape=True),
            contacts.c.address.icontains(text, autoescape=True),
        ]
        if digits and digits != text:
            matches.append(contacts.c.address.icontains(digits, autoescape=True))
        query = query.where(or_(*matches))
    if tag and tag.strip():
        # Tags are a JSON list; its text holds the tag as a JSON string ("vip"), which
        # works the same on SQLite and PostgreSQL without JSON operators.
        needle = json.dumps(tag.strip())
        query = query.where(cast(contacts.c.tags, String).contains(needle, autoescape=True))
    return query


async def list_contacts(
    db: Database,
    *,
    actor: Actor,
    channel_id: int | None = None,
    status: str | None = None,
    topic_key: str | None = None,
    search: str | None = None,
    tag: str | None = None,
    after_id: int = 0,
    limit: int = 100,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Contacts by id, ``limit`` at a time after ``after_id`` (keyset pagination).

    ``newest_first`` walks the ids downwards: ``after_id`` is then the last id seen
    (0 starts with the newest contact).
    """
    query = _filtered(
        select(*_FIELDS),
        actor,
        channel_id=channel_id,
        status=status,
        topic_key=topic_key,
        search=search,
        tag=tag,
    )
    if newest_first:
        if after_id:
            query = query.where(contacts.c.id < after_id)
        query = query.order_by(contacts.c.id.desc())
    else:
        query = query.where(contacts.c.id > after_id).order_by(contacts.c.id)
    async with db.read() as conn:
        return [dict(r._mapping) for r in await conn.execute(query.limit(limit))]


async def count_contacts(
    db: Database,
    *,
    actor: Actor,
    channel_id: int | None = None,
    status: str | None = None,
    topic_key: str | None = None,
    search: str | None = None,
    tag: str | None = None,
) -> int:
    """How many contacts the same filters as ``list_contacts`` find in all."""
    query = _filtered(
        select(func.count()).select_from(contacts),
        actor,
        channel_id=channel_id,
        status=status,
        topic_key=topic_key,
        search=search,
        tag=tag,
    )
    async with db.read() as conn:
        return int(await conn.scalar(query) or 0)


async def known_tags(db: Database, *, actor: Actor, limit: int = 200) -> list[str]:
    """The tags in use in the workspace, sorted (for a filter's suggestions)."""
    # DISTINCT over the JSON's text: PostgreSQL's json type has no equality operator.
    as_text = cast(contacts.c.tags, String)
    query = (
        select(as_text)
        .where(contacts.c.workspace_id == actor.workspace_id)
        .where(as_text != "[]")
        .distinct()
        .limit(1000)
    )
    found: set[str] = set()
    async with db.read() as conn:
        for (text,) in await conn.execute(query):
            tags = json.loads(text) if text else []
            found.update(t for t in tags if isinstance(t, str))
    return sorted(found)[:limit]


def consent_history(contact_id: int) -> Select[Any]:
    """A contact's consent events, oldest first, with the key of the topic each names."""
    return (
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
        history = await conn.execute(consent_history(contact_id))
        return {
            **row._mapping,
            "subscriptions": [dict(s._mapping) for s in subs],
            "consent_history": [dict(h._mapping) for h in history],
        }


async def recent_messages(
    db: Database, *, actor: Actor, contact_id: int, limit: int = 10
) -> dict[str, Any]:
    """The contact's conversation (or None) and its latest messages, oldest first.

    Keyword traffic (START, STOP and their confirmations) belongs to no conversation
    but is shown too: it is part of what the person exchanged with the business.
    """
    async with db.read() as conn:
        owner = await conn.scalar(
            select(contacts.c.id).where(
                contacts.c.id == contact_id, contacts.c.workspace_id == actor.workspace_id
            )
        )
        if owner is None:
            raise NotFound(f"no contact {contact_id}")
        conversation = (
            await conn.execute(
                select(
                    conversations.c.id,
                    conversations.c.status,
                    conversations.c.assignee_id,
                    conversations.c.last_message_at,
                ).where(conversations.c.contact_id == contact_id)
            )
        ).first()
        rows = await conn.execute(
            select(
                messages.c.id,
                messages.c.conversation_id,
                messages.c.direction,
                messages.c.kind,
                messages.c.text,
                messages.c.status,
                messages.c.created_at,
            )
            .where(messages.c.contact_id == contact_id)
            .where(messages.c.status != "blocked")  # listed apart (services.blocking)
            .order_by(messages.c.id.desc())
            .limit(limit)
        )
        latest = [dict(r._mapping) for r in rows]
        total = int(
            await conn.scalar(
                select(func.count())
                .select_from(messages)
                .where(messages.c.contact_id == contact_id, messages.c.status != "blocked")
            )
            or 0
        )
    return {
        "conversation": dict(conversation._mapping) if conversation else None,
        "messages": latest[::-1],
        "total": total,
    }


def clean_tags(raw: str | list[str]) -> list[str]:
    """Tags from a comma-separated text (or a list): trimmed, deduplicated, checked."""
    items = raw.split(",") if isinstance(raw, str) else raw
    tags: list[str] = []
    for item in items:
        tag = item.strip()
        if not tag or tag in tags:
            continue
        if len(tag) > MAX_TAG:
            raise Invalid(f"a tag may have at most {MAX_TAG} characters: {tag[:20]}…", field="tags")
        if '"' in tag or "\\" in tag:
            raise Invalid("tags may not contain quotes or backslashes", field="tags")
        tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags per contact", field="tags")
    return tags


async def set_tags(
    db: Database, *, actor: Actor, contact_id: int, tags: str | list[str]
) -> list[str]:
    """Replace the contact's tags (agents and up: they label people they talk to)."""
    actor.require(Role.AGENT)
    cleaned = clean_tags(tags)
    async with db.write() as conn:
        done = await conn.execute(
            update(contacts)
            .where(contacts.c.id == contact_id, contacts.c.workspace_id == actor.workspace_id)
            .values(tags=cleaned, updated_at=utcnow())
        )
        if not done.rowcount:
            raise NotFound(f"no contact {contact_id}")
        await audit.record(
            conn,
            actor,
            "contact.tags",
            target_type="contact",
            target_id=contact_id,
            details={"count": len(cleaned)},
        )
    return cleaned
