"""Recording a chunk's send outcomes: one transaction, decided by the error's class.

sent · retry with backoff · failed · unsubscribe (recipient gone, opted out) ·
pause the broadcast · disable the channel; and a broadcast pauses itself once too
large a share of its sends failed (see core.errors for the tree). Once committed,
each outcome is counted in ``rundfunk_sends_total`` and each error in
``rundfunk_send_errors_total`` by channel kind.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk import metrics
from rundfunk.core import errors
from rundfunk.core.deliveries import DeliveryStatus, retry_delay, should_pause
from rundfunk.db.broadcast_signals import broadcast_moved
from rundfunk.db.changes import changed
from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts, channels, deliveries, messages
from rundfunk.db.types import UTCDateTime, utcnow
from rundfunk.services import subscriptions as subs
from rundfunk.services.actors import system_actor
from rundfunk.services.channels import mark_disabled
from rundfunk.services.dispatch import QUEUED, SENDING, SendOutcome


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


@dataclass(frozen=True)
class Target:
    """The row an outcome is about: what deciding and carrying out its effect needs."""

    table: str  # "deliveries" | "messages"
    id: int
    workspace_id: int
    channel_id: int
    contact_id: int
    attempts: int
    broadcast_id: int | None


def plan_error(
    error: errors.ChannelError,
    target: Target,
    *,
    policy: RetryPolicy,
    now: datetime,
    jitter: float,
) -> dict[str, Any]:
    """What a failed send does to its row (status, next attempt, reason), by error class.

    The same decision serves an error answered to the send request and a ``failed``
    status reported later by webhook.
    """
    plan: dict[str, Any] = {"_code": error.code, "_reason": error.reason, "_next": now}
    if isinstance(error, errors.OutcomeUnknownError):
        # Maybe accepted: stay "sending" with an expired lease. The status callback settles
        # it, or requeue_expired sends it again after the settle time (see dispatch).
        plan.update(_status=SENDING, _lease=now)
    elif isinstance(error, errors.RetryableError):
        if target.attempts >= policy.max_attempts:
            plan.update(
                _status=DeliveryStatus.FAILED.value,
                _reason=f"gave up after {target.attempts} attempts: {error.reason}",
            )
        else:
            delay = retry_delay(
                max(1, target.attempts),
                base=policy.base_seconds,
                cap=policy.cap_seconds,
                jitter=jitter,
            )
            delay = max(delay, error.retry_after or 0.0)
            plan.update(_status=QUEUED, _next=now + timedelta(seconds=delay))
    elif isinstance(error, errors.PermanentError):
        plan["_status"] = DeliveryStatus.FAILED.value
    elif isinstance(error, errors.PauseBroadcastError) and target.broadcast_id is None:
        # A conversation message has no broadcast to pause: it fails with the reason.
        plan["_status"] = DeliveryStatus.FAILED.value
    else:
        # Pause / disable: the send did not happen; it waits in the queue, and the
        # attempt it was charged is given back.
        plan.update(_status=QUEUED, _attempts=target.attempts - 1)
    return plan


async def carry_out(
    conn: AsyncConnection, error: errors.ChannelError, target: Target, result: RecordResult
) -> None:
    """The error's effect beyond its own row: unsubscribe, pause, disable the channel."""
    if isinstance(error, errors.RecipientGoneError | errors.OptedOutError):
        await subs.opt_out(
            conn,
            workspace_id=target.workspace_id,
            contact_id=target.contact_id,
            topic_id=None,
            source="send_error",
            actor="platform",
            keyword=error.reason,
        )
    elif isinstance(error, errors.ChannelDisabledError):
        disabled, paused = await mark_disabled(
            conn, system_actor(target.workspace_id), target.channel_id, error.reason
        )
        result.paused_broadcasts.extend(paused)
        if disabled:
            result.disabled_channels.append(target.channel_id)
    elif isinstance(error, errors.PauseBroadcastError) and target.broadcast_id is not None:
        await _pause(conn, target.broadcast_id, error.reason, result)


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
    counted: list[tuple[int, str, str | None]] = []  # channel, outcome label, error code
    async with db.write() as conn:
        for workspace_id in {outcome.job.workspace_id for outcome in outcomes}:
            changed(conn, workspace_id)  # live progress bars and phone simulators
        for outcome in outcomes:
            job, error = outcome.job, outcome.error
            plan: dict[str, Any] = {
                "_id": job.id,
                "_pid": outcome.provider_message_id,
                "_code": None,
                "_reason": None,
                "_next": now,
                "_attempts": job.attempts,
                "_lease": None,
                "_claimed": job.attempts,  # which claim this outcome belongs to
            }
            if outcome.skipped:
                plan.update(
                    _status=DeliveryStatus.SKIPPED.value, _reason="unsubscribed before send"
                )
            elif outcome.defer_seconds is not None:
                # Held back before sending (pair rate): not an attempt, not an error.
                plan.update(
                    _status=QUEUED,
                    _attempts=job.attempts - 1,
                    _next=now + timedelta(seconds=outcome.defer_seconds),
                    _code="pair_rate",
                    _reason=outcome.defer_reason,
                )
            elif error is None:
                plan["_status"] = DeliveryStatus.SENT.value
            else:
                target = Target(
                    job.table,
                    job.id,
                    job.workspace_id,
                    job.channel_id,
                    job.contact_id,
                    job.attempts,
                    job.broadcast_id,
                )
                plan.update(plan_error(error, target, policy=policy, now=now, jitter=rng.random()))
                await carry_out(conn, error, target, result)
            if plan["_status"] == DeliveryStatus.FAILED.value and job.broadcast_id is not None:
                failed_broadcasts.add(job.broadcast_id)
            plans[job.table].append(plan)
            counted.append((job.channel_id, _label(outcome, plan), _error_code(error)))
        for name, table in (("deliveries", deliveries), ("messages", messages)):
            if plans[name]:
                await _write_plans(conn, table, plans[name], now)
        for broadcast_id in failed_broadcasts - set(result.paused_broadcasts):
            await _pause_if_failing(conn, broadcast_id, policy, result)
        kinds = await _channel_kinds(conn, {channel_id for channel_id, _, _ in counted})
    # Counted once committed (a chunk whose recording failed is sent again later), per
    # chunk rather than per send: a label lookup takes a lock.
    sends = Counter((kinds.get(c, "unknown"), label) for c, label, _ in counted)
    codes = Counter((kinds.get(c, "unknown"), code) for c, _, code in counted if code)
    for (kind, label), n in sends.items():
        metrics.SENDS.labels(channel_kind=kind, outcome=label).inc(n)
    for (kind, code), n in codes.items():
        metrics.SEND_ERRORS.labels(channel_kind=kind, code=code).inc(n)
    return result


_PLANNED_LABELS = {
    DeliveryStatus.SENT.value: metrics.SENT,
    DeliveryStatus.FAILED.value: metrics.FAILED,
    DeliveryStatus.SKIPPED.value: metrics.SKIPPED,
    QUEUED: metrics.RETRY,  # also a send put back while its broadcast pauses
    SENDING: metrics.UNKNOWN,  # the status callback settles it
}


def _label(outcome: SendOutcome, plan: dict[str, Any]) -> str:
    """The ``outcome`` label of ``rundfunk_sends_total`` for one recorded send."""
    if outcome.defer_seconds is not None:
        return metrics.DEFERRED
    return _PLANNED_LABELS[plan["_status"]]


def _error_code(error: errors.ChannelError | None) -> str | None:
    """The ``code`` label: the provider's code, or the error's class for code-less ones."""
    if error is None:
        return None
    return error.code or type(error).__name__


async def _channel_kinds(conn: AsyncConnection, channel_ids: set[int]) -> dict[int, str]:
    if not channel_ids:
        return {}
    rows = await conn.execute(
        select(channels.c.id, channels.c.kind).where(channels.c.id.in_(channel_ids))
    )
    return {int(row.id): str(row.kind) for row in rows}


async def _write_plans(
    conn: AsyncConnection, table: Table, plans: list[dict[str, Any]], now: datetime
) -> None:
    # In id order: status webhooks lock the same rows in id order (no deadlock).
    plans = sorted(plans, key=lambda plan: int(plan["_id"]))
    for plan in plans:
        plan["_sent"] = now if plan["_status"] == DeliveryStatus.SENT.value else None
    values: dict[str, Any] = {
        "status": bindparam("_status"),
        "provider_message_id": func.coalesce(bindparam("_pid"), table.c.provider_message_id),
        "error_reason": bindparam("_reason"),
        "next_attempt_at": bindparam("_next"),
        "attempts": bindparam("_attempts"),
        "lease_until": bindparam("_lease"),
    }
    if table is deliveries:
        values.update(
            error_code=bindparam("_code"),
            updated_at=now,
            sent_at=func.coalesce(deliveries.c.sent_at, bindparam("_sent", type_=UTCDateTime())),
        )
    # Only rows still in flight under this claim: a row the sandbox (or a fast status
    # webhook) already moved past "sending" keeps its newer state, and so does a row
    # whose lease ran out and that another claim took (its attempts moved on).
    stmt = (
        update(table)
        .where(
            table.c.id == bindparam("_id"),
            table.c.status == SENDING,
            table.c.attempts == bindparam("_claimed"),
        )
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
    await broadcast_moved(conn, broadcast_id, "paused")  # every worker stops its sends
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
