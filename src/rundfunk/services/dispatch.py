"""The deliveries table as a queue: claim due work with a lease, record outcomes.

A claim flips a chunk of due rows to ``sending`` with a lease in one statement
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite one dispatcher owns the file).
Outcomes of a whole chunk are written back in one transaction. A row whose lease
ran out (its worker died) goes back to the queue: on the sandbox the phone's
receipt and the row's ``sent`` commit together, so a requeued row was never sent.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from rundfunk.channels.base import OutboundMessage
from rundfunk.core import errors
from rundfunk.core.deliveries import DeliveryStatus, retry_delay, should_pause
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
from rundfunk.services import subscriptions as subs
from rundfunk.services.actors import system_actor
from rundfunk.services.channels import mark_disabled

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

    @property
    def callback_data(self) -> str:
        return f"{self.table[0]}:{self.id}"

    def message(self, text: str | None) -> OutboundMessage:
        return OutboundMessage(
            address=str(self.contact["address"]),
            text=text,
            media_url=self.media_url,
            callback_data=self.callback_data,
        )


@dataclass(frozen=True)
class SendOutcome:
    job: SendJob
    provider_message_id: str | None = None
    error: errors.ChannelError | None = None
    skipped: bool = False  # the contact opted out after the claim: nothing was sent


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 2.0
    cap_seconds: float = 300.0
    pause_error_share: float = 0.5
    pause_min_sample: int = 50


@dataclass
class RecordResult:
    paused_broadcasts: list[int] = field(default_factory=list)
    disabled_channels: list[int] = field(default_factory=list)


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
            )
        )
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
        )
        for row in rows
    ]


async def record(
    db: Database,
    outcomes: Sequence[SendOutcome],
    *,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> RecordResult:
    """Write a chunk's outcomes in one transaction (see core.errors for the tree)."""
    rng = rng or random.Random()
    now = utcnow()
    result = RecordResult()
    plans: dict[str, list[dict[str, Any]]] = {"deliveries": [], "messages": []}
    failed_broadcasts: set[int] = set()
    async with db.write() as conn:
        for outcome in outcomes:
            job, error = outcome.job, outcome.error
            plan: dict[str, Any] = {
                "_id": job.id,
                "_pid": outcome.provider_message_id,
                "_code": None,
                "_reason": None,
                "_next": now,
                "_attempts": job.attempts,
            }
            if outcome.skipped:
                plan.update(
                    _status=DeliveryStatus.SKIPPED.value, _reason="unsubscribed before send"
                )
            elif error is None:
                plan["_status"] = DeliveryStatus.SENT.value
            elif isinstance(error, errors.RetryableError):
                if job.attempts >= policy.max_attempts:
                    plan.update(
                        _status=DeliveryStatus.FAILED.value,
                        _code=error.code,
                        _reason=f"gave up after {job.attempts} attempts: {error.reason}",
                    )
                else:
                    delay = retry_delay(
                        job.attempts,
                        base=policy.base_seconds,
                        cap=policy.cap_seconds,
                        jitter=rng.random(),
                    )
                    delay = max(delay, error.retry_after or 0.0)
                    plan.update(
                        _status=QUEUED,
                        _code=error.code,
                        _reason=error.reason,
                        _next=now + timedelta(seconds=delay),
                    )
            elif isinstance(error, errors.PermanentError):
                plan.update(
                    _status=DeliveryStatus.FAILED.value, _code=error.code, _reason=error.reason
                )
                if isinstance(error, errors.RecipientGoneError | errors.OptedOutError):
                    await subs.opt_out(
                        conn,
                        workspace_id=job.workspace_id,
                        contact_id=job.contact_id,
                        topic_id=None,
                        source="send_error",
                        actor="platform",
                        keyword=error.reason,
                    )
            else:
                # Pause / disable: the send did not happen; it waits in the queue, and the
                # attempt it was charged is given back.
                plan.update(
                    _status=QUEUED,
                    _code=error.code,
                    _reason=error.reason,
                    _attempts=job.attempts - 1,
                )
                if isinstance(error, errors.ChannelDisabledError):
                    await _disable_channel(conn, job, error, result)
                elif job.broadcast_id is not None:
                    await _pause(conn, job.broadcast_id, error.reason, result)
            if plan["_status"] == DeliveryStatus.FAILED.value and job.broadcast_id is not None:
                failed_broadcasts.add(job.broadcast_id)
            plans[job.table].append(plan)
        for name, table in (("deliveries", deliveries), ("messages", messages)):
            if plans[name]:
                await _write_plans(conn, table, plans[name], now)
        for broadcast_id in failed_broadcasts - set(result.paused_broadcasts):
            await _pause_if_failing(conn, broadcast_id, policy, result)
    return result


async def _write_plans(
    conn: AsyncConnection, table: Table, plans: list[dict[str, Any]], now: datetime
) -> None:
    values: dict[str, Any] = {
        "status": bindparam("_status"),
        "provider_message_id": bindparam("_pid"),
        "error_reason": bindparam("_reason"),
        "next_attempt_at": bindparam("_next"),
        "attempts": bindparam("_attempts"),
        "lease_until": None,
    }
    if table is deliveries:
        values.update(error_code=bindparam("_code"), updated_at=now)
    # Only rows still in flight: a row the sandbox (or a fast status webhook) already
    # moved past "sending" keeps its newer state.
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"), table.c.status == SENDING)
        .values(**values)
    )
    await conn.execute(stmt, plans)


async def _pause(
    conn: AsyncConnection, broadcast_id: int, reason: str, result: RecordResult
) -> None:
    await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.id == broadcast_id, broadcasts.c.status == "sending")
        .values(status="paused", status_reason=reason)
    )
    result.paused_broadcasts.append(broadcast_id)


async def _pause_if_failing(
    conn: AsyncConnection, broadcast_id: int, policy: RetryPolicy, result: RecordResult
) -> None:
    counts: dict[str, int] = dict(
        (
            await conn.execute(
                select(deliveries.c.status, func.count())
                .where(deliveries.c.broadcast_id == broadcast_id)
                .group_by(deliveries.c.status)
            )
        ).all()
    )
    failed = int(counts.get(DeliveryStatus.FAILED.value, 0))
    attempted = failed + sum(
        int(counts.get(s.value, 0))
        for s in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)
    )
    if should_pause(
        failed=failed,
        attempted=attempted,
        threshold=policy.pause_error_share,
        min_sample=policy.pause_min_sample,
    ):
        share = round(100 * failed / attempted)
        await _pause(conn, broadcast_id, f"paused: {share}% of {attempted} sends failed", result)


async def _disable_channel(
    conn: AsyncConnection, job: SendJob, error: errors.ChannelError, result: RecordResult
) -> None:
    disabled, paused = await mark_disabled(
        conn, system_actor(job.workspace_id), job.channel_id, error.reason
    )
    result.paused_broadcasts.extend(paused)
    if disabled:
        result.disabled_channels.append(job.channel_id)


async def requeue_expired(db: Database, *, everything: bool = False) -> int:
    """Give rows whose lease ran out back to the queue (``everything``: at embedded start,
    when no other process can own a lease on this SQLite file)."""
    now = utcnow()
    total = 0
    async with db.write() as conn:
        for table in (deliveries, messages):
            stmt = update(table).where(table.c.status == SENDING)
            if not everything:
                stmt = stmt.where(table.c.lease_until < now)
            done = await conn.execute(
                stmt.values(status=QUEUED, lease_until=None, next_attempt_at=now)
            )
            total += int(done.rowcount or 0)
    return total
