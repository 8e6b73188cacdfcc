"""The dashboard's numbers: subscribers over time, opt-ins and opt-outs per day, the
last broadcasts' delivery funnels, the inbox's open work, and the first steps done.

Read-only and scoped to the actor's workspace. Days are the workspace's calendar days,
so the day buckets are cut in Python from ``created_at``: a portable SQL expression
for "local day in a time zone" does not exist across SQLite and PostgreSQL. The rows
read are bounded to the window (30 days of consent events); the subscriber count of
each day is walked back from today's count, contact by contact, so a START sent twice
or a topic's STOP does not move the curve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from rundfunk.db.session import Database
from rundfunk.db.tables import (
    broadcasts,
    channels,
    consent_events,
    contacts,
    conversations,
    messages,
)
from rundfunk.db.types import utcnow
from rundfunk.services import broadcast_views
from rundfunk.services.actors import Actor, Role

DAYS = 30
RECENT_BROADCASTS = 5
# A broadcast that has started counts as "sent" for the first-steps checklist.
STARTED = ("sending", "paused", "done", "failed")


@dataclass(frozen=True)
class Day:
    """One calendar day of the workspace: subscribers at its end, consent events in it."""

    day: date
    subscribers: int
    opt_ins: int
    opt_outs: int


@dataclass(frozen=True)
class InboxSummary:
    open: int
    # Like the inbox's views of the same name: not resolved (open or pending), and
    # nobody's / the asking member's.
    unassigned: int
    pending: int
    mine: int


@dataclass(frozen=True)
class Funnel:
    """A broadcast's deliveries as a funnel: each step counts those that got at least
    that far (a read message was also delivered and sent)."""

    id: int
    text: str
    status: str
    created_at: datetime
    total: int
    sent: int
    delivered: int
    read: int
    failed: int
    waiting: int  # queued or deferred: not at the platform yet


@dataclass(frozen=True)
class FirstSteps:
    """What a new workspace has done of its first five minutes."""

    channel: bool
    subscriber: bool
    broadcast: bool
    conversation: bool
    reply: bool

    @property
    def complete(self) -> bool:
        return all((self.channel, self.subscriber, self.broadcast, self.conversation, self.reply))


@dataclass(frozen=True)
class Overview:
    subscribers: int
    days: list[Day]
    inbox: InboxSummary
    first_steps: FirstSteps
    broadcasts: list[Funnel] = field(default_factory=list)

    @property
    def opt_ins(self) -> int:
        return sum(day.opt_ins for day in self.days)

    @property
    def opt_outs(self) -> int:
        return sum(day.opt_outs for day in self.days)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


async def overview(
    db: Database, *, actor: Actor, timezone: str = "UTC", now: datetime | None = None
) -> Overview:
    """Everything the dashboard shows; the audience and broadcast parts (days,
    funnels) only for editors and up: an agent gets them empty."""
    actor.require(Role.AGENT)
    editor = actor.role.rank >= Role.EDITOR.rank
    async with db.read() as conn:
        current = await _subscriber_count(conn, actor)
        days = await _days(conn, actor, current, _zone(timezone), now or utcnow()) if editor else []
        inbox = await _inbox(conn, actor)
        steps = await _first_steps(conn, actor, current)
    funnels = await recent_broadcasts(db, actor=actor) if editor else []
    return Overview(current, days, inbox, steps, funnels)


async def subscriber_days(
    db: Database,
    *,
    actor: Actor,
    timezone: str = "UTC",
    days: int = DAYS,
    now: datetime | None = None,
) -> list[Day]:
    """The last ``days`` calendar days, oldest first, ending today."""
    actor.require(Role.AGENT)
    async with db.read() as conn:
        current = await _subscriber_count(conn, actor)
        return await _days(conn, actor, current, _zone(timezone), now or utcnow(), days)


async def _subscriber_count(conn: AsyncConnection, actor: Actor) -> int:
    return int(
        await conn.scalar(
            select(func.count())
            .select_from(contacts)
            .where(contacts.c.workspace_id == actor.workspace_id, contacts.c.status == "subscribed")
        )
        or 0
    )


def _changes_status(kind: str, topic_id: int | None) -> bool:
    """Any opt-in subscribes to the channel; only a channel-wide opt-out leaves it."""
    return kind == "opt_in" or topic_id is None


async def _days(
    conn: AsyncConnection,
    actor: Actor,
    current: int,
    zone: ZoneInfo,
    now: datetime,
    count: int = DAYS,
) -> list[Day]:
    today = now.astimezone(zone).date()
    first = today - timedelta(days=count - 1)
    start = datetime.combine(first, time.min, tzinfo=zone).astimezone(UTC)
    in_window = (consent_events.c.workspace_id == actor.workspace_id) & (
        consent_events.c.created_at >= start
    )
    events = (
        await conn.execute(
            select(
                consent_events.c.contact_id,
                consent_events.c.kind,
                consent_events.c.topic_id,
                consent_events.c.created_at,
            )
            .where(in_window)
            .order_by(consent_events.c.created_at, consent_events.c.id)
        )
    ).all()
    before = await _state_before(conn, actor, start) if events else {}
    ins: Counter[date] = Counter()
    outs: Counter[date] = Counter()
    net: Counter[date] = Counter()  # subscribers gained (or lost) on each day
    state = dict(before)
    for contact_id, kind, topic_id, created_at in events:
        day = created_at.astimezone(zone).date()
        (ins if kind == "opt_in" else outs)[day] += 1
        if not _changes_status(kind, topic_id):
            continue
        subscribed = kind == "opt_in"
        was = state.get(contact_id, False)
        if subscribed != was:
            net[day] += 1 if subscribed else -1
            state[contact_id] = subscribed
    result: list[Day] = []
    level = current
    for offset in range(count):  # walk back from today's count
        day = today - timedelta(days=offset)
        result.append(Day(day, max(level, 0), ins[day], outs[day]))
        level -= net[day]
    result.reverse()
    return result


async def _state_before(conn: AsyncConnection, actor: Actor, start: datetime) -> dict[int, bool]:
    """Whether each contact with events in the window was subscribed when it began:
    its last status-changing event before ``start`` says so (none: not subscribed)."""
    ws = consent_events.c.workspace_id == actor.workspace_id
    active = select(consent_events.c.contact_id).where(ws, consent_events.c.created_at >= start)
    last = (
        select(func.max(consent_events.c.id))
        .where(
            ws,
            consent_events.c.created_at < start,
            or_(consent_events.c.kind == "opt_in", consent_events.c.topic_id.is_(None)),
            consent_events.c.contact_id.in_(active),
        )
        .group_by(consent_events.c.contact_id)
    )
    rows = await conn.execute(
        select(consent_events.c.contact_id, consent_events.c.kind).where(
            consent_events.c.id.in_(last)
        )
    )
    return {contact_id: kind == "opt_in" for contact_id, kind in rows}


def _sum(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


async def _inbox(conn: AsyncConnection, actor: Actor) -> InboxSummary:
    row = (
        await conn.execute(
            select(
                _sum(conversations.c.status == "open"),
                _sum(conversations.c.assignee_id.is_(None)),
                _sum(conversations.c.status == "pending"),
                _sum(conversations.c.assignee_id == (actor.member_id or -1)),
            ).where(
                conversations.c.workspace_id == actor.workspace_id,
                conversations.c.status.in_(("open", "pending")),
            )
        )
    ).one()
    return InboxSummary(*(int(value) for value in row))


async def _first_steps(conn: AsyncConnection, actor: Actor, subscribers: int) -> FirstSteps:
    ws = actor.workspace_id

    async def any_row(query: Any) -> bool:
        return bool(await conn.scalar(select(exists(query))))

    return FirstSteps(
        channel=await any_row(
            select(channels.c.id).where(
                channels.c.workspace_id == ws, channels.c.status == "active"
            )
        ),
        subscriber=subscribers > 0,
        broadcast=await any_row(
            select(broadcasts.c.id).where(
                broadcasts.c.workspace_id == ws, broadcasts.c.status.in_(STARTED)
            )
        ),
        conversation=await any_row(
            select(conversations.c.id).where(conversations.c.workspace_id == ws)
        ),
        reply=await any_row(
            select(messages.c.id).where(
                messages.c.workspace_id == ws,
                messages.c.direction == "out",
                messages.c.author_id.is_not(None),
            )
        ),
    )


def funnel(broadcast: dict[str, Any]) -> Funnel:
    """A broadcast as the API shows it (``broadcast_views``), as a cumulative funnel."""
    stats = broadcast["stats"]
    read = int(stats["read"])
    delivered = int(stats["delivered"]) + read
    return Funnel(
        id=int(broadcast["id"]),
        text=str(broadcast["text"]),
        status=str(broadcast["status"]),
        created_at=broadcast["created_at"],
        total=int(stats["total"]),
        sent=int(stats["sent"]) + delivered,
        delivered=delivered,
        read=read,
        failed=int(stats["failed"]),
        waiting=int(stats["queued"]) + int(stats["deferred"]),
    )


async def recent_broadcasts(
    db: Database, *, actor: Actor, limit: int = RECENT_BROADCASTS
) -> list[Funnel]:
    """The newest broadcasts (drafts too: they show no funnel yet), each with its funnel."""
    actor.require(Role.EDITOR)
    listed: Iterable[dict[str, Any]] = await broadcast_views.list_broadcasts(
        db, actor=actor, limit=limit
    )
    return [funnel(item) for item in listed]
