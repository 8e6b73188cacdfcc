"""A verified platform webhook, carried out: messages, statuses, consent, templates.

The web route verifies the signature and stores the raw body (``webhook_inbox``); the
inbox's applier parses stored webhooks into channel-neutral events and carries them out
here. Statuses, consent changes and template updates of many webhooks share one
transaction (``apply_events``, in the caller's); each inbound message has its own
(``inbound.receive``, called by the inbox), so one odd message cannot hold back the
others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.base import (
    ConsentUpdate,
    InboundEvent,
    StatusUpdate,
    TemplateStatusUpdate,
)
from rundfunk.db.tables import consent_events, contacts
from rundfunk.services import subscriptions, templates
from rundfunk.services.outcomes import RecordResult, RetryPolicy
from rundfunk.services.statuses import apply_status_batch

STOPPED = "stopped marketing messages in the messenger app"
RESUMED = "resumed marketing messages in the messenger app"


@dataclass
class IngestResult:
    """What carrying out webhooks did (counts add up over batches with ``add``)."""

    webhooks: int = 0  # stored webhooks applied and removed from the inbox
    messages: int = 0
    duplicates: int = 0
    statuses_changed: int = 0
    consent_changes: int = 0
    template_updates: int = 0
    effects: RecordResult = field(default_factory=RecordResult)

    def add(self, other: IngestResult) -> None:
        """Add ``other``'s counts (not its effects, which are acted on once)."""
        for item in fields(self):
            if item.name != "effects":
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


Webhook = tuple[int, Sequence[InboundEvent]]  # (channel id, the events of one POST)


async def apply_events(
    conn: AsyncConnection,
    webhooks: Sequence[Webhook],
    *,
    policy: RetryPolicy | None = None,
    result: IngestResult,
) -> None:
    """Everything but inbound messages of ``webhooks``, in the caller's transaction.

    The statuses of all of them in one batch (forward-only, so their order does not
    matter); consent and template events one by one in the webhooks' order.
    """
    statuses: dict[int, list[StatusUpdate]] = {}
    for channel_id, events in webhooks:
        for event in events:
            if isinstance(event, StatusUpdate):
                statuses.setdefault(channel_id, []).append(event)
    if statuses:
        result.statuses_changed += await apply_status_batch(
            conn, statuses, policy=policy, result=result.effects
        )
    for channel_id, events in webhooks:
        for event in events:
            if isinstance(event, ConsentUpdate):
                result.consent_changes += await _consent(conn, channel_id, event)
            elif isinstance(event, TemplateStatusUpdate):
                await templates.apply_status(conn, channel_id=channel_id, event=event)
                result.template_updates += 1


async def _consent(conn: AsyncConnection, channel_id: int, event: ConsentUpdate) -> int:
    """Stop: unsubscribe. Resume: subscribe again only if it was the app's stop that
    unsubscribed them (a STOP they wrote to us stays in force, and a stop of someone who
    was not subscribed changes nothing). Repeats change nothing."""
    contact = (
        await conn.execute(
            select(contacts.c.id, contacts.c.workspace_id, contacts.c.status).where(
                contacts.c.channel_id == channel_id, contacts.c.address == event.address
            )
        )
    ).first()
    if contact is None:
        return 0  # never wrote to us and never subscribed: nothing to withdraw or restore
    if event.opted_in:
        if not await _stopped_in_app(conn, contact.id):
            return 0
        verb, keyword = subscriptions.opt_in, RESUMED
    else:
        # Only a stop that unsubscribes is recorded as the app's: one of someone already
        # out (a STOP they wrote) or never in must not let a later resume subscribe them.
        if contact.status != "subscribed":
            return 0
        verb, keyword = subscriptions.opt_out, STOPPED
    await verb(
        conn,
        workspace_id=contact.workspace_id,
        contact_id=contact.id,
        topic_id=None,
        source="platform",
        actor="platform",
        keyword=keyword,
        text_shown=event.detail,
    )
    return 1


async def _stopped_in_app(conn: AsyncConnection, contact_id: int) -> bool:
    """Whether the contact's latest consent event is a stop made in the messenger app."""
    last = (
        await conn.execute(
            select(consent_events.c.kind, consent_events.c.keyword)
            .where(consent_events.c.contact_id == contact_id)
            .order_by(consent_events.c.id.desc())
            .limit(1)
        )
    ).first()
    return last is not None and last.kind == "opt_out" and last.keyword == STOPPED
