"""The deliveries table as a queue: claim due work with a lease, record outcomes.

A claim flips a chunk of due rows to ``sending`` with a lease in one statement
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers claim side by
side and never the same row; on SQLite one dispatcher owns the file). Outcomes of a
whole chunk are written back in one transaction. A row whose lease ran out (its
worker died) goes back to the queue: on the sandbox the phone's receipt and the
row's ``sent`` commit together, so a requeued row was never sent. A worker that is
told to stop gives back what it claimed but never sent at once (``release``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from rundfunk.channels.base import OutboundMessage
from rundfunk.core import errors, personalize
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.changes import changed
from rundfunk.db.session import Database, notify_work
from rundfunk.db.tables import (
    broadcasts,
    channels,
    contacts,
    deliveries,
    messages,
    workspaces,
)
from rundfunk.db.types import utcnow
from rundfunk.services import content
from rundfunk.services.consent_check import consents, topic_members
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
    # Claimed but never sent because the worker is stopping: goes back via ``release``.
    released: bool = False


async def claim(
    db: Database,
    *,
    limit: int,
    lease_seconds: float,
    skip_broadcasts: Collection[int] = (),
) -> list[SendJob]:
    """Claim up to ``limit`` due sends: conversation messages first, then deliveries
    (none of ``skip_broadcasts``: a pause in this process that is still committing)."""
    now = utcnow()
    lease = now + timedelta(seconds=lease_seconds)
    async with db.write() as conn:
        # Replies and confirmations first: few, and a person is waiting for each.
        jobs = await _claim_messages(conn, now, lease, limit)
        if len(jobs) < limit:
            jobs += await _claim_deliveries(
                conn, now, lease, limit - len(jobs), skip_broadcasts
            )
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
        # MATERIALIZED: as a plain sub-select PostgreSQL ran it again for every row of
        # the UPDATE (a semi join), skipped the rows it had just updated, and so claimed
        # every due row instead of ``limit`` of them. Run once, it locks one chunk.
        .cte("due")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    claimed = await conn.execute(
        update(table)
        # (The status check is redundant with the locked sub-select; it is a guard.)
        .where(table.c.id.in_(select(due.c.id)), table.c.status == QUEUED)
        .values(status=SENDING, lease_until=lease, attempts=table.c.attempts + 1, **extra)
        .returning(table.c.id)
    )
    return list(claimed.scalars())


async def _claim_deliveries(
    conn: AsyncConnection,
    now: datetime,
    lease: datetime,
    limit: int,
    skip_broadcasts: Collection[int] = (),
) -> list[SendJob]:
    sending = broadcasts.c.status == "sending"
    if skip_broadcasts:
        sending = and_(sending, broadcasts.c.id.notin_(list(skip_broadcasts)))
    ids = await _claim_ids(
        conn,
        deliveries,
        broadcasts,
        broadcasts.c.id == deliveries.c.broadcast_id,
        sending,
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
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)  # the claim's order
        )
    ).all()
    # Re-check consent at claim time: whoever said STOP after the fan-out is skipped.
    # (The dispatcher checks once more right before each send: see still_wanted.)
    in_topics = await topic_members(conn, rows)
    jobs: list[SendJob] = []
    skipped: list[int] = []
    for row in rows:
        if not consents(row.contact_status, row.blocked, row.topic_ids, row, in_topics):
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
        # Sent in the order they were queued: one person's welcome before a later
        # confirmation (PostgreSQL returns an IN list in no particular order).
        .order_by(messages.c.next_attempt_at, messages.c.id)
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


async def release(db: Database, jobs: Sequence[SendJob]) -> int:
    """Give claimed but unsent jobs back to the queue now (a worker is stopping, or
    their broadcast was paused or cancelled while they waited).

    Nothing went out for them, so the attempt is not counted and they are due at
    once; other workers hear of them by ``NOTIFY`` instead of waiting for a lease.
    A delivery of a cancelled broadcast is skipped instead ("broadcast cancelled", as
    ``cancel_broadcast`` does with the queued ones), so the broadcast's stats add up.
    """
    if not jobs:
        return 0
    now = utcnow()
    total = 0
    async with db.write() as conn:
        mine = [job.id for job in jobs if job.table == "deliveries"]
        if mine:
            # A cancel committing meanwhile (PostgreSQL): wait for it, then see it. Either
            # it commits first and these are skipped here, or they are queued first and
            # its own update skips them.
            held = {job.broadcast_id for job in jobs if job.broadcast_id is not None}
            await conn.execute(
                select(broadcasts.c.id)
                .where(broadcasts.c.id.in_(sorted(held)))
                .with_for_update(read=True)
            )
            cancelled = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(mine),
                    deliveries.c.status == SENDING,
                    deliveries.c.broadcast_id.in_(
                        select(broadcasts.c.id).where(broadcasts.c.status == "cancelled")
                    ),
                )
                .values(
                    status=DeliveryStatus.SKIPPED.value,
                    lease_until=None,
                    attempts=deliveries.c.attempts - 1,
                    error_reason="broadcast cancelled",
                    updated_at=now,
                )
            )
            total += int(cancelled.rowcount or 0)
            if cancelled.rowcount:
                for workspace_id in {job.workspace_id for job in jobs}:
                    changed(conn, workspace_id)  # live progress: the skipped count moved
        for table in (deliveries, messages):
            ids = [job.id for job in jobs if job.table == table.name]
            if not ids:
                continue
            extra = {"updated_at": now} if table is deliveries else {}
            done = await conn.execute(
                update(table)
                .where(table.c.id.in_(ids), table.c.status == SENDING)
                .values(
                    status=QUEUED,
                    lease_until=None,
                    next_attempt_at=now,
                    attempts=table.c.attempts - 1,
                    **extra,
                )
            )
            total += int(done.rowcount or 0)
        if total:
            await notify_work(conn)
    return total


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
        if total:
            await notify_work(conn)  # any worker may take them, not only ours
    return total
