"""The webhook inbox: verified webhooks stored before the 200, applied in batches later.

At ~3,000 signed status POSTs per second, one transaction per POST is what limits a
web node. So the route only verifies the signature and hands the raw body over;
``store`` writes many waiting webhooks in one transaction (the group committer in
``worker.webhook_ingest`` calls it) and only then do their requests answer 200.

``apply_pending`` takes stored rows oldest first and carries them out with
``services.webhooks``: the statuses, consent and template events of a whole batch in
one transaction that also deletes the rows, so a row is applied exactly once even with
several appliers (PostgreSQL: ``FOR UPDATE SKIP LOCKED`` shares the backlog between
web nodes; SQLite has one writer at a time anyway). A webhook carrying inbound messages
is leased instead (``claimed_until`` and a ``claim`` token): its messages are received
one transaction each, as always, then its other events are applied in the transaction
that deletes it, only if the lease is still ours. Inbound messages are deduplicated by
their provider id, so a lease that ran out (the applier died or stalled) and was taken
over costs nothing but a repeat lookup. Rows a crash left behind are simply still there.

One bad item costs nothing else: when a batch fails, its items are applied one by one
(``apply_each``, a savepoint each), and an item that fails on its own — like each
inbound message in its own transaction — goes to the dead-letter list
(``services.dead_letters``) with its error, while the rest of its webhook is applied.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.base import InboundEvent, InboundMessage
from rundfunk.db.session import Database
from rundfunk.db.tables import webhook_inbox
from rundfunk.db.types import utcnow
from rundfunk.services import dead_letters, inbound
from rundfunk.services.dead_letters import is_transient
from rundfunk.services.outcomes import RecordResult, RetryPolicy
from rundfunk.services.webhooks import IngestResult, Webhook, apply_events

log = logging.getLogger(__name__)

BATCH = 256  # stored webhooks carried out per transaction
LEASE = timedelta(seconds=60)  # a webhook with inbound messages, taken by one applier
# A webhook failing this often as a whole (not one of its items: those are applied on
# their own) goes to the dead-letter list, where an admin sees it.
MAX_ATTEMPTS = 5

# A stored body → its events; None when its channel is gone (the row is dropped).
Parser = Callable[[int, bytes], Awaitable[Sequence[InboundEvent] | None]]


async def store(db: Database, webhooks: Sequence[tuple[int, bytes]]) -> None:
    """Write verified webhooks (channel id, raw body) in one transaction.

    A plain executemany: asking for the new ids (``RETURNING``) doubled the cost.
    """
    now = utcnow()
    rows = [{"channel_id": c, "body": body, "received_at": now} for c, body in webhooks]
    async with db.write() as conn:
        await conn.execute(insert(webhook_inbox), rows)


async def pending(db: Database) -> int:
    """How many stored webhooks wait to be applied (failed ones included)."""
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(webhook_inbox)) or 0)


@dataclass
class _Row:
    id: int
    channel_id: int
    events: Sequence[InboundEvent] | None


async def apply_pending(
    db: Database,
    parse: Parser,
    *,
    limit: int = BATCH,
    policy: RetryPolicy | None = None,
) -> tuple[int, IngestResult]:
    """Apply up to ``limit`` stored webhooks; returns (rows taken, what they did).

    A batch that fails as a whole (a row that cannot be applied) is tried again row by
    row, so one bad webhook costs only itself an attempt.
    """
    result = IngestResult()
    token = secrets.token_hex(16)
    try:
        taken, leased = await _batch(db, parse, None, limit, token, policy, result)
    except Exception:
        log.exception("a batch of stored webhooks failed; trying them one by one")
        result = IngestResult()
        taken, leased = await _one_by_one(db, parse, limit, token, policy, result)
    for row in leased:
        await _apply_leased(db, row, token, policy, result)
    return taken, result


async def _batch(
    db: Database,
    parse: Parser,
    row_id: int | None,
    limit: int,
    token: str,
    policy: RetryPolicy | None,
    result: IngestResult,
) -> tuple[int, list[_Row]]:
    """One transaction: take rows, apply those without messages, lease the others.

    On SQLite the rows are read and parsed before the write lock is taken (the lock
    is the whole file's: the committer and the dispatcher wait for it), then only the
    rows still there and free are applied. PostgreSQL locks just the rows it takes.
    """
    now = utcnow()
    free = and_(
        webhook_inbox.c.attempts < MAX_ATTEMPTS,
        or_(webhook_inbox.c.claimed_until.is_(None), webhook_inbox.c.claimed_until < now),
    )
    query = (
        select(webhook_inbox.c.id, webhook_inbox.c.channel_id, webhook_inbox.c.body)
        .where(free)
        .order_by(webhook_inbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if row_id is not None:
        query = query.where(webhook_inbox.c.id == row_id)
    parsed: dict[int, _Row] = {}
    if db.is_sqlite:
        async with db.read() as conn:
            found = (await conn.execute(query)).all()
        if not found:
            return 0, []
        parsed = {r.id: _Row(r.id, r.channel_id, await parse(r.channel_id, r.body)) for r in found}
    async with db.write() as conn:
        if parsed:
            ids = select(webhook_inbox.c.id).where(free, webhook_inbox.c.id.in_(list(parsed)))
            rows = [parsed[i] for i in sorted((await conn.execute(ids)).scalars())]
        else:
            found = (await conn.execute(query)).all()
            rows = [_Row(r.id, r.channel_id, await parse(r.channel_id, r.body)) for r in found]
        if not rows:
            return 0, []
        ready = [r for r in rows if not _has_messages(r.events)]
        leased = [r for r in rows if _has_messages(r.events)]
        webhooks: list[Webhook] = [(r.channel_id, r.events) for r in ready if r.events]
        await apply_each(conn, webhooks, policy=policy, result=result)
        await _delete(conn, [r.id for r in ready])
        if leased:
            await conn.execute(
                update(webhook_inbox)
                .where(webhook_inbox.c.id.in_([r.id for r in leased]))
                .values(claimed_until=now + LEASE, claim=token)
            )
    result.webhooks += len(ready)
    return len(rows), leased


async def _one_by_one(
    db: Database,
    parse: Parser,
    limit: int,
    token: str,
    policy: RetryPolicy | None,
    result: IngestResult,
) -> tuple[int, list[_Row]]:
    async with db.read() as conn:
        found = await conn.execute(
            select(webhook_inbox.c.id)
            .where(webhook_inbox.c.attempts < MAX_ATTEMPTS)
            .order_by(webhook_inbox.c.id)
            .limit(limit)
        )
        ids = list(found.scalars())
    taken, leased = 0, []
    for row_id in ids:
        try:
            count, more = await _batch(db, parse, row_id, 1, token, policy, result)
        except Exception as exc:
            await _failed(db, row_id, exc)
            taken += 1
        else:
            taken += count
            leased += more
    return taken, leased


async def _apply_leased(
    db: Database, row: _Row, token: str, policy: RetryPolicy | None, result: IngestResult
) -> None:
    """A webhook with inbound messages: each message in its own transaction, then the
    rest in the one that deletes the row — if no other applier took the lease over."""
    assert row.events is not None
    try:
        await _receive_each(db, row.channel_id, row.events, result)
        async with db.write() as conn:
            gone = await conn.execute(
                delete(webhook_inbox)
                .where(webhook_inbox.c.id == row.id, webhook_inbox.c.claim == token)
                .returning(webhook_inbox.c.id)
            )
            if gone.first() is None:
                return  # our lease ran out and another applier has it now
            await apply_each(conn, [(row.channel_id, row.events)], policy=policy, result=result)
    except Exception as exc:
        log.exception("stored webhook %s failed", row.id)
        await _failed(db, row.id, exc)
        return
    result.webhooks += 1


async def _failed(db: Database, row_id: int, exc: Exception) -> None:
    """Count a failed attempt; the row is tried again later, up to ``MAX_ATTEMPTS``,
    then it goes to the dead-letter list with its error."""
    error = dead_letters.describe(exc)
    values: dict[str, Any] = {
        "attempts": webhook_inbox.c.attempts + 1,
        "last_error": error,
        "claimed_until": None,
        "claim": None,
    }
    async with db.write() as conn:
        attempts = await conn.scalar(
            update(webhook_inbox)
            .where(webhook_inbox.c.id == row_id)
            .values(**values)
            .returning(webhook_inbox.c.attempts)
        )
        if attempts is not None and attempts >= MAX_ATTEMPTS:
            await dead_letters.record_webhook(conn, row_id=row_id, error=error)


async def apply_each(
    conn: AsyncConnection,
    webhooks: Sequence[Webhook],
    *,
    policy: RetryPolicy | None = None,
    result: IngestResult,
) -> None:
    """``apply_events`` for ``webhooks``, at once while nothing fails; else each item on
    its own (a savepoint each), and an item that fails even alone is dead-lettered in
    this transaction. Either way the caller's transaction can then delete the rows.

    The common case stays one batch (one read and one write per table for hundreds of
    webhooks); the savepoint around it costs a round trip. A failure of the database
    itself (``is_transient``) is raised: the rows stay and are applied later.
    """
    part = IngestResult()
    try:
        async with conn.begin_nested():
            await apply_events(conn, webhooks, policy=policy, result=part)
    except Exception as exc:
        if is_transient(exc):
            raise
        log.warning("applying %d stored webhooks failed (%s): item by item", len(webhooks), exc)
    else:
        _merge(result, part)
        return
    for channel_id, events in webhooks:
        for event in events:
            if isinstance(event, InboundMessage):
                continue  # received in transactions of their own
            part = IngestResult()
            try:
                async with conn.begin_nested():
                    await apply_events(conn, [(channel_id, [event])], policy=policy, result=part)
            except Exception as exc:
                if is_transient(exc):
                    raise
                await dead_letters.record(conn, channel_id=channel_id, event=event, error=exc)
            else:
                _merge(result, part)


async def _receive_each(
    db: Database, channel_id: int, events: Sequence[InboundEvent], result: IngestResult
) -> None:
    """The inbound messages of one webhook, each in its own transaction; one that
    fails (not for the database's sake) is dead-lettered and the others go on."""
    for event in events:
        if not isinstance(event, InboundMessage):
            continue
        try:
            outcome = await inbound.receive(db, channel_id=channel_id, event=event)
        except Exception as exc:
            if is_transient(exc):
                raise
            async with db.write() as conn:
                await dead_letters.record(conn, channel_id=channel_id, event=event, error=exc)
            continue
        result.messages += 1
        result.duplicates += int(outcome.duplicate)


def _merge(result: IngestResult, part: IngestResult) -> None:
    result.add(part)
    effects: RecordResult = result.effects
    effects.paused_broadcasts.extend(part.effects.paused_broadcasts)
    effects.disabled_channels.extend(part.effects.disabled_channels)


async def _delete(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(delete(webhook_inbox).where(webhook_inbox.c.id.in_(ids)))


def _has_messages(events: Sequence[InboundEvent] | None) -> bool:
    return events is not None and any(isinstance(e, InboundMessage) for e in events)
