"""Broadcasts: audience, fan-out, scheduling, cancelling, disabled channels, listing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError

from rundfunk.db.tables import audit_log, contacts, deliveries
from rundfunk.db.types import utcnow
from rundfunk.services import broadcast_views, broadcasts, channels
from rundfunk.services.errors import Conflict, Invalid
from service_world import World


async def _block(world: World, contact_id: int) -> None:
    async with world.db.write() as conn:
        await conn.execute(update(contacts).where(contacts.c.id == contact_id).values(blocked=True))


async def _audience(world: World, broadcast_id: int) -> set[int]:
    return {row.contact_id for row in await world.deliveries_of(broadcast_id)}


async def test_audience_is_subscribed_unblocked_contacts_of_the_channel(world: World) -> None:
    anna = await world.subscriber("+491")
    blocked = await world.subscriber("+492")
    await _block(world, blocked)
    await world.write("+493", "just asking")  # wrote, never opted in
    await world.subscriber("+494")
    await world.write("+494", "STOP")  # opted out again
    other_channel = await world.add_channel("other")
    await world.subscriber("+495", channel_id=other_channel)

    broadcast_id = await world.send("Hello")

    assert await _audience(world, broadcast_id) == {anna}
    details = await broadcast_views.get_broadcast(
        world.db, actor=world.owner, broadcast_id=broadcast_id
    )
    assert details["status"] == "sending"
    assert details["stats"]["total"] == 1
    assert details["stats"]["queued"] == 1


async def test_topic_audience_is_limited_to_the_topic(world: World) -> None:
    await world.add_topic("sport")
    await world.add_topic("news")
    sporty = await world.subscriber("+491", topic="sport")
    both = await world.subscriber("+492", topic="news")
    await world.write("+492", "START sport")
    await world.subscriber("+493")  # everything, but no topic chosen
    await world.subscriber("+494", topic="news")
    gone = await world.subscriber("+495", topic="sport")
    await world.write("+495", "STOP sport")

    broadcast_id = await world.send("Goal!", topic_keys=["sport"])

    assert await _audience(world, broadcast_id) == {sporty, both}
    assert gone not in await _audience(world, broadcast_id)
    details = await broadcast_views.get_broadcast(
        world.db, actor=world.owner, broadcast_id=broadcast_id
    )
    assert details["topic_keys"] == ["sport"]


async def test_one_delivery_per_broadcast_and_contact(world: World) -> None:
    contact_id = await world.subscriber("+491")
    broadcast_id = await world.send("Hello")

    with pytest.raises(Conflict, match="is sending"):
        await broadcasts.send_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
    [delivery] = await world.deliveries_of(broadcast_id)
    with pytest.raises(IntegrityError):
        async with world.db.write() as conn:
            await conn.execute(
                deliveries.insert().values(
                    broadcast_id=broadcast_id,
                    contact_id=contact_id,
                    channel_id=world.channel_id,
                    status="queued",
                    attempts=0,
                    next_attempt_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    assert [d.id for d in await world.deliveries_of(broadcast_id)] == [delivery.id]


async def test_empty_audience_is_refused(world: World) -> None:
    await world.add_topic("sport")
    with pytest.raises(Invalid, match="audience is empty.*opted in"):
        await broadcasts.create_broadcast(
            world.db, actor=world.owner, channel_id=world.channel_id, text="Hi"
        )
    await world.subscriber("+491")
    with pytest.raises(Invalid, match="audience is empty.*subscribed to these topics"):
        await broadcasts.create_broadcast(
            world.db,
            actor=world.owner,
            channel_id=world.channel_id,
            text="Hi",
            topic_keys=["sport"],
        )


async def test_audience_that_emptied_after_creation_is_refused_at_send(world: World) -> None:
    await world.subscriber("+491")
    created = await broadcasts.create_broadcast(
        world.db, actor=world.owner, channel_id=world.channel_id, text="Hi"
    )
    await world.write("+491", "STOP")

    with pytest.raises(Invalid, match="audience is empty"):
        await broadcasts.send_broadcast(world.db, actor=world.owner, broadcast_id=created["id"])

    assert (await world.broadcast(created["id"])).status == "draft"  # rolled back, can retry
    assert await world.deliveries_of(created["id"]) == []


async def test_scheduled_broadcast_starts_only_when_due(world: World) -> None:
    await world.subscriber("+491")
    await world.subscriber("+492")
    send_at = utcnow() + timedelta(hours=1)
    created = await broadcasts.create_broadcast(
        world.db, actor=world.owner, channel_id=world.channel_id, text="Later", send_at=send_at
    )
    assert created["status"] == "scheduled"

    assert await broadcasts.start_due(world.db) == []
    assert await broadcasts.start_due(world.db, now=send_at - timedelta(seconds=1)) == []
    assert await world.deliveries_of(created["id"]) == []

    assert await broadcasts.start_due(world.db, now=send_at) == [created["id"]]
    assert await broadcasts.start_due(world.db, now=send_at) == []  # started once

    row = await world.broadcast(created["id"])
    assert (row.status, row.total) == ("sending", 2)
    assert len(await world.deliveries_of(created["id"])) == 2
    actions = await world.rows(
        select(audit_log.c.actor, audit_log.c.details).where(audit_log.c.action == "broadcast.send")
    )
    assert [(a.actor, a.details["scheduled"]) for a in actions] == [("system", True)]


async def test_cancelled_scheduled_broadcast_is_not_started(world: World) -> None:
    await world.subscriber("+491")
    send_at = utcnow() + timedelta(minutes=5)
    created = await broadcasts.create_broadcast(
        world.db, actor=world.owner, channel_id=world.channel_id, text="Later", send_at=send_at
    )
    await broadcasts.cancel_broadcast(world.db, actor=world.owner, broadcast_id=created["id"])

    assert await broadcasts.start_due(world.db, now=send_at) == []
    assert (await world.broadcast(created["id"])).status == "cancelled"


async def test_cancel_skips_queued_deliveries(world: World) -> None:
    for n in range(3):
        await world.subscriber(f"+49{n}")
    broadcast_id = await world.send("Hello")

    cancelled = await broadcasts.cancel_broadcast(
        world.db, actor=world.owner, broadcast_id=broadcast_id
    )

    assert cancelled["status"] == "cancelled"
    assert cancelled["stats"]["skipped"] == 3 and cancelled["stats"]["queued"] == 0
    assert {(d.status, d.error_reason) for d in await world.deliveries_of(broadcast_id)} == {
        ("skipped", "broadcast cancelled")
    }
    with pytest.raises(Conflict, match="already cancelled"):
        await broadcasts.cancel_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)


async def test_disabled_channel_refuses_new_and_resumed_broadcasts(world: World) -> None:
    await world.subscriber("+491")
    draft = await broadcasts.create_broadcast(
        world.db, actor=world.owner, channel_id=world.channel_id, text="Draft"
    )
    paused_id = await world.send("Paused")
    await broadcasts.pause_broadcast(world.db, actor=world.owner, broadcast_id=paused_id)
    await channels.disable_channel(
        world.db, actor=world.owner, channel_id=world.channel_id, reason="token revoked"
    )

    message = f"channel {world.channel_id} is disabled: token revoked"
    with pytest.raises(Conflict, match=message):
        await broadcasts.create_broadcast(
            world.db, actor=world.owner, channel_id=world.channel_id, text="New"
        )
    with pytest.raises(Conflict, match=message):
        await broadcasts.send_broadcast(world.db, actor=world.owner, broadcast_id=draft["id"])
    with pytest.raises(Conflict, match=message):
        await broadcasts.send_broadcast(world.db, actor=world.owner, broadcast_id=paused_id)
    assert (await world.broadcast(draft["id"])).status == "draft"
    assert (await world.broadcast(paused_id)).status == "paused"


async def test_scheduled_broadcast_on_a_disabled_channel_starts_paused(world: World) -> None:
    await world.subscriber("+491")
    send_at = utcnow() + timedelta(minutes=5)
    created = await broadcasts.create_broadcast(
        world.db, actor=world.owner, channel_id=world.channel_id, text="Later", send_at=send_at
    )
    await channels.disable_channel(
        world.db, actor=world.owner, channel_id=world.channel_id, reason="account locked"
    )

    assert await broadcasts.start_due(world.db, now=send_at) == [created["id"]]

    row = await world.broadcast(created["id"])
    assert row.status == "paused"
    assert row.status_reason == f"channel {world.channel_id} is disabled: account locked"
    assert [d.status for d in await world.deliveries_of(created["id"])] == ["queued"]


async def test_list_broadcasts_shows_stats_and_topics(world: World) -> None:
    await world.add_topic("sport")
    await world.subscriber("+491", topic="sport")
    await world.subscriber("+492")
    everyone = await world.send("All")
    sport = await world.send("Sport", topic_keys=["sport"])
    await broadcasts.cancel_broadcast(world.db, actor=world.owner, broadcast_id=sport)

    listed = await broadcast_views.list_broadcasts(world.db, actor=world.owner)

    assert [b["id"] for b in listed] == [sport, everyone]
    assert listed[0]["topic_keys"] == ["sport"] and listed[1]["topic_keys"] == []
    assert listed[0]["stats"] == {
        "total": 1,
        "queued": 0,
        "deferred": 0,
        "sent": 0,
        "delivered": 0,
        "read": 0,
        "failed": 0,
        "skipped": 1,
    }
    assert listed[1]["stats"]["total"] == 2 and listed[1]["stats"]["queued"] == 2
    for item in listed:  # the list says exactly what the single view says
        assert item == await broadcast_views.get_broadcast(
            world.db, actor=world.owner, broadcast_id=item["id"]
        )


async def test_list_broadcasts_runs_the_same_queries_for_2_or_12(world: World) -> None:
    await world.add_topic("sport")
    await world.subscriber("+491", topic="sport")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    async def queries_for_listing() -> int:
        statements.clear()
        event.listen(world.db.engine.sync_engine, "before_cursor_execute", count)
        try:
            await broadcast_views.list_broadcasts(world.db, actor=world.owner)
        finally:
            event.remove(world.db.engine.sync_engine, "before_cursor_execute", count)
        return len(statements)

    for _ in range(2):
        await world.send("Sport", topic_keys=["sport"])
    few = await queries_for_listing()
    for _ in range(10):
        await world.send("Sport", topic_keys=["sport"])
    many = await queries_for_listing()

    assert len(await broadcast_views.list_broadcasts(world.db, actor=world.owner)) == 12
    assert many == few
    assert few <= 5  # BEGIN, rows, stats, topic keys (and nothing per broadcast)
