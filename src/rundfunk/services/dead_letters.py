"""The dead-letter list: webhook items that could not be applied, kept for an admin.

The platform got its 200 when the webhook was stored and will never send it again, so
an item the applier cannot carry out (``services.webhook_inbox`` applies each item on
its own once a batch fails) is not dropped: ``record`` keeps the event as JSON with the
error, in the applier's transaction, counts it (``rundfunk_webhook_dead_letters``) and
logs it. Admins list them per workspace, ``retry`` one (carried out like the original;
on success it leaves the list) or ``discard`` it. A whole stored webhook that kept
failing before it could be split into items becomes one entry of kind ``webhook``;
its retry puts it back into the inbox.

Only errors of the item itself land here: a database that is down or locked
(``is_transient``) fails the whole pass, and the webhook is simply applied later.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels import event_codec
from rundfunk.channels.base import InboundEvent, InboundMessage
from rundfunk.core.text import clean_json, clean_text
from rundfunk.db.session import Database
from rundfunk.db.tables import channels, webhook_dead_letters, webhook_inbox
from rundfunk.db.types import utcnow
from rundfunk.metrics import WEBHOOK_DEAD_LETTERS
from rundfunk.services import audit, inbound
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import Conflict, NotFound
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.services.webhooks import IngestResult, apply_events

log = logging.getLogger(__name__)

MAX_ERROR = 2000  # characters of an error kept with its item
WEBHOOK = "webhook"  # the kind of a whole stored webhook


@dataclass(frozen=True)
class DeadLetter:
    """One item that could not be applied, as an admin sees it."""

    id: int
    channel_id: int
    kind: str  # message | status | consent | template | webhook
    item: dict[str, Any]
    error: str
    first_failed_at: datetime
    last_failed_at: datetime
    attempts: int


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's trouble (down, locked, connection lost) rather
    than the item's: then nothing is dead-lettered and the webhook is tried again."""
    if isinstance(exc, DBAPIError):
        state = str(getattr(exc.orig, "sqlstate", None) or "")
        # Connection (08), rolled back for concurrency (40: deadlock, serialization),
        # too busy (53), the server going down (57P): the database's, not the item's.
        if exc.connection_invalidated or state[:2] in {"08", "40", "53"} or state[:3] == "57P":
            return True
    return isinstance(
        exc,
        OperationalError
        | InterfaceError
        | DisconnectionError
        | OSError
        | TimeoutError
        | asyncio.CancelledError,
    )


def describe(exc: BaseException) -> str:
    """The error as stored: its class and message, storable and bounded."""
    return clean_text(f"{type(exc).__name__}: {exc}", MAX_ERROR)


async def record(
    conn: AsyncConnection, *, channel_id: int, event: InboundEvent, error: BaseException
) -> None:
    """Keep ``event`` of a webhook of ``channel_id`` with ``error``, in the caller's
    transaction (it commits together with the removal of the stored webhook)."""
    await _insert(
        conn, channel_id, event_codec.kind_of(event), event_codec.encode(event), describe(error)
    )


async def record_webhook(conn: AsyncConnection, *, row_id: int, error: str) -> bool:
    """Move the stored webhook ``row_id`` (it failed too often as a whole) into the list;
    False when it is gone (applied or moved by another applier meanwhile)."""
    row = (
        await conn.execute(
            select(webhook_inbox.c.channel_id, webhook_inbox.c.body).where(
                webhook_inbox.c.id == row_id
            )
        )
    ).first()
    if row is None:
        return False
    await _insert(conn, row.channel_id, WEBHOOK, _body_item(row.body), clean_text(error, MAX_ERROR))
    await conn.execute(delete(webhook_inbox).where(webhook_inbox.c.id == row_id))
    return True


async def _insert(
    conn: AsyncConnection, channel_id: int, kind: str, item: dict[str, Any], error: str
) -> None:
    channel = (
        await conn.execute(
            select(channels.c.workspace_id, channels.c.kind).where(channels.c.id == channel_id)
        )
    ).first()
    if channel is None:
        log.warning("webhook %s item of channel %s, which is gone: dropped", kind, channel_id)
        return
    now = utcnow()
    await conn.execute(
        insert(webhook_dead_letters).values(
            workspace_id=channel.workspace_id,
            channel_id=channel_id,
            kind=kind,
            # ensure_ascii: a lone surrogate or NUL that got this far is kept as an escape.
            item=json.dumps(item, ensure_ascii=True, default=str),
            error=error,
            first_failed_at=now,
            last_failed_at=now,
            attempts=1,
        )
    )
    WEBHOOK_DEAD_LETTERS.labels(channel_kind=channel.kind, item=kind).inc()
    # The first line only: a database error goes on with the statement's parameters,
    # which hold what a person wrote (kept for the workspace's admins, not for the log).
    log.warning(
        "webhook %s item of channel %s could not be applied, kept in the dead-letter list: %s",
        kind,
        channel_id,
        error.splitlines()[0] if error else "",
    )


def _body_item(body: bytes) -> dict[str, Any]:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}


# --- what admins do with them ---------------------------------------------------------


async def list_dead_letters(
    db: Database,
    *,
    actor: Actor,
    channel_id: int | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[DeadLetter]:
    """The workspace's dead letters, oldest first, ``limit`` after ``after_id``."""
    actor.require(Role.ADMIN)
    query = (
        select(webhook_dead_letters)
        .where(
            webhook_dead_letters.c.workspace_id == actor.workspace_id,
            webhook_dead_letters.c.id > after_id,
        )
        .order_by(webhook_dead_letters.c.id)
        .limit(limit)
    )
    if channel_id is not None:
        query = query.where(webhook_dead_letters.c.channel_id == channel_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [_read(row) for row in rows]


def _read(row: Any) -> DeadLetter:
    try:
        item = json.loads(row.item)
    except ValueError:
        item = {"unreadable": row.item}
    # Cleaned for showing: a lone surrogate cannot be written out as UTF-8 JSON.
    shown = clean_json(item)
    return DeadLetter(
        id=row.id,
        channel_id=row.channel_id,
        kind=row.kind,
        item=shown if isinstance(shown, dict) else {"value": shown},
        error=row.error,
        first_failed_at=row.first_failed_at,
        last_failed_at=row.last_failed_at,
        attempts=row.attempts,
    )


async def _owned(conn: AsyncConnection, actor: Actor, dead_letter_id: int) -> Any:
    row = (
        await conn.execute(
            select(webhook_dead_letters).where(
                webhook_dead_letters.c.id == dead_letter_id,
                webhook_dead_letters.c.workspace_id == actor.workspace_id,
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no failed webhook item {dead_letter_id}")
    return row


async def discard(db: Database, *, actor: Actor, dead_letter_id: int) -> None:
    """Give the item up: it leaves the list without being applied (audited)."""
    actor.require(Role.ADMIN)
    async with db.write() as conn:
        row = await _owned(conn, actor, dead_letter_id)
        await conn.execute(
            delete(webhook_dead_letters).where(webhook_dead_letters.c.id == dead_letter_id)
        )
        await audit.record(
            conn,
            actor,
            "webhook_item.discard",
            target_type="webhook_item",
            target_id=dead_letter_id,
            details={"channel_id": row.channel_id, "kind": row.kind, "error": row.error[:200]},
        )


async def retry(
    db: Database, *, actor: Actor, dead_letter_id: int, policy: RetryPolicy | None = None
) -> IngestResult:
    """Carry the item out again. Applied, it leaves the list (audited); failing again,
    it stays with the new error and one more attempt, and ``Conflict`` says why. A
    whole webhook goes back into the inbox, where the applier takes it."""
    actor.require(Role.ADMIN)
    async with db.read() as conn:
        row = await _owned(conn, actor, dead_letter_id)
    result = IngestResult()
    try:
        await _apply(db, row, policy, result)
    except Exception as exc:
        if is_transient(exc):
            raise
        error = describe(exc)
        async with db.write() as conn:
            await conn.execute(
                update(webhook_dead_letters)
                .where(webhook_dead_letters.c.id == dead_letter_id)
                .values(
                    error=error,
                    last_failed_at=utcnow(),
                    attempts=webhook_dead_letters.c.attempts + 1,
                )
            )
        raise Conflict(f"the item still cannot be applied: {error}") from None
    async with db.write() as conn:
        await conn.execute(
            delete(webhook_dead_letters).where(webhook_dead_letters.c.id == dead_letter_id)
        )
        await audit.record(
            conn,
            actor,
            "webhook_item.retry",
            target_type="webhook_item",
            target_id=dead_letter_id,
            details={"channel_id": row.channel_id, "kind": row.kind},
        )
    return result


async def _apply(db: Database, row: Any, policy: RetryPolicy | None, result: IngestResult) -> None:
    data = json.loads(row.item)
    if row.kind == WEBHOOK:
        body = (
            data["body"].encode("utf-8", "surrogatepass")
            if "body" in data
            else _b64(data.get("body_base64"))
        )
        async with db.write() as conn:
            await conn.execute(
                insert(webhook_inbox).values(
                    channel_id=row.channel_id, body=body, received_at=utcnow(), attempts=0
                )
            )
        return
    event = event_codec.decode(row.kind, data)
    if isinstance(event, InboundMessage):
        outcome = await inbound.receive(db, channel_id=row.channel_id, event=event)
        result.messages += 1
        result.duplicates += int(outcome.duplicate)
        return
    async with db.write() as conn:
        await apply_events(conn, [(row.channel_id, [event])], policy=policy, result=result)


def _b64(text: object) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise event_codec.UnreadableItem(f"a stored webhook that cannot be read: {exc}") from None
