"""What happens to a message a person writes: the inbound rules, applied.

``core.keywords.classify`` decides (opt-in, opt-out, help, conversation, ignore);
this module carries the decision out in one transaction: contact upserted,
message stored once (deduplicated by the provider's id), subscription and consent
event written, confirmation queued, or the private conversation opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.base import InboundMessage
from rundfunk.core.keywords import Decision, InboundAction, KeywordConfig, classify
from rundfunk.db.changes import changed
from rundfunk.db.session import Database
from rundfunk.db.tables import channels, contacts, conversations, messages, topics, workspaces
from rundfunk.metrics import BLOCKED_MESSAGES, INBOUND_MESSAGES
from rundfunk.services import subscriptions
from rundfunk.services.blocking import BLOCKED, note_blocked_message
from rundfunk.services.content import menu_content
from rundfunk.services.outbox import queue_message
from rundfunk.services.workspaces import DEFAULT_SETTINGS

INTERACTIVE_KINDS = frozenset({"whatsapp"})
MAX_MENU = 10  # WhatsApp lists hold at most 10 rows


@dataclass(frozen=True)
class Outcome:
    """What ``receive`` did, for the caller (tests, live events)."""

    action: InboundAction
    contact_id: int
    message_id: int | None
    conversation_id: int | None = None
    duplicate: bool = False
    channel_kind: str = "unknown"


@dataclass
class _Context:
    conn: AsyncConnection
    workspace_id: int
    channel_id: int
    contact_id: int
    message_id: int
    event: InboundMessage
    decision: Decision
    settings: dict[str, Any]
    channel_kind: str = "sandbox"
    conversation_id: int | None = None

    def text(self, name: str, **extra: str) -> str:
        fields = {
            "workspace": str(self.settings.get("name", "")),
            "privacy_url": str(self.settings.get("privacy_url") or "(not published yet)"),
            "imprint_url": str(self.settings.get("imprint_url") or "(not published yet)"),
            **extra,
        }
        template = str(self.settings.get(name) or DEFAULT_SETTINGS[name])
        try:
            return template.format(**fields)
        except (KeyError, IndexError, ValueError):  # an admin's typo must not block opt-out
            return template

    async def reply(self, text: str, payload: dict[str, Any] | None = None) -> None:
        await queue_message(
            self.conn,
            workspace_id=self.workspace_id,
            channel_id=self.channel_id,
            contact_id=self.contact_id,
            conversation_id=self.conversation_id,
            text=text,
            kind="system",
            payload=payload,
        )


async def receive(db: Database, *, channel_id: int, event: InboundMessage) -> Outcome:
    # Two first messages of one new person can race to create the contact (PostgreSQL;
    # SQLite serialises writers). The loser's transaction rolls back whole and runs
    # once more, when the contact exists: the message is never lost.
    for attempt in (1, 2):
        try:
            async with db.write() as conn:
                outcome = await _receive(conn, channel_id, event)
        except IntegrityError:
            async with db.read() as conn:
                duplicate = await _duplicate(conn, channel_id, event)
            if duplicate is not None:  # the same provider message raced in twice; one won
                return duplicate
            if attempt == 2:
                raise
        else:
            if not outcome.duplicate:  # counted once committed, and once per message
                INBOUND_MESSAGES.labels(
                    channel_kind=outcome.channel_kind, action=outcome.action.value
                ).inc()
                if outcome.action is InboundAction.IGNORE:
                    BLOCKED_MESSAGES.labels(channel_kind=outcome.channel_kind).inc()
            return outcome
    raise AssertionError("unreachable")


async def _duplicate(
    conn: AsyncConnection, channel_id: int, event: InboundMessage
) -> Outcome | None:
    """The outcome of an already stored message with this provider id, if any."""
    row = (
        await conn.execute(
            select(messages.c.id, messages.c.contact_id).where(
                messages.c.channel_id == channel_id,
                messages.c.provider_message_id == event.provider_message_id,
            )
        )
    ).first()
    if row is None:
        return None
    return Outcome(InboundAction.IGNORE, row.contact_id, row.id, duplicate=True)


async def _receive(conn: AsyncConnection, channel_id: int, event: InboundMessage) -> Outcome:
    channel = (
        await conn.execute(
            select(
                channels.c.workspace_id,
                channels.c.kind,
                channels.c.settings,
                workspaces.c.name,
                workspaces.c.settings.label("ws"),
            )
            .join(workspaces, workspaces.c.id == channels.c.workspace_id)
            .where(channels.c.id == channel_id)
        )
    ).one()
    changed(conn, channel.workspace_id)  # the inbox and simulator of open consoles
    duplicate = await _duplicate(conn, channel_id, event)
    if duplicate is not None:
        return duplicate

    contact = await _upsert_contact(conn, channel.workspace_id, channel_id, event)
    conversation_id = await conn.scalar(
        select(conversations.c.id).where(conversations.c.contact_id == contact.id)
    )
    decision = classify(
        _command(event),
        KeywordConfig.from_settings(channel.settings.get("keywords")),
        blocked=contact.blocked,
    )
    result = await conn.execute(
        messages.insert().values(
            workspace_id=channel.workspace_id,
            channel_id=channel_id,
            contact_id=contact.id,
            # A blocked contact's message is kept for the record but stays out of the
            # team's inbox, even when an earlier conversation exists.
            conversation_id=None if decision.action is InboundAction.IGNORE else conversation_id,
            direction="in",
            kind=event.kind,
            text=event.text,
            media_url=event.media_url,
            payload=dict(event.payload),
            provider_message_id=event.provider_message_id,
            status=BLOCKED if decision.action is InboundAction.IGNORE else "received",
            attempts=0,
            created_at=event.timestamp,
        )
    )
    assert result.inserted_primary_key is not None
    ctx = _Context(
        conn=conn,
        workspace_id=channel.workspace_id,
        channel_id=channel_id,
        contact_id=contact.id,
        message_id=int(result.inserted_primary_key[0]),
        event=event,
        decision=decision,
        settings={**DEFAULT_SETTINGS, **channel.ws, "name": channel.name},
        channel_kind=channel.kind,
        # A blocked contact's message belongs to no conversation, even an earlier one.
        conversation_id=None if decision.action is InboundAction.IGNORE else conversation_id,
    )
    await _HANDLERS[decision.action](ctx)
    return Outcome(
        decision.action,
        contact.id,
        ctx.message_id,
        ctx.conversation_id,
        channel_kind=channel.kind,
    )


def _command(event: InboundMessage) -> str | None:
    """What the rules table reads: typed text, or the id of a tapped button or list row
    (Rundfunk's menus use the command itself as the id, e.g. ``START news``)."""
    if event.kind == "text":
        return event.text
    if event.kind in {"interactive", "button"}:
        reply_id = event.payload.get("reply_id")
        return reply_id if isinstance(reply_id, str) else None
    return None


async def _upsert_contact(
    conn: AsyncConnection, workspace_id: int, channel_id: int, event: InboundMessage
) -> Any:
    row = (
        await conn.execute(
            select(contacts.c.id, contacts.c.blocked, contacts.c.last_inbound_at).where(
                contacts.c.channel_id == channel_id, contacts.c.address == event.address
            )
        )
    ).first()
    if row is None:
        result = await conn.execute(
            contacts.insert().values(
                workspace_id=workspace_id,
                channel_id=channel_id,
                address=event.address,
                name=event.name,
                attributes={},
                tags=[],
                status="none",
                blocked=False,
                last_inbound_at=event.timestamp,
                created_at=event.timestamp,
                updated_at=event.timestamp,
            )
        )
        assert result.inserted_primary_key is not None
        return _Contact(int(result.inserted_primary_key[0]), False)
    # Platforms deliver late (Meta retries a webhook for days): an older message
    # arriving after a newer one must not move the service window back.
    values: dict[str, Any] = {
        "last_inbound_at": _later(row.last_inbound_at, event.timestamp),
        "updated_at": event.timestamp,
    }
    if event.name:
        values["name"] = event.name
    await conn.execute(update(contacts).where(contacts.c.id == row.id).values(**values))
    return _Contact(row.id, row.blocked)


def _later(stored: datetime | None, incoming: datetime) -> datetime:
    return incoming if stored is None else max(stored, incoming)


@dataclass(frozen=True)
class _Contact:
    id: int
    blocked: bool


async def _topic(ctx: _Context) -> Any:
    if ctx.decision.topic_key is None:
        return None
    return (
        await ctx.conn.execute(
            select(topics.c.id, topics.c.name).where(
                topics.c.workspace_id == ctx.workspace_id, topics.c.key == ctx.decision.topic_key
            )
        )
    ).first()


async def _on_opt_in(ctx: _Context) -> None:
    topic = await _topic(ctx)
    text = ctx.text("welcome_text")
    if topic is not None:
        text = f"{text}\nTopic: {topic.name}"
    elif ctx.decision.topic_key is not None:
        text = f"{text}\n(There is no topic {ctx.decision.topic_key!r}; you get all our news.)"
    await subscriptions.opt_in(
        ctx.conn,
        workspace_id=ctx.workspace_id,
        contact_id=ctx.contact_id,
        topic_id=topic.id if topic is not None else None,
        source="keyword",
        actor="contact",
        keyword=ctx.event.text,
        text_shown=text,
    )
    await ctx.reply(text, await _topic_menu(ctx) if topic is None else None)


async def _topic_menu(ctx: _Context) -> dict[str, Any] | None:
    """On channels with interactive messages (WhatsApp), the welcome offers the topics
    as a list to tap; a tap arrives as ``START <key>``."""
    if ctx.channel_kind not in INTERACTIVE_KINDS:
        return None
    rows = await ctx.conn.execute(
        select(topics.c.key, topics.c.name)
        .where(topics.c.workspace_id == ctx.workspace_id)
        .order_by(topics.c.name)
        .limit(MAX_MENU)
    )
    choices = [(f"START {key}", name) for key, name in rows]
    if not choices:
        return None
    return menu_content(choices, button="Topics", section="Choose a topic")


async def _on_opt_out(ctx: _Context) -> None:
    topic = await _topic(ctx)
    if topic is not None:
        text = f"You will get no more news about {topic.name}. Send STOP to leave all news."
    else:
        text = ctx.text("goodbye_text")
    await subscriptions.opt_out(
        ctx.conn,
        workspace_id=ctx.workspace_id,
        contact_id=ctx.contact_id,
        topic_id=topic.id if topic is not None else None,
        source="keyword",
        actor="contact",
        keyword=ctx.event.text,
        text_shown=text,
    )
    await ctx.reply(text)


async def _on_help(ctx: _Context) -> None:
    await ctx.reply(ctx.text("help_text"))


async def _on_conversation(ctx: _Context) -> None:
    now = ctx.event.timestamp
    if ctx.conversation_id is None:
        result = await ctx.conn.execute(
            conversations.insert().values(
                workspace_id=ctx.workspace_id,
                channel_id=ctx.channel_id,
                contact_id=ctx.contact_id,
                status="open",
                last_inbound_at=now,
                last_message_at=now,
                created_at=now,
            )
        )
        assert result.inserted_primary_key is not None
        ctx.conversation_id = int(result.inserted_primary_key[0])
        await ctx.conn.execute(
            update(messages)
            .where(messages.c.id == ctx.message_id)
            .values(conversation_id=ctx.conversation_id)
        )
    else:
        # A resolved conversation is reopened by the next message; a late older one
        # moves no timestamp back.
        seen = (
            await ctx.conn.execute(
                select(conversations.c.last_inbound_at, conversations.c.last_message_at).where(
                    conversations.c.id == ctx.conversation_id
                )
            )
        ).one()
        await ctx.conn.execute(
            update(conversations)
            .where(conversations.c.id == ctx.conversation_id)
            .values(
                status="open",
                last_inbound_at=_later(seen.last_inbound_at, now),
                last_message_at=_later(seen.last_message_at, now),
            )
        )


async def _on_ignore(ctx: _Context) -> None:
    """Blocked contacts: the message is kept for the record (status ``blocked``, on the
    contact's page) and counted; nothing else happens."""
    await note_blocked_message(ctx.conn, contact_id=ctx.contact_id)


_HANDLERS: dict[InboundAction, Callable[[_Context], Awaitable[None]]] = {
    InboundAction.OPT_IN: _on_opt_in,
    InboundAction.OPT_OUT: _on_opt_out,
    InboundAction.HELP: _on_help,
    InboundAction.CONVERSATION: _on_conversation,
    InboundAction.IGNORE: _on_ignore,
}
