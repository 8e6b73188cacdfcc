"""Apply the platform's status reports to deliveries and messages, forward-only.

Statuses arrive out of order and duplicated; ``core.deliveries.advance`` decides
whether each one moves a row. A batch is applied with one read and one write per
table, inside the caller's transaction.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, and_, bindparam, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from rundfunk.channels.base import StatusUpdate
from rundfunk.core.deliveries import DeliveryStatus, advance
from rundfunk.core.text import bounded_int
from rundfunk.db.changes import changed as mark_changed
from rundfunk.db.tables import broadcasts, deliveries, messages
from rundfunk.db.types import MAX_ID, UTCDateTime, utcnow
from rundfunk.services.outcomes import RecordResult, RetryPolicy, Target, carry_out, plan_error


def parse_callback(data: str | None) -> tuple[str, int] | None:
    """Our callback data: ``d:<delivery id>`` or ``m:<message id>``.

    Anything else — including an id no column can hold (``d:`` and 30 digits raised
    in the driver and failed the whole webhook) — is unknown: the status is then
    matched by its provider message id alone.
    """
    if not data or len(data) < 3 or data[1] != ":" or data[0] not in "dm":
        return None
    row_id = bounded_int(data[2:], low=1, high=MAX_ID)
    if row_id is None:
        return None
    return ("deliveries" if data[0] == "d" else "messages", row_id)


async def apply_statuses(
    conn: AsyncConnection,
    *,
    channel_id: int,
    updates: Sequence[StatusUpdate],
    policy: RetryPolicy | None = None,
    result: RecordResult | None = None,
) -> int:
    """Apply a batch of status updates of one channel; returns how many rows changed.

    A ``failed`` status carrying a classified error is handled like the same error at
    send time: a retryable one (131049's marketing cap, a rate limit) puts the row back
    in the queue for later, an opt-out unsubscribes, a paused template pauses the
    broadcast. ``result`` collects paused broadcasts and disabled channels.
    """
    return await apply_status_batch(conn, {channel_id: updates}, policy=policy, result=result)


async def apply_status_batch(
    conn: AsyncConnection,
    updates: Mapping[int, Sequence[StatusUpdate]],
    *,
    policy: RetryPolicy | None = None,
    result: RecordResult | None = None,
) -> int:
    """``apply_statuses`` for the webhooks of several channels (channel id → updates).

    The webhook inbox applies hundreds of stored webhooks in one transaction: one read
    and one write per table for all of them, every row locked in one id-ordered
    statement, so batches of different channels cannot deadlock each other either.
    """
    by_table: dict[str, dict[_Key, list[StatusUpdate]]] = {"deliveries": {}, "messages": {}}
    by_provider: dict[tuple[int, str], list[StatusUpdate]] = {}
    for channel_id, items in updates.items():
        for item in items:
            target = parse_callback(item.callback_data)
            if target is None:
                key = (channel_id, item.provider_message_id)
                by_provider.setdefault(key, []).append(item)
            else:
                by_table[target[0]].setdefault((channel_id, target[1]), []).append(item)
    changed = 0
    context = _Context(policy or RetryPolicy(), result or RecordResult(), utcnow())
    for name, table in (("deliveries", deliveries), ("messages", messages)):
        changed += await _apply(conn, table, by_table[name], by_provider, context)
    return changed


_Key = tuple[int, int]  # (channel id, row id)


@dataclass
class _Context:
    policy: RetryPolicy
    result: RecordResult
    now: datetime
    rng: random.Random = field(default_factory=random.Random)


def _rows(table: Table, conditions: list[ColumnElement[bool]]) -> Select[Any]:
    """The rows the statuses name, locked until the caller's transaction ends.

    Each row's new state is worked out from the state read here, so two webhooks on
    one row must not interleave: on PostgreSQL a "sent" planned from "sending" was
    written over a "delivered" committed meanwhile, and the row stayed "sent". Locked
    in id order, as the dispatcher writes its outcomes, so the two never deadlock.
    (SQLite's BEGIN IMMEDIATE serializes them anyway; it has no FOR UPDATE.)
    """
    return _unlocked(table, conditions).order_by(table.c.id).with_for_update(of=table)


def _unlocked(table: Table, conditions: list[ColumnElement[bool]]) -> Select[Any]:
    if table is deliveries:
        return (
            select(
                deliveries.c.id,
                deliveries.c.channel_id,
                deliveries.c.status,
                deliveries.c.provider_message_id,
                deliveries.c.attempts,
                deliveries.c.contact_id,
                deliveries.c.broadcast_id,
                broadcasts.c.workspace_id,
            )
            .join(broadcasts, broadcasts.c.id == deliveries.c.broadcast_id)
            .where(or_(*conditions))
        )
    return select(
        messages.c.id,
        messages.c.channel_id,
        messages.c.status,
        messages.c.provider_message_id,
        messages.c.attempts,
        messages.c.contact_id,
        literal(None).label("broadcast_id"),
        messages.c.workspace_id,
    ).where(or_(*conditions))


async def _apply(
    conn: AsyncConnection,
    table: Table,
    by_id: dict[_Key, list[StatusUpdate]],
    by_provider: dict[tuple[int, str], list[StatusUpdate]],
    context: _Context,
) -> int:
    if not by_id and not by_provider:
        return 0
    rows = (await conn.execute(_rows(table, _conditions(table, by_id, by_provider)))).all()
    params: list[dict[str, Any]] = []
    for row in rows:
        incoming = list(by_id.get((row.channel_id, row.id), []))
        incoming += by_provider.pop((row.channel_id, row.provider_message_id), [])
        plan = await _settle(conn, table, row, incoming, context)
        if plan is not None:
            params.append(plan)
            mark_changed(conn, row.workspace_id)  # funnels and threads of open consoles
    if params:
        values: dict[str, Any] = {
            "status": bindparam("_status"),
            "error_reason": bindparam("_reason"),
            "provider_message_id": func.coalesce(bindparam("_pid"), table.c.provider_message_id),
            "next_attempt_at": bindparam("_next"),
            "lease_until": None,
        }
        if table is deliveries:
            values.update(
                updated_at=context.now,
                error_code=bindparam("_code"),
                sent_at=func.coalesce(
                    deliveries.c.sent_at, bindparam("_sent", type_=UTCDateTime())
                ),
            )
        await conn.execute(
            update(table).where(table.c.id == bindparam("_id")).values(**values), params
        )
    return len(params)


def _conditions(
    table: Table,
    by_id: dict[_Key, list[StatusUpdate]],
    by_provider: dict[tuple[int, str], list[StatusUpdate]],
) -> list[ColumnElement[bool]]:
    """Per channel: its rows named by id or by provider id. Scoped to the channel, a
    webhook of one channel can never touch another's rows."""
    ids: dict[int, list[int]] = {}
    pids: dict[int, list[str]] = {}
    for channel_id, row_id in by_id:
        ids.setdefault(channel_id, []).append(row_id)
    for channel_id, pid in by_provider:
        pids.setdefault(channel_id, []).append(pid)
    conditions: list[ColumnElement[bool]] = []
    for channel_id in sorted(ids.keys() | pids.keys()):
        named: list[ColumnElement[bool]] = []
        if channel_id in ids:
            named.append(table.c.id.in_(ids[channel_id]))
        if channel_id in pids:
            named.append(table.c.provider_message_id.in_(pids[channel_id]))
        conditions.append(and_(table.c.channel_id == channel_id, or_(*named)))
    return conditions


async def _settle(
    conn: AsyncConnection,
    table: Table,
    row: Any,
    incoming: list[StatusUpdate],
    context: _Context,
) -> dict[str, Any] | None:
    """Walk one row's incoming statuses in time order; the row's new values, if any."""
    if row.status not in _OUTBOUND:
        return None  # an inbound message's id: platforms report no status on those
    status = DeliveryStatus(row.status)
    # A row back in the queue (or being sent again) keeps the id of its last accepted
    # attempt, whose failure was handled already: reports on that id are old news, bar
    # a device's receipt; a report on another id is about the attempt under way, whose
    # answer may have been lost (it names the row by its callback data).
    retired = row.provider_message_id if status in _WAITING else None
    pid = None if retired is not None else row.provider_message_id
    plan: dict[str, Any] = {"_code": None, "_reason": None, "_next": context.now}
    for item in sorted(incoming, key=lambda u: u.timestamp):
        if item.provider_message_id == retired and item.status not in _RECEIPTS:
            continue  # a duplicate or late report on the attempt that failed
        if pid is not None and item.provider_message_id != pid:
            continue  # a report on an earlier attempt of a row that was sent again since
        moved = advance(status, item.status)
        if moved is None:
            continue
        pid = item.provider_message_id
        if moved is DeliveryStatus.FAILED and item.error is not None:
            target = Target(
                table.name,
                row.id,
                row.workspace_id,
                row.channel_id,
                row.contact_id,
                row.attempts,
                row.broadcast_id,
            )
            decided = plan_error(
                item.error,
                target,
                policy=context.policy,
                now=context.now,
                jitter=context.rng.random(),
            )
            if decided["_status"] == DeliveryStatus.QUEUED.value and row.broadcast_id is not None:
                await _reopen(conn, row.broadcast_id)
            await carry_out(conn, item.error, target, context.result)
            status = DeliveryStatus(decided["_status"])
            if status is DeliveryStatus.SENDING:  # "unknown" cannot come from a report
                status = DeliveryStatus.FAILED
            if status in _WAITING:  # back in the queue: this attempt is over
                retired, pid = pid, None
            plan.update(_code=decided["_code"], _reason=decided["_reason"], _next=decided["_next"])
        else:
            status = moved
            if moved is DeliveryStatus.FAILED:
                plan.update(_code=item.error_code, _reason=item.error_reason)
            else:
                plan.update(_code=None, _reason=None)
    if status.value == row.status:
        return None
    if row.status == DeliveryStatus.FAILED.value and status in _ACCEPTED and row.broadcast_id:
        await _proven(conn, row.broadcast_id)
    return {
        **plan,
        "_id": row.id,
        "_status": status.value,
        "_pid": pid or retired,
        "_sent": context.now if status in _ACCEPTED else None,
    }


async def _reopen(conn: AsyncConnection, broadcast_id: int) -> None:
    """A finished broadcast whose delivery goes back to the queue is sending again.

    The report often comes after the last send finished the broadcast; the dispatcher
    only claims rows of sending broadcasts, so a row queued under a done one (131049's
    retry tomorrow) would wait forever. Reopened first, a pausing error then pauses it.
    """
    await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.id == broadcast_id, broadcasts.c.status.in_(("done", "failed")))
        .values(status="sending", finished_at=None, status_reason=None)
    )


async def _proven(conn: AsyncConnection, broadcast_id: int) -> None:
    """A failed broadcast one of whose copies proves to have arrived is done after all
    (core.broadcast_status: failed means no copy went out)."""
    await conn.execute(
        update(broadcasts)
        .where(broadcasts.c.id == broadcast_id, broadcasts.c.status == "failed")
        .values(status="done", status_reason=None)
    )


_OUTBOUND = frozenset(s.value for s in DeliveryStatus)
_ACCEPTED = frozenset({DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ})
_WAITING = frozenset({DeliveryStatus.QUEUED, DeliveryStatus.SENDING})
_RECEIPTS = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.READ})
