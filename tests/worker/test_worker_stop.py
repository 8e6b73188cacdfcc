"""Stopping a dispatcher (SIGTERM): in-flight sends finish, everything claimed but not
yet sent goes back to the queue at once, uncounted, and nothing is sent twice."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from rundfunk.db.tables import deliveries, sandbox_messages
from service_world import World, wait_until

SUBSCRIBERS = 60
THROUGHPUT = 20.0  # sends per second: the chunk of 60 would take ~3 s


async def test_stop_releases_the_unsent_part_of_a_claimed_chunk(world: World) -> None:
    channel_id = await world.add_channel("slow", settings={"throughput": THROUGHPUT})
    people = [f"4916{i:05d}" for i in range(SUBSCRIBERS)]
    for address in people:
        await world.subscriber(address, channel_id=channel_id)
    await world.drain_outbox()
    broadcast_id = await world.send("Langsam #stop", channel_id=channel_id)

    dispatcher = world.dispatcher(chunk_size=100)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))

    async def some_sent() -> bool:
        return dispatcher.sent > 0 or await _received(world) >= 5

    await wait_until(some_sent, timeout=10, what="the first sends")
    sending = await world.scalar(
        select(func.count()).where(
            deliveries.c.broadcast_id == broadcast_id, deliveries.c.status == "sending"
        )
    )
    assert sending > SUBSCRIBERS / 2, "the whole chunk should be claimed and waiting"
    asked = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    stopped_s = time.monotonic() - asked
    assert stopped_s < 1.0, f"stopping took {stopped_s:.2f}s: the limiter wait was not cut"

    rows = await world.deliveries_of(broadcast_id)
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row.status] = by_status.get(row.status, 0) + 1
    assert "sending" not in by_status, by_status
    received = await _received(world)
    assert by_status.get("sent", 0) == received == dispatcher.sent
    assert by_status.get("queued", 0) == SUBSCRIBERS - received == dispatcher.released
    # A released row was never attempted: its attempt is not counted.
    assert {row.attempts for row in rows if row.status == "queued"} == {0}
    print(
        f"\n[workers] stopped in {stopped_s * 1000:.0f} ms: {received} sent, "
        f"{dispatcher.released} released"
    )

    # Another worker (here: a fresh dispatcher) finishes without waiting for a lease.
    async def all_sent() -> bool:
        return await _received(world) == SUBSCRIBERS

    again = world.dispatcher(chunk_size=100)
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(again.run(stop2))
    try:
        await wait_until(all_sent, timeout=15, what="the released rows sent")
    finally:
        stop2.set()
        await asyncio.wait_for(task2, timeout=5)
    phones = await world.rows(
        select(sandbox_messages.c.address, func.count())
        .where(sandbox_messages.c.text.contains("#stop"))
        .group_by(sandbox_messages.c.address)
    )
    assert dict(phones) == dict.fromkeys(people, 1)


async def _received(world: World) -> int:
    return int(
        await world.scalar(
            select(func.count())
            .select_from(sandbox_messages)
            .where(sandbox_messages.c.text.contains("#stop"))
        )
    )
