"""The dashboard's numbers: the subscriber curve walked back from today, consent events
per calendar day in the workspace's time zone, the inbox summary, first steps, funnels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from rundfunk.db.tables import consent_events, conversations, deliveries
from rundfunk.services import dashboard, inbox, workspaces
from rundfunk.services.actors import Actor, Role
from rundfunk.services.channels import create_channel
from rundfunk.services.errors import Forbidden
from service_world import World

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)


async def _backdate(world: World, contact_id: int, when: datetime) -> None:
    """Move the contact's newest consent event to ``when``."""
    rows = await world.rows(
        consent_events.select()
        .where(consent_events.c.contact_id == contact_id)
        .order_by(consent_events.c.id.desc())
        .limit(1)
    )
    async with world.db.write() as conn:
        await conn.execute(
            update(consent_events).where(consent_events.c.id == rows[0].id).values(created_at=when)
        )


async def _say(world: World, address: str, text: str, when: datetime) -> int:
    outcome = await world.write(address, text)
    await _backdate(world, outcome.contact_id, when)
    return outcome.contact_id


async def test_the_subscriber_curve_follows_each_contacts_state(world: World) -> None:
    await world.add_topic("news")
    day = timedelta(days=1)
    await _say(world, "old", "START", NOW - 40 * day)  # subscribed before the window
    await _say(world, "old", "STOP", NOW - 3 * day)
    await _say(world, "a", "START", NOW - 10 * day)
    await _say(world, "a", "START", NOW - 1 * day)  # again: no new subscriber
    await _say(world, "b", "START", NOW - 5 * day)
    await _say(world, "b", "STOP", NOW - 2 * day)
    await _say(world, "c", "START news", NOW)
    await _say(world, "c", "STOP news", NOW)  # leaves the topic, stays subscribed
    days = await dashboard.subscriber_days(world.db, actor=world.owner, now=NOW)
    assert len(days) == 30 and days[-1].day == NOW.date()
    by_age = {(NOW.date() - d.day).days: d for d in days}
    assert [by_age[n].subscribers for n in (29, 11, 10, 5, 3, 2, 1, 0)] == [1, 1, 2, 3, 2, 1, 1, 2]
    assert (by_age[1].opt_ins, by_age[0].opt_ins, by_age[0].opt_outs) == (1, 1, 1)
    assert (by_age[3].opt_outs, by_age[2].opt_outs) == (1, 1)
    assert sum(d.opt_ins for d in days) == 4  # the START 40 days ago is outside


async def test_days_are_the_workspaces_calendar_days(world: World) -> None:
    late = datetime(2025, 3, 19, 23, 30, tzinfo=UTC)  # already the 20th in Berlin
    await _say(world, "a", "START", late)
    utc = await dashboard.subscriber_days(world.db, actor=world.owner, now=NOW, days=2)
    berlin = await dashboard.subscriber_days(
        world.db, actor=world.owner, timezone="Europe/Berlin", now=NOW, days=2
    )
    assert [(d.opt_ins, d.subscribers) for d in utc] == [(1, 1), (0, 1)]
    assert [(d.opt_ins, d.subscribers) for d in berlin] == [(0, 0), (1, 1)]
    broken = await dashboard.subscriber_days(
        world.db, actor=world.owner, timezone="Mars/Olympus", now=NOW, days=2
    )
    assert broken == utc


async def test_another_workspace_counts_nothing_here(world: World) -> None:
    await _say(world, "a", "START", NOW)
    other_ws = await workspaces.create_workspace(world.db, slug="other")
    other = Actor(workspace_id=other_ws, role=Role.OWNER, label="test")
    channel = await create_channel(world.db, actor=other, kind="sandbox", name="Other")
    await world.write("b", "START", channel_id=int(channel["id"]))
    await world.write("c", "a question", channel_id=int(channel["id"]))
    mine = await dashboard.overview(world.db, actor=world.owner, now=NOW)
    theirs = await dashboard.overview(world.db, actor=other, now=NOW)
    assert (mine.subscribers, mine.opt_ins, mine.inbox.open) == (1, 1, 0)
    assert (theirs.subscribers, theirs.inbox.open, theirs.inbox.unassigned) == (1, 1, 1)


async def test_inbox_summary_and_first_steps(world: World) -> None:
    fresh = await dashboard.overview(world.db, actor=world.owner)
    assert fresh.first_steps == dashboard.FirstSteps(True, False, False, False, False)
    assert not fresh.first_steps.complete and fresh.broadcasts == []
    await world.subscriber("s1")
    first = (await world.write("q1", "Where is my order?")).conversation_id
    second = (await world.write("q2", "Hello?")).conversation_id
    third = (await world.write("q3", "Thanks")).conversation_id
    assert first and second and third
    await inbox.assign(
        world.db, actor=world.owner, conversation_id=first, member_id=world.owner.member_id
    )
    async with world.db.write() as conn:
        await conn.execute(
            update(conversations).where(conversations.c.id == third).values(status="pending")
        )
    await inbox.reply(world.db, actor=world.owner, conversation_id=second, text="Soon!")
    await world.send("Spring sale")
    done = await dashboard.overview(world.db, actor=world.owner)
    assert done.inbox == dashboard.InboxSummary(open=2, unassigned=2, pending=1, mine=1)
    assert done.first_steps.complete


async def test_funnels_count_everyone_who_got_that_far(world: World) -> None:
    for address in ("a", "b", "c", "d", "e"):
        await world.subscriber(address)
    broadcast_id = await world.send("News")
    rows = await world.deliveries_of(broadcast_id)
    statuses = ["read", "read", "delivered", "sent", "failed"]
    async with world.db.write() as conn:
        for row, status in zip(rows, statuses, strict=True):
            await conn.execute(
                update(deliveries).where(deliveries.c.id == row.id).values(status=status)
            )
    [funnel] = await dashboard.recent_broadcasts(world.db, actor=world.owner)
    assert (funnel.id, funnel.total, funnel.status) == (broadcast_id, 5, "sending")
    assert (funnel.sent, funnel.delivered, funnel.read, funnel.failed) == (4, 3, 2, 1)
    assert funnel.waiting == 0


async def test_agents_get_the_inbox_but_no_audience_or_broadcasts(world: World) -> None:
    await world.subscriber("a")
    await world.send("News")
    agent = world.actor(Role.AGENT)
    seen = await dashboard.overview(world.db, actor=agent)
    assert seen.days == [] and seen.broadcasts == []
    with pytest.raises(Forbidden):
        await dashboard.recent_broadcasts(world.db, actor=agent)
