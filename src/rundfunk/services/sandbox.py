"""The sandbox platform's storage: what the simulated phones received and reported.

``DatabaseSandbox.deliver`` writes the phone's receipt and marks the delivery (or
message) sent in the same transaction, guarded by ``status = 'sending'``: a row is
put on a phone at most once, whatever crashes when. Receipts are written in groups
(one commit for all sends that arrive within a few milliseconds) because a commit
per message would cap the sandbox at the disk's commit rate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.channels.base import (
    MAX_ADDRESS,
    MAX_NAME,
    InboundMessage,
    OutboundMessage,
    StatusUpdate,
)
from rundfunk.channels.sandbox import SandboxBehaviour
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.core.errors import RetryableError
from rundfunk.core.text import clean_optional, clean_text
from rundfunk.db.session import Database
from rundfunk.db.tables import (
    channels,
    contacts,
    conversations,
    deliveries,
    messages,
    sandbox_messages,
)
from rundfunk.db.types import utcnow
from rundfunk.services import inbound
from rundfunk.services.actors import Actor, Role
from rundfunk.services.batching import GroupBatcher
from rundfunk.services.errors import Invalid, NotFound
from rundfunk.services.statuses import apply_statuses, parse_callback


@dataclass(frozen=True)
class _Send:
    channel_id: int
    message: OutboundMessage


def _storage_failed(exc: Exception) -> Exception:
    # The whole group rolled back: nothing reached a phone, so a retry is safe.
    return RetryableError(f"sandbox storage failed: {exc}", code="sandbox_storage")


class DatabaseSandbox:
    """Implements ``channels.sandbox.SandboxPlatform`` on Rundfunk's own database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._batcher: GroupBatcher[_Send, str] = GroupBatcher(
            self._write, on_error=_storage_failed
        )

    async def deliver(self, channel_id: int, message: OutboundMessage) -> str:
        return await self._batcher.submit(_Send(channel_id, message))

    async def _write(self, batch: list[_Send]) -> list[str]:
        async with self._db.write() as conn:
            return await _put_on_phones(conn, batch)


async def _put_on_phones(conn: AsyncConnection, batch: list[_Send]) -> list[str]:
    """Write a group of sends with a few set-based statements; returns provider ids.

    A row that is no longer queued or sending was put on its phone by an earlier
    attempt: it gets that attempt's id back and no second copy.
    """
    now = utcnow()
    provider_ids = [f"sbx-{uuid.uuid4().hex}" for _ in batch]
    targets = [parse_callback(item.message.callback_data) for item in batch]
    deliver = [target is None for target in targets]
    for name, table in (("deliveries", deliveries), ("messages", messages)):
        wanted = {t[1]: i for i, t in enumerate(targets) if t is not None and t[0] == name}
        if not wanted:
            continue
        rows = (
            await conn.execute(
                select(table.c.id, table.c.status, table.c.provider_message_id)
                .where(table.c.id.in_(list(wanted)))
                # Two workers must not both see "sending" (SQLite: BEGIN IMMEDIATE already).
                .with_for_update()
            )
        ).all()
        updates: list[dict[str, Any]] = []
        for row in rows:
            index = wanted[row.id]
            if row.status in ("queued", "sending"):
                deliver[index] = True
                updates.append({"_id": row.id, "_pid": provider_ids[index]})
            elif row.provider_message_id:
                provider_ids[index] = row.provider_message_id
        if updates:
            values: dict[str, Any] = {
                "status": DeliveryStatus.SENT.value,
                "provider_message_id": bindparam("_pid"),
            }
            if table is deliveries:
                values["updated_at"] = now
            await conn.execute(
                update(table).where(table.c.id == bindparam("_id")).values(**values), updates
            )
    receipts = [
        {
            "channel_id": item.channel_id,
            "address": item.message.address,
            "provider_message_id": provider_ids[i],
            "text": item.message.text,
            "media_url": item.message.media_url,
            "callback_data": item.message.callback_data or None,
            "status": "sent",
            "received_at": now,
        }
        for i, item in enumerate(batch)
        if deliver[i]
    ]
    if receipts:
        await conn.execute(insert(sandbox_messages), receipts)
    return provider_ids


async def _sandbox_channel(db: Database, channel_id: int) -> Any:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(channels.c.id, channels.c.kind, channels.c.settings).where(
                    channels.c.id == channel_id
                )
            )
        ).first()
    if row is None or row.kind != "sandbox":
        raise NotFound(f"no sandbox channel {channel_id}")
    return row


async def phone_writes(
    db: Database,
    *,
    channel_id: int,
    address: str,
    text: str | None,
    media_url: str | None = None,
    name: str | None = None,
) -> inbound.Outcome:
    """A simulated person sends a message to the business.

    Cleaned like a platform's webhook (``core.text``): lone surrogates and NUL are
    replaced, the address and name cut to what their columns hold.
    """
    await _sandbox_channel(db, channel_id)
    text, name = clean_optional(text), clean_optional(name, MAX_NAME)
    media_url = clean_optional(media_url)
    if not (text and text.strip()) and not media_url:
        raise Invalid("a phone message needs text or a media_url")
    event = InboundMessage(
        address=clean_text(address, MAX_ADDRESS),
        provider_message_id=f"sbx-in-{uuid.uuid4().hex}",
        timestamp=datetime.now(UTC),
        kind="text" if text else "image",
        text=text,
        media_url=media_url,
        name=name,
    )
    return await inbound.receive(db, channel_id=channel_id, event=event)


async def phone_inbox(db: Database, *, channel_id: int, address: str) -> list[dict[str, Any]]:
    """Everything this simulated phone received, oldest first."""
    await _sandbox_channel(db, channel_id)
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                sandbox_messages.c.id,
                sandbox_messages.c.text,
                sandbox_messages.c.media_url,
                sandbox_messages.c.received_at,
                sandbox_messages.c.status,
            )
            .where(
                sandbox_messages.c.channel_id == channel_id, sandbox_messages.c.address == address
            )
            .order_by(sandbox_messages.c.id)
        )
        return [dict(r._mapping) for r in rows]


async def report_statuses(db: Database) -> int:
    """The phones report ``delivered`` and ``read`` once their delays have passed.

    Each channel's report and its effect on deliveries commit together, so no status
    is lost or applied twice across a crash.
    """
    async with db.read() as conn:
        sandboxes = (
            await conn.execute(
                select(channels.c.id, channels.c.settings).where(channels.c.kind == "sandbox")
            )
        ).all()
    async with db.read() as conn:
        # Most passes find nothing to report: answer that with one cheap read rather
        # than a write transaction per channel.
        waiting = await conn.scalar(
            select(sandbox_messages.c.id)
            .where(sandbox_messages.c.status.in_(("sent", "delivered")))
            .limit(1)
        )
    if waiting is None:
        return 0
    changed = 0
    for channel in sandboxes:
        behaviour = SandboxBehaviour.from_settings(channel.settings)
        steps = [("sent", "delivered", behaviour.delivered_after_s)]
        if behaviour.read_after_s > 0:
            steps.append(("delivered", "read", behaviour.read_after_s))
        async with db.write() as conn:
            for before, after, delay in steps:
                now = utcnow()
                moved = await conn.execute(
                    update(sandbox_messages)
                    .where(
                        sandbox_messages.c.channel_id == channel.id,
                        sandbox_messages.c.status == before,
                        sandbox_messages.c.received_at <= now - timedelta(seconds=delay),
                    )
                    .values(status=after, **{f"{after}_at": now})
                    .returning(
                        sandbox_messages.c.provider_message_id, sandbox_messages.c.callback_data
                    )
                )
                updates = [
                    StatusUpdate(pid, DeliveryStatus(after), now, callback_data=data)
                    for pid, data in moved
                ]
                if updates:
                    changed += await apply_statuses(conn, channel_id=channel.id, updates=updates)
    return changed


# -- the console's phone simulator (read-only, scoped to the member's workspace) --------

THREAD_LIMIT = 100


async def sandbox_channels(db: Database, *, actor: Actor) -> list[dict[str, Any]]:
    """The workspace's sandbox channels, oldest first (the simulator's phones use one)."""
    actor.require(Role.AGENT)
    async with db.read() as conn:
        rows = await conn.execute(
            select(channels.c.id, channels.c.name, channels.c.status)
            .where(channels.c.workspace_id == actor.workspace_id, channels.c.kind == "sandbox")
            .order_by(channels.c.id)
        )
        return [dict(row._mapping) for row in rows]


async def _owned_sandbox(conn: AsyncConnection, actor: Actor, channel_id: int) -> None:
    found = await conn.scalar(
        select(channels.c.id).where(
            channels.c.id == channel_id,
            channels.c.workspace_id == actor.workspace_id,
            channels.c.kind == "sandbox",
        )
    )
    if found is None:
        raise NotFound(f"no sandbox channel {channel_id}")


async def owned_sandbox_channel(db: Database, *, actor: Actor, channel_id: int) -> None:
    """NotFound unless ``channel_id`` is a sandbox channel of the actor's workspace."""
    actor.require(Role.AGENT)
    async with db.read() as conn:
        await _owned_sandbox(conn, actor, channel_id)


async def phone_thread(
    db: Database, *, actor: Actor, channel_id: int, address: str, limit: int = THREAD_LIMIT
) -> list[dict[str, Any]]:
    """Both sides of one simulated phone's chat, oldest first (the newest ``limit``).

    What the phone wrote is stored as the business's inbound messages; it counts as
    read once a member opened the conversation after it arrived. What the phone
    received is its sandbox inbox, with the status the phone reported.
    """
    actor.require(Role.AGENT)
    async with db.read() as conn:
        await _owned_sandbox(conn, actor, channel_id)
        contact = (
            await conn.execute(
                select(contacts.c.id, conversations.c.agent_last_seen_at)
                .outerjoin(conversations, conversations.c.contact_id == contacts.c.id)
                .where(contacts.c.channel_id == channel_id, contacts.c.address == address)
            )
        ).first()
        sent: list[dict[str, Any]] = []
        if contact is not None:
            rows = await conn.execute(
                select(messages.c.id, messages.c.text, messages.c.media_url, messages.c.created_at)
                .where(
                    messages.c.channel_id == channel_id,
                    messages.c.contact_id == contact.id,
                    messages.c.direction == "in",
                )
                .order_by(messages.c.id.desc())
                .limit(limit)
            )
            seen = contact.agent_last_seen_at
            sent = [
                {
                    "key": f"in-{row.id}",
                    "mine": True,
                    "text": row.text,
                    "media_url": row.media_url,
                    "at": row.created_at,
                    "status": "read" if seen and seen >= row.created_at else "delivered",
                }
                for row in rows
            ]
        rows = await conn.execute(
            select(
                sandbox_messages.c.id,
                sandbox_messages.c.text,
                sandbox_messages.c.media_url,
                sandbox_messages.c.received_at,
                sandbox_messages.c.status,
            )
            .where(
                sandbox_messages.c.channel_id == channel_id, sandbox_messages.c.address == address
            )
            .order_by(sandbox_messages.c.id.desc())
            .limit(limit)
        )
        received = [
            {
                "key": f"out-{row.id}",
                "mine": False,
                "text": row.text,
                "media_url": row.media_url,
                "at": row.received_at,
                "status": row.status,
            }
            for row in rows
        ]
    thread = sorted(sent + received, key=lambda item: (item["at"], item["key"]))
    return thread[-limit:]


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def phones_fingerprint(
    db: Database, *, actor: Actor, channel_id: int, addresses: list[str]
) -> dict[str, list[Any]]:
    """A cheap summary per phone that changes whenever its thread would look different:
    newest received id and how many were delivered / read, when it last wrote, and
    when a member last looked at its conversation. Walks the (channel, address) keys."""
    actor.require(Role.AGENT)
    wanted = list(dict.fromkeys(addresses))
    prints: dict[str, list[Any]] = {address: [0, 0, 0, None, None] for address in wanted}
    if not wanted:
        return prints
    async with db.read() as conn:
        await _owned_sandbox(conn, actor, channel_id)
        received = await conn.execute(
            select(
                sandbox_messages.c.address,
                func.max(sandbox_messages.c.id),
                func.sum(case((sandbox_messages.c.status == "delivered", 1), else_=0)),
                func.sum(case((sandbox_messages.c.status == "read", 1), else_=0)),
            )
            .where(
                sandbox_messages.c.channel_id == channel_id,
                sandbox_messages.c.address.in_(wanted),
            )
            .group_by(sandbox_messages.c.address)
        )
        for address, newest, delivered, read in received:
            prints[address][:3] = [int(newest), int(delivered or 0), int(read or 0)]
        # The contact's last_inbound_at moves with every message the phone writes: read
        # it through the (channel, address) key rather than scanning the messages.
        written = await conn.execute(
            select(
                contacts.c.address,
                contacts.c.last_inbound_at,
                conversations.c.agent_last_seen_at,
            )
            .outerjoin(conversations, conversations.c.contact_id == contacts.c.id)
            .where(contacts.c.channel_id == channel_id, contacts.c.address.in_(wanted))
        )
        for address, wrote, seen in written:
            prints[address][3:] = [_stamp(wrote), _stamp(seen)]
    return prints
