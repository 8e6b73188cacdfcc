"""Platform status reports applied forward-only, idempotently, and per channel."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from rundfunk.channels.base import StatusUpdate
from rundfunk.core.deliveries import DeliveryStatus
from rundfunk.db.tables import deliveries
from rundfunk.services import broadcast_views, sandbox
from rundfunk.services.statuses import apply_statuses, parse_callback
from service_world import World, running, wait_until

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SENT, DELIVERED, READ, FAILED = (
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
    DeliveryStatus.FAILED,
)


async def _sent_broadcast(world: World, people: int = 1) -> list[int]:
    """Deliveries of a broadcast the dispatcher has sent; returns their ids."""
    for n in range(people):
        await world.subscriber(f"+49{n}")
    broadcast_id = await world.send("News")
    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")
    rows = await world.deliveries_of(broadcast_id)
    assert {r.status for r in rows} == {"sent"}
    return [r.id for r in rows]


CURRENT = "the-row's-own-provider-id"


def _for(delivery_id: int, status: DeliveryStatus, seconds: int, **extra: str) -> StatusUpdate:
    return StatusUpdate(
        provider_message_id=CURRENT,
        status=status,
        timestamp=T0 + timedelta(seconds=seconds),
        callback_data=f"d:{delivery_id}",
        **extra,
    )


async def _apply(world: World, channel_id: int, *updates: StatusUpdate) -> int:
    """Apply; an update naming ``CURRENT`` reports on the row's latest send attempt."""
    targets = {id(u): parse_callback(u.callback_data) for u in updates}
    ids = [t[1] for t in targets.values() if t is not None]
    pids = dict(
        (r.id, r.provider_message_id)
        for r in await world.rows(
            select(deliveries.c.id, deliveries.c.provider_message_id).where(
                deliveries.c.id.in_(ids)
            )
        )
    )
    updates = tuple(
        replace(u, provider_message_id=pids[target[1]])
        if u.provider_message_id == CURRENT and (target := targets[id(u)]) is not None
        else u
        for u in updates
    )
    async with world.db.write() as conn:
        return await apply_statuses(conn, channel_id=channel_id, updates=list(updates))


async def _state(world: World, delivery_id: int) -> tuple[str, str | None]:
    [row] = await world.rows(
        select(deliveries.c.status, deliveries.c.error_reason).where(deliveries.c.id == delivery_id)
    )
    return row.status, row.error_reason


async def test_out_of_order_statuses_end_at_the_furthest(world: World) -> None:
    [one, two] = await _sent_broadcast(world, people=2)

    # "read" arrives before "delivered", in one batch and across two batches.
    assert await _apply(world, world.channel_id, _for(one, READ, 5), _for(one, DELIVERED, 3)) == 1
    assert await _apply(world, world.channel_id, _for(two, READ, 5)) == 1
    assert await _apply(world, world.channel_id, _for(two, DELIVERED, 3)) == 0

    assert await _state(world, one) == ("read", None)
    assert await _state(world, two) == ("read", None)


async def test_duplicates_change_a_row_once(world: World) -> None:
    [delivery] = await _sent_broadcast(world)
    update = _for(delivery, DELIVERED, 1)

    assert await _apply(world, world.channel_id, update, update) == 1
    assert await _apply(world, world.channel_id, update) == 0
    assert await _state(world, delivery) == ("delivered", None)


async def test_delivered_after_failed_wins(world: World) -> None:
    [delivery] = await _sent_broadcast(world)

    await _apply(world, world.channel_id, _for(delivery, FAILED, 1, error_reason="no signal"))
    assert await _state(world, delivery) == ("failed", "no signal")

    await _apply(world, world.channel_id, _for(delivery, DELIVERED, 2))
    assert await _state(world, delivery) == ("delivered", None)


async def test_failed_after_read_is_ignored(world: World) -> None:
    [delivery] = await _sent_broadcast(world)
    await _apply(world, world.channel_id, _for(delivery, READ, 1))

    changed = await _apply(
        world, world.channel_id, _for(delivery, FAILED, 2, error_reason="late failure")
    )

    assert changed == 0
    assert await _state(world, delivery) == ("read", None)


async def test_status_by_provider_message_id_without_callback_data(world: World) -> None:
    [delivery] = await _sent_broadcast(world)
    [row] = await world.rows(
        select(deliveries.c.provider_message_id).where(deliveries.c.id == delivery)
    )

    changed = await _apply(
        world, world.channel_id, StatusUpdate(row.provider_message_id, DELIVERED, T0)
    )

    assert changed == 1
    assert await _state(world, delivery) == ("delivered", None)


async def test_another_channels_report_changes_nothing(world: World) -> None:
    [delivery] = await _sent_broadcast(world)
    [row] = await world.rows(
        select(deliveries.c.provider_message_id).where(deliveries.c.id == delivery)
    )
    other = await world.add_channel("other")

    by_callback = await _apply(world, other, _for(delivery, FAILED, 1, error_reason="forged"))
    by_provider_id = await _apply(
        world, other, StatusUpdate(row.provider_message_id, FAILED, T0, error_reason="forged")
    )

    assert (by_callback, by_provider_id) == (0, 0)
    assert await _state(world, delivery) == ("sent", None)


async def test_malformed_callback_data_is_ignored(world: World) -> None:
    [delivery] = await _sent_broadcast(world)

    for data in ("", "d:", "x:1", f"d:{delivery}x", "d:-"):
        update = StatusUpdate("unknown", DELIVERED, T0, callback_data=data)
        assert await _apply(world, world.channel_id, update) == 0

    assert await _state(world, delivery) == ("sent", None)


async def test_sandbox_phones_report_delivered_and_read_once(world: World) -> None:
    phones = await world.add_channel(
        "quick phones", settings={"sandbox": {"delivered_after_s": 0, "read_after_s": 0.001}}
    )
    await world.subscriber("+491", channel_id=phones)
    await world.subscriber("+492", channel_id=phones)
    broadcast_id = await world.send("News", channel_id=phones)
    async with running(world.dispatcher()):
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")
    await asyncio.sleep(0.01)

    # Two receipts (delivered, read) for each of two deliveries and two confirmations.
    assert await sandbox.report_statuses(world.db) == 8
    assert await sandbox.report_statuses(world.db) == 0  # nothing is reported twice

    assert {r.status for r in await world.deliveries_of(broadcast_id)} == {"read"}
    inbox = await sandbox.phone_inbox(world.db, channel_id=phones, address="+491")
    assert {item["status"] for item in inbox} == {"read"}
    stats = (
        await broadcast_views.get_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
    )["stats"]
    assert (stats["read"], stats["sent"], stats["delivered"]) == (2, 0, 0)


async def test_reports_on_one_row_at_the_same_moment_never_move_it_back(world: World) -> None:
    # Two webhooks in flight at once: "read" is being written while "delivered" arrives.
    # The second must see the first's result; on PostgreSQL, planned from the state
    # before "read", it used to write "delivered" over it.
    [delivery_id] = await _sent_broadcast(world)
    [pid] = await world.rows(
        select(deliveries.c.provider_message_id).where(deliveries.c.id == delivery_id)
    )
    read = replace(_for(delivery_id, READ, 20), provider_message_id=pid[0])
    delivered = replace(_for(delivery_id, DELIVERED, 10), provider_message_id=pid[0])
    async with world.db.write() as conn:
        assert await apply_statuses(conn, channel_id=world.channel_id, updates=[read]) == 1
        second = asyncio.create_task(_apply(world, world.channel_id, delivered))
        await asyncio.sleep(0.3)  # the second report is waiting for this transaction
        assert not second.done()
    assert await second == 0
    assert (await _state(world, delivery_id))[0] == "read"
