"""Several workers on one PostgreSQL database, in one test process: claims never
overlap, the work is shared, an expired lease is taken over, one scheduler runs at a
time, and ``NOTIFY`` wakes an idle worker long before its poll would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import func, select, update

from rundfunk.db.migrate import upgrade
from rundfunk.db.session import SCHEDULER_LOCK, Database
from rundfunk.db.tables import broadcasts, deliveries, messages, sandbox_messages
from rundfunk.db.types import utcnow
from rundfunk.services import broadcasts as broadcast_service
from rundfunk.services import dispatch, sandbox, workspaces
from rundfunk.services.actors import Actor, Role
from rundfunk.services.channels import create_channel
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.services.registry import ChannelRegistry
from rundfunk.services.sandbox import DatabaseSandbox
from rundfunk.services.secrets import SecretBox
from rundfunk.worker.dispatcher import Dispatcher
from rundfunk.worker.election import SchedulerLock
from rundfunk.worker.scheduler import run_scheduler
from rundfunk.worker.wakeup import WorkListener

POLICY = RetryPolicy(max_attempts=20, base_seconds=0.01, cap_seconds=0.05, pause_min_sample=10**6)


@dataclass
class Tenant:
    db: Database
    owner: Actor
    channel_id: int

    async def subscribe(self, count: int, prefix: str = "4917") -> list[str]:
        people = [f"{prefix}{i:06d}" for i in range(count)]
        slots = asyncio.Semaphore(16)

        async def one(address: str) -> None:
            async with slots:
                await sandbox.phone_writes(
                    self.db, channel_id=self.channel_id, address=address, text="START"
                )

        await asyncio.gather(*(one(a) for a in people))
        return people

    async def broadcast(self, text: str, *, send: bool = True) -> int:
        created = await broadcast_service.create_broadcast(
            self.db, actor=self.owner, channel_id=self.channel_id, text=text
        )
        if send:
            await broadcast_service.send_broadcast(
                self.db, actor=self.owner, broadcast_id=created["id"]
            )
        return int(created["id"])

    async def scalar(self, query: Any) -> Any:
        async with self.db.read() as conn:
            return await conn.scalar(query)

    async def copies_per_phone(self, marker: str) -> dict[str, int]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(sandbox_messages.c.address, func.count())
                .where(sandbox_messages.c.text.contains(marker))
                .group_by(sandbox_messages.c.address)
            )
            return {address: int(n) for address, n in rows}

    async def unfinished(self) -> int:
        total = 0
        for table in (deliveries, messages):
            total += int(
                await self.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.status.in_(("queued", "sending")))
                )
            )
        return total


@asynccontextmanager
async def tenant_on(url: str) -> AsyncIterator[Tenant]:
    db = Database(url)
    try:
        await upgrade(db)
        workspace_id = await workspaces.create_workspace(db, slug="scaled")
        owner = Actor(workspace_id=workspace_id, role=Role.OWNER, label="test")
        channel = await create_channel(db, actor=owner, kind="sandbox", name="Sandbox")
        yield Tenant(db, owner, int(channel["id"]))
    finally:
        await db.dispose()


@asynccontextmanager
async def worker(url: str, **options: Any) -> AsyncIterator[Dispatcher]:
    """A dispatcher with its own engine (its own pool), as another process would have."""
    db = Database(url)
    registry = ChannelRegistry(db, box=SecretBox("test key"), sandbox=DatabaseSandbox(db))
    options.setdefault("poll_seconds", 0.02)
    dispatcher = Dispatcher(db, registry, policy=POLICY, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
        await registry.close()
        await db.dispose()


async def wait_for(check: Any, *, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.02)


async def test_racing_claims_never_overlap(postgres_url: str) -> None:
    pg = postgres_url
    async with tenant_on(pg) as tenant:
        await tenant.subscribe(400)
        await tenant.broadcast("Hallo #race")
        engines = [Database(pg) for _ in range(4)]
        try:
            claimed: list[list[int]] = [[] for _ in engines]

            async def claimer(index: int) -> None:
                while True:
                    jobs = await dispatch.claim(engines[index], limit=25, lease_seconds=60)
                    if not jobs:
                        return
                    assert len(jobs) <= 25, f"a claim took {len(jobs)} rows, not one chunk"
                    claimed[index] += [job.id for job in jobs if job.table == "deliveries"]

            await asyncio.gather(*(claimer(i) for i in range(len(engines))))
        finally:
            for db in engines:
                await db.dispose()
        every = [i for ids in claimed for i in ids]
        assert len(every) == len(set(every)) == 400, [len(ids) for ids in claimed]
        assert sum(1 for ids in claimed if ids) >= 2, "one claimer took everything"


async def test_two_dispatchers_share_a_broadcast_and_send_each_copy_once(postgres_url: str) -> None:
    pg = postgres_url
    async with tenant_on(pg) as tenant:
        people = await tenant.subscribe(600)
        async with worker(pg, chunk_size=50) as a, worker(pg, chunk_size=50) as b:
            await tenant.broadcast("Eilmeldung #twice")
            await wait_for(lambda: _none_left(tenant), what="every send recorded")
        copies = await tenant.copies_per_phone("#twice")
        assert copies == dict.fromkeys(people, 1)
        # 600 broadcast copies + 600 welcome confirmations, split between the two.
        assert a.sent + b.sent == 1200, (a.sent, b.sent)
        assert a.sent >= 100 and b.sent >= 100, f"the work was not shared: {a.sent} / {b.sent}"
        print(f"\n[workers] two dispatchers sent {a.sent} + {b.sent}")


async def _none_left(tenant: Tenant) -> bool:
    return await tenant.unfinished() == 0


async def test_an_expired_lease_of_a_crashed_worker_is_taken_over(postgres_url: str) -> None:
    pg = postgres_url
    async with tenant_on(pg) as tenant:
        people = await tenant.subscribe(50)
        async with worker(pg):  # the welcome confirmations go out first
            await wait_for(lambda: _none_left(tenant), what="confirmations sent")
        await tenant.broadcast("Nachricht #lease")
        # The "crashed" worker claims everything and dies without sending.
        crashed = Database(pg)
        try:
            jobs = await dispatch.claim(crashed, limit=1000, lease_seconds=1.0)
        finally:
            await crashed.dispose()
        assert len(jobs) == 50
        async with worker(pg) as survivor:
            await asyncio.sleep(0.3)
            # A live lease is respected: nothing is requeued or sent yet.
            assert await dispatch.requeue_expired(tenant.db, settle_seconds=120) == 0
            assert survivor.sent == 0
            await asyncio.sleep(0.9)
            assert await dispatch.requeue_expired(tenant.db, settle_seconds=120) == 50
            await wait_for(lambda: _none_left(tenant), what="the requeued rows sent")
        assert await tenant.copies_per_phone("#lease") == dict.fromkeys(people, 1)
        attempts = await tenant.scalar(select(func.max(deliveries.c.attempts)))
        assert attempts == 2  # the crashed claim counted; the takeover is the second


async def test_only_one_scheduler_holds_the_lock_and_another_takes_over(
    postgres_url: str,
) -> None:
    dsn = Database(postgres_url).libpq_url
    first, second = SchedulerLock(dsn), SchedulerLock(dsn)
    try:
        assert await first.hold()
        assert not await second.hold()
        assert await first.hold()  # still ours, and checked alive
        await first.close()  # a clean exit ends the session
        assert await second.hold()
        # A crash: the holder's backend is terminated; the lock frees with the session.
        third = SchedulerLock(dsn)
        assert not await third.hold()
        admin = await asyncpg.connect(dsn)
        try:
            holder = await admin.fetchval(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = $1"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                SCHEDULER_LOCK & 0xFFFFFFFF,
            )
            assert holder is not None
            await admin.execute("SELECT pg_terminate_backend($1)", holder)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
        assert await third.hold()
        assert not await second.hold(), "the terminated holder must notice it lost the lock"
    finally:
        for lock in (first, second):
            await lock.close()
        await third.close()


async def test_the_scheduler_loop_runs_only_on_the_lock_holder(postgres_url: str) -> None:
    pg = postgres_url
    async with tenant_on(pg) as tenant:
        await tenant.subscribe(3)
        dsn = tenant.db.libpq_url
        holder = SchedulerLock(dsn)
        assert await holder.hold()
        broadcast_id = await tenant.broadcast("Später #sched", send=False)
        async with tenant.db.write() as conn:  # due now
            await conn.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id)
                .values(status="scheduled", send_at=utcnow() - timedelta(seconds=1))
            )
        stop = asyncio.Event()
        loop = asyncio.create_task(
            run_scheduler(
                tenant.db, stop, poll_seconds=0.05, wake=lambda: None, lock=SchedulerLock(dsn)
            )
        )
        try:
            await asyncio.sleep(0.5)
            status = await tenant.scalar(
                select(broadcasts.c.status).where(broadcasts.c.id == broadcast_id)
            )
            assert status == "scheduled", "a scheduler without the lock did work"
            await holder.close()
            started = time.monotonic()
            await wait_for(
                lambda: _status_is(tenant, broadcast_id, "sending"),
                timeout=5,
                what="the other scheduler to start the broadcast",
            )
            print(f"\n[workers] scheduler takeover in {time.monotonic() - started:.2f}s")
        finally:
            stop.set()
            await asyncio.wait_for(loop, timeout=10)
            await holder.close()


async def _status_is(tenant: Tenant, broadcast_id: int, status: str) -> bool:
    found = await tenant.scalar(select(broadcasts.c.status).where(broadcasts.c.id == broadcast_id))
    return bool(found == status)


async def test_notify_wakes_an_idle_worker_long_before_its_poll(postgres_url: str) -> None:
    pg = postgres_url
    poll = 10.0
    async with tenant_on(pg) as tenant:
        people = await tenant.subscribe(5)
        async with worker(pg, poll_seconds=0.02):
            await wait_for(lambda: _none_left(tenant), what="confirmations sent")
        woken: list[float] = []
        async with worker(pg, poll_seconds=poll) as idle:

            def wake() -> None:
                woken.append(time.monotonic())
                idle.wake()

            listener = WorkListener(idle.db.libpq_url, wake)
            stop = asyncio.Event()
            listening = asyncio.create_task(listener.run(stop))
            try:
                await asyncio.wait_for(listener.connected.wait(), timeout=5)
                await asyncio.sleep(0.3)  # the dispatcher is idle in its 10 s poll now
                woken.clear()
                broadcast_id = await tenant.broadcast("Sofort #notify", send=False)
                called = time.monotonic()
                await broadcast_service.send_broadcast(
                    tenant.db, actor=tenant.owner, broadcast_id=broadcast_id
                )
                returned = time.monotonic()
                await wait_for(
                    lambda: _copies_are(tenant, "#notify", len(people)),
                    timeout=poll / 2,
                    what="the broadcast to arrive before the poll",
                )
                arrived = time.monotonic()
            finally:
                stop.set()
                await asyncio.wait_for(listening, timeout=10)
        assert woken, "no notification arrived"
        # The commit happens inside send_broadcast: the wake is at most this long after it.
        wake_ms = (woken[0] - called) * 1000
        call_ms = (returned - called) * 1000
        arrive_ms = (arrived - called) * 1000
        print(
            f"\n[workers] NOTIFY woke the idle worker {wake_ms:.1f} ms after send_broadcast "
            f"was called (the call took {call_ms:.1f} ms); {len(people)} copies on the phones "
            f"after {arrive_ms:.0f} ms; poll interval {poll:.0f} s"
        )
        assert arrive_ms < 2000


async def _copies_are(tenant: Tenant, marker: str, count: int) -> bool:
    return sum((await tenant.copies_per_phone(marker)).values()) == count
