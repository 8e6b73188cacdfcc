"""The deliveries table as a queue: claim due work with a lease, record outcomes.

A claim flips a chunk of due rows to ``sending`` with a lease in one statement
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite one dispatcher owns the file).
Outcomes of a whole chunk are written back in one transaction. A row whose lease
ran out (its worker died) goes back to the queue: on the sandbox the phone's
receipt and the row's ``sent`` commit together, so a requeued row was never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from rundfunk.channels.base import OutboundMessage
from rundfunk.core import errors, personalize
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.session import Database
from rundfunk.db.tables import (
    broadcasts,
    channels,
    contacts,
    deliveries,
    messages,
    subscriptions,
    workspaces,
)
from rundfunk.db.types import utcnow
from rundfunk.services import content
from rundfunk.services.recipient_cap import hold_back_over_cap

QUEUED, SENDING = DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value


@dataclass(frozen=True)
class SendJob:
    """One claimed send: a broadcast delivery (``d:``) or a conversation message (``m:``)."""

    table: str  # "deliveries" | "messages"
    id: int
    workspace_id: int
    channel_id: int
    contact_id: int
    attempts: int
    text: str | None  # for deliveries: the broadcast's template, rendered by the worker
    media_url: str | None
    contact: dict[str, Any]
    broadcast_id: int | None = None
    topic_ids: tuple[int, ...] = ()  # a topic broadcast: the contact must still be in one
    # What a broadcast's text may name besides the contact (docs/api.md: workspace.name).
    workspace: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] | None = None  # template, media id, menu (services.content)

    @property
    def callback_data(self) -> str:
        return f"{self.table[0]}:{self.id}"

    def message(self, text: str | None) -> OutboundMessage:
        """The message to send, with template parameters personalized for the contact."""
        return content.outbound(
            address=str(self.contact["address"]),
            callback_data=self.callback_data,
            text=text,
            media_url=self.media_url,
            content=self.content,
            render=lambda source: personalize.render(
                source, contact=self.contact, workspace=self.workspace
            ),
        )


@dataclass(frozen=True)
class SendOutcome:
    job: SendJob
    provider_message_id: str | None = None
    error: errors.ChannelError | None = None
    skipped: bool = False  # the contact opted out after the claim: nothing was sent
    # Held back before sending (the pair-rate guard): try again this much later.
    defer_seconds: float | None = None
    defer_reason: str | None = None


async def claim(db: Database, *, limit: int, lease_seconds: float) -> list[SendJob]:
    """Claim up to ``limit`` due sends: conversation messages first, then deliveries."""
    now = utcnow()
    lease = now + timedelta(seconds=lease_seconds)
    async with db.write() as conn:
        # Replies and confirmations first: few, and a person is waiting for each.
        jobs = await _claim_messages(conn, now, lease, limit)
        if len(jobs) < limit:
            jobs += await _claim_deliveries(conn, now, lease, limit - len(jobs))
    return jobs


async def _claim_ids(
    conn: AsyncConnection,
    table: Table,
    gate: Table,
    on: ColumnElement[bool],
    open_: ColumnElement[bool],
    *,
    now: datetime,
    lease: datetime,
    limit: int,
    **extra: Any,
) -> list[int]:
    """Flip up to ``limit`` due, queued rows of ``table`` to ``sending`` with a lease.

    Only rows whose ``gate`` row (their broadcast, their channel) is open are taken;
    ``SKIP LOCKED`` lets several PostgreSQL workers claim side by side.
    """
    due = (
        select(table.c.id)
        .join(gate, on)
        .where(table.c.status == QUEUED, table.c.next_attempt_at <= now, open_)
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=table)
    )
    claimed = await conn.execute(
        update(table)
        .where(table.c.id.in_(due.scalar_subquery()))
        .values(status=SENDING, lease_until=lease, attempts=table.c.attempts + 1, **extra)
        .returning(table.c.id)
    )
    return list(claimed.scalars())


async def _claim_deliveries(
    conn: AsyncConnection, now: datetime, lease: datetime, limit: int
) -> list[SendJob]:
    ids = await _claim_ids(
        conn,
        deliveries,
        broadcasts,
        broadcasts.c.id == deliveries.c.broadcast_id,
        broadcasts.c.status == "sending",
        now=now,
        lease=lease,
        limit=limit,
        updated_at=now,
    )
    if not ids:
        return []
    rows = (
        await conn.execute(
            select(
                deliveries.c.id,
                deliveries.c.broadcast_id,
                deliveries.c.contact_id,
                deliveries.c.channel_id,
                deliveries.c.attempts,
                broadcasts.c.workspace_id,
                broadcasts.c.text,
                broadcasts.c.media_url,
                broadcasts.c.content,
                broadcasts.c.topic_ids,
                contacts.c.address,
                contacts.c.name,
                contacts.c.language,
                contacts.c.attributes,
                contacts.c.status.label("contact_status"),
                contacts.c.blocked,
                workspaces.c.name.label("workspace_name"),
            )
            .join(broadcasts, broadcasts.c.id == deliveries.c.broadcast_id)
            .join(contacts, contacts.c.id == deliveries.c.contact_id)
            .join(workspaces, workspaces.c.id == broadcasts.c.workspace_id)
            .where(deliveries.c.id.in_(ids))
        )
    ).all()
    # Re-check consent at claim time: whoever said STOP after the fan-out is skipped.
    # (The dispatcher checks once more right before each send: see still_wanted.)
    in_topics = await _topic_members(conn, rows)
    jobs: list[SendJob] = []
    skipped: list[int] = []
    for row in rows:
        if not _consents(row.contact_status, row.blocked, row.topic_ids, row, in_topics):
            skipped.append(row.id)
            continue
        jobs.append(
            SendJob(
                table="deliveries",
                id=row.id,
                workspace_id=row.workspace_id,
                channel_id=row.channel_id,
                contact_id=row.contact_id,
                attempts=row.attempts,
                text=row.text,
                media_url=row.media_url,
                contact={
                    "id": row.contact_id,
                    "address": row.address,
                    "name": row.name,
                    "language": row.language,
                    "attributes": row.attributes,
                },
                broadcast_id=row.broadcast_id,
                topic_ids=tuple(row.topic_ids),
                workspace={"name": row.workspace_name},
                content=row.content,
            )
        )
    jobs = await hold_back_over_cap(conn, jobs, now)
    if skipped:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(skipped))
            .values(
                status=DeliveryStatus.SKIPPED.value,
                lease_until=None,
                error_reason="unsubscribed before send",
            )
        )
    return jobs


def _consents(
    status: str, blocked: bool, topic_ids: Sequence[int], item: Any, in_topics: set[tuple[int, int]]
) -> bool:
    if status != "subscribed" or blocked:
        return False
    return not topic_ids or (item.contact_id, item.broadcast_id) in in_topics


async def still_wanted(db: Database, jobs: Sequence[SendJob]) -> set[int]:
    """The ids of these broadcast deliveries whose contact still consents right now.

    Checked immediately before sending, because a claimed chunk can wait seconds on
    the rate limiter and a STOP in that time must still be honoured.
    """
    deliveries_only = [job for job in jobs if job.table == "deliveries"]
    if not deliveries_only:
        return set()
    async with db.read() as conn:
        found = await conn.execute(
            select(contacts.c.id, contacts.c.status, contacts.c.blocked).where(
                contacts.c.id.in_({job.contact_id for job in deliveries_only})
            )
        )
        state = {row.id: (row.status, row.blocked) for row in found}
        in_topics = await _topic_members(conn, deliveries_only)
    return {
        job.id
        for job in deliveries_only
        if job.contact_id in state
        and _consents(*state[job.contact_id], job.topic_ids, job, in_topics)
    }


async def _topic_members(conn: AsyncConnection, rows: Sequence[Any]) -> set[tuple[int, int]]:
    """(contact, broadcast) pairs where the contact is still in one of its topics."""
    wanted = [r for r in rows if r.topic_ids]
    if not wanted:
        return set()
    found = await conn.execute(
        select(subscriptions.c.contact_id, subscriptions.c.topic_id).where(
            subscriptions.c.contact_id.in_({r.contact_id for r in wanted})
        )
    )
    topics_of: dict[int, set[int]] = {}
    for contact_id, topic_id in found:
        topics_of.setdefault(contact_id, set()).add(topic_id)
    return {
        (r.contact_id, r.broadcast_id)
        for r in wanted
        if topics_of.get(r.contact_id, set()) & set(r.topic_ids)
    }


async def _claim_messages(
    conn: AsyncConnection, now: datetime, lease: datetime, limit: int
) -> list[SendJob]:
    ids = await _claim_ids(
        conn,
        messages,
        channels,
        channels.c.id == messages.c.channel_id,
        channels.c.status == "active",
        now=now,
        lease=lease,
        limit=limit,
    )
    if not ids:
        return []
    rows = await conn.execute(
        select(messages, contacts.c.address, contacts.c.name.label("contact_name"))
        .join(contacts, contacts.c.id == messages.c.contact_id)
        .where(messages.c.id.in_(ids))
    )
    return [
        SendJob(
            table="messages",
            id=row.id,
            workspace_id=row.workspace_id,
            channel_id=row.channel_id,
            contact_id=row.contact_id,
            attempts=row.attempts,
            text=row.text,
            media_url=row.media_url,
            contact={"id": row.contact_id, "address": row.address, "name": row.contact_name},
            content=row.payload or None,
        )
        for row in rows
    ]


async def requeue_expired(
    db: Database, *, everything: bool = False, settle_seconds: float = 120.0
) -> int:
    """Give rows whose lease ran out back to the queue.

    Sandbox rows go back as soon as their lease ends (``everything``: at embedded
    start, when no other process can own a lease on this SQLite file) — their receipt
    and outcome commit together, so an unrecorded row was never sent. A real
    platform's row may have been accepted just before its worker died or the
    connection broke: it waits ``settle_seconds`` more for the status callback that
    names it (``biz_opaque_callback_data``), which moves it on; only a row no callback
    claimed is sent again.
    """
    now = utcnow()
    settled_after = now - timedelta(seconds=settle_seconds)

    def expired(table: Table) -> ColumnElement[bool]:
        on_sandbox = table.c.channel_id.in_(
            select(channels.c.id).where(channels.c.kind == "sandbox").scalar_subquery()
        )
        sandbox = on_sandbox if everything else and_(on_sandbox, table.c.lease_until < now)
        platform = and_(~on_sandbox, table.c.lease_until < settled_after)
        return and_(table.c.status == SENDING, or_(sandbox, platform))

    async with db.read() as conn:  # most passes find none: no write lock for nothing
        found = [
            await conn.scalar(select(table.c.id).where(expired(table)).limit(1))
            for table in (deliveries, messages)
        ]
    if all(row is None for row in found):
        return 0
    total = 0
    async with db.write() as conn:
        for table in (deliveries, messages):
            done = await conn.execute(
                update(table)
                .where(expired(table))
                .values(status=QUEUED, lease_until=None, next_attempt_at=now)
            )
            total += int(done.rowcount or 0)
    return total
