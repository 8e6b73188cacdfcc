"""After losing the database, the scheduler lets live workers write what they kept first.

A worker keeps the outcomes it could not write during an outage (``kept_writes``) and
writes them within half a second of the database's return. An outage longer than
lease + settle time would otherwise let the scheduler requeue those very rows first
and send them again. So a scheduler whose connection broke requeues nothing for a
moment (``requeue_quiet``). The break here is real: the lock's backend is terminated
(what a PostgreSQL restart does to every session).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, select

from rundfunk.db.tables import deliveries
from rundfunk.services import dispatch
from rundfunk.worker.election import SchedulerLock
from rundfunk.worker.scheduler import run_scheduler
from service_world import World, _open_world, wait_until

QUIET_S = 0.8


async def _count(world: World, broadcast_id: int, status: str) -> int:
    query = select(func.count()).where(
        deliveries.c.broadcast_id == broadcast_id, deliveries.c.status == status
    )
    return int(await world.scalar(query))


async def test_a_scheduler_that_lost_the_database_requeues_nothing_for_a_moment(
    postgres_url: str,
) -> None:
    async with _open_world(postgres_url) as world:
        for n in range(3):
            await world.subscriber(f"+4971{n}")
        await world.drain_outbox()
        broadcast_id = await world.send("News")
        # A live worker's claim whose lease has run out (its outcomes kept, unwritten).
        assert len(await dispatch.claim(world.db, limit=10, lease_seconds=0.01)) == 3
        await asyncio.sleep(0.05)
        lock = SchedulerLock(world.db.libpq_url)
        assert await lock.hold()
        admin = await asyncpg.connect(world.db.libpq_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND granted AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())"
            )
        finally:
            await admin.close()

        stop = asyncio.Event()
        started = time.monotonic()
        scheduler = asyncio.create_task(
            run_scheduler(
                world.db,
                stop,
                poll_seconds=0.02,
                wake=lambda: None,
                lock=lock,
                requeue_quiet=QUIET_S,
            )
        )
        try:
            await wait_until(lambda: _holds(lock), what="the lock held again")
            await asyncio.sleep(QUIET_S / 2)
            assert await _count(world, broadcast_id, "sending") == 3, "requeued too early"

            async def requeued() -> bool:
                return await _count(world, broadcast_id, "queued") == 3

            await wait_until(requeued, what="the rows requeued after the quiet time")
            assert time.monotonic() - started >= QUIET_S
            assert lock.failures >= 1
        finally:
            stop.set()
            await scheduler


async def _holds(lock: SchedulerLock) -> bool:
    return lock.held
