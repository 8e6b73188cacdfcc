"""Pause and Cancel stop the sends a dispatcher has already claimed, at once.

The dispatcher claims the whole audience in one chunk, so at 30 msg/s nearly all of
it waits on the rate limiter when the call comes. The platform here is the sandbox's
phones behind a thin recorder of when each send *started* (a stand-in for a
messenger platform, not for our code): no send may start after the call returned.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from sqlalchemy import func, select

from rundfunk.channels.base import InboundEvent, OutboundMessage, SendResult
from rundfunk.channels.sandbox import SandboxChannel
from rundfunk.core.ratelimit import Rate
from rundfunk.db.session import Database
from rundfunk.db.tables import deliveries
from rundfunk.services import broadcast_views, broadcasts
from service_world import World, running, wait_until

RATE = 30.0
PEOPLE = 30


class _Recorder:
    """The sandbox's phones, and the time each send reached the platform."""

    kind = "sandbox"

    def __init__(self, world: World) -> None:
        self.channel_id = world.channel_id
        self._phones = SandboxChannel(world.channel_id, world.sandbox)
        self.started: list[float] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        if message.callback_data.startswith("d:"):
            self.started.append(time.monotonic())
        return await self._phones.send(message)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def parse(self, body: bytes) -> list[InboundEvent]:
        return []

    async def close(self) -> None:
        return None


async def _audience(world: World) -> _Recorder:
    for n in range(PEOPLE):
        await world.subscriber(f"+4917{n:04d}")
    await world.drain_outbox()
    recorder = _Recorder(world)
    world.registry.register(recorder, Rate(RATE))
    return recorder


async def _stats(world: World, broadcast_id: int) -> dict[str, int]:
    details = await broadcast_views.get_broadcast(
        world.db, actor=world.owner, broadcast_id=broadcast_id
    )
    stats: dict[str, int] = details["stats"]
    return stats


async def _claimed(world: World, broadcast_id: int) -> int:
    return int(
        await world.scalar(
            select(func.count())
            .select_from(deliveries)
            .where(deliveries.c.broadcast_id == broadcast_id, deliveries.c.status == "sending")
        )
    )


async def _sent_at_least(recorder: _Recorder, count: int) -> None:
    async def enough() -> bool:
        return len(recorder.started) >= count

    await wait_until(enough, timeout=10, what=f"{count} sends")


async def _one_copy_each(world: World, marker: str) -> None:
    for n in range(PEOPLE):
        texts = [t for t in await world.texts(f"+4917{n:04d}") if t and marker in t]
        assert texts == [marker], (n, texts)


async def test_pause_stops_claimed_sends_and_resume_sends_one_copy_each(world: World) -> None:
    recorder = await _audience(world)
    dispatcher = world.dispatcher()
    async with running(dispatcher):
        broadcast_id = await world.send("Pause me")
        await _sent_at_least(recorder, 5)
        claimed = await _claimed(world, broadcast_id)
        assert claimed > PEOPLE // 2, "the audience was not claimed at once"
        asked = time.monotonic()
        await broadcasts.pause_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
        returned = time.monotonic()
        sent_before = len(recorder.started)
        await asyncio.sleep(0.6)
        late = [t - returned for t in recorder.started if t > returned]
        assert late == [], f"{len(late)} sends started after the pause returned"
        assert len(recorder.started) == sent_before
        stop_s = max(recorder.started) - asked
        print(f"\n[pause] call -> last send started: {stop_s * 1000:.0f} ms")

        # What was claimed went back to the queue (nothing waits out a lease).
        assert await _claimed(world, broadcast_id) == 0
        stats = await _stats(world, broadcast_id)
        assert stats["sent"] == sent_before and stats["queued"] == PEOPLE - sent_before, stats
        assert dispatcher.halted >= PEOPLE - sent_before - 1

        await broadcasts.send_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
        await wait_until(lambda: world.is_done(broadcast_id), timeout=15, what="resumed done")
    assert len(recorder.started) == PEOPLE
    await _one_copy_each(world, "Pause me")


async def test_cancel_stops_claimed_sends_and_counts_them_skipped(world: World) -> None:
    recorder = await _audience(world)
    async with running(world.dispatcher()):
        broadcast_id = await world.send("Cancel me")
        await _sent_at_least(recorder, 5)
        await broadcasts.cancel_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
        returned = time.monotonic()
        sent = len(recorder.started)

        async def settled() -> bool:
            return await _claimed(world, broadcast_id) == 0

        await wait_until(settled, timeout=2, what="claimed sends given up")
        await asyncio.sleep(0.3)
        assert [t for t in recorder.started if t > returned] == []
    stats = await _stats(world, broadcast_id)
    assert stats["sent"] == sent, stats
    assert stats["skipped"] == PEOPLE - sent and stats["queued"] == 0, stats
    reasons = await world.rows(
        select(deliveries.c.error_reason)
        .where(deliveries.c.broadcast_id == broadcast_id, deliveries.c.status == "skipped")
        .distinct()
    )
    assert [r.error_reason for r in reasons] == ["broadcast cancelled"]


async def test_a_pause_made_by_another_process_stops_sends_within_the_reread(
    world: World,
) -> None:
    """No signal reaches this dispatcher (another process, no NOTIFY listener here): the
    periodic re-read of the broadcasts it holds stops the sends within half a second."""
    recorder = await _audience(world)
    other = Database(world.db.url)  # another process's engine: its signals stay there
    try:
        async with running(world.dispatcher()):
            broadcast_id = await world.send("Elsewhere")
            await _sent_at_least(recorder, 3)
            await broadcasts.pause_broadcast(other, actor=world.owner, broadcast_id=broadcast_id)
            returned = time.monotonic()
            await asyncio.sleep(1.0)
            late = [t - returned for t in recorder.started if t > returned]
            # 0.5 s re-read period at 30/s: at most ~16 more (and never the rest).
            assert max(late, default=0.0) < 0.7, late
            assert len(recorder.started) < PEOPLE - 5
            assert await _claimed(world, broadcast_id) == 0
    finally:
        await other.dispose()
