"""Channel changes reach every process: two runtimes on one database stand for two
processes (each has its own connection pool, registry and signals).

On SQLite the version check carries a change (the CLI and a running server share the
file, nothing signals between them); on PostgreSQL ``NOTIFY`` does, well before the
check; through Redis the change signal reaches every process's callbacks. Sends
waiting on the limiter at the old rate take the new one at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from rundfunk.config import Settings
from rundfunk.core.ratelimit import Rate
from rundfunk.db.changes import Changes
from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database
from rundfunk.db.tables import channels
from rundfunk.services import channels as channel_service
from rundfunk.services import workspaces
from rundfunk.services.actors import Actor, Role
from rundfunk.worker.limiter import InProcessLimiter
from rundfunk.worker.postgres_limiter import PostgresLimiter
from rundfunk.worker.redis_limiter import RedisLimiter
from rundfunk.worker.runtime import Runtime
from rundfunk.worker.shared_limiter import StoreLimiter

BOUND_S = 2.0


async def _within(check: Callable[[], Awaitable[bool]], bound: float = BOUND_S) -> float:
    """Seconds until ``check`` holds; fails after ``bound``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < bound, f"not within {bound}s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def _settings(tmp_path: Path, url: str, name: str, check: float) -> Settings:
    return Settings(
        data_dir=tmp_path / name,
        database_url=url,
        secret_key="watch-test-key",
        demo=False,
        channel_check_seconds=check,
    )


Processes = Callable[[float], Awaitable[tuple[Runtime, Runtime]]]


@pytest.fixture
async def two_processes(tmp_path: Path, database_url: str) -> AsyncIterator[Processes]:
    """Makes two runtimes (web nodes) on the test's database, version check every ``s``."""
    made: list[Runtime] = []

    async def make(check: float) -> tuple[Runtime, Runtime]:
        for name in ("a", "b"):
            settings = _settings(tmp_path, database_url, name, check)
            made.append(await Runtime.create(settings, run_worker=False))
        return made[-2], made[-1]

    try:
        yield make
    finally:
        for runtime in made:
            await runtime.close()


async def _channel(runtime: Runtime) -> tuple[Actor, int]:
    workspace_id = await workspaces.create_workspace(runtime.db, slug="watch")
    actor = Actor(workspace_id, Role.OWNER, "test")
    made = await channel_service.create_channel(
        runtime.db, actor=actor, kind="sandbox", name="S", settings={"throughput": 10}
    )
    return actor, int(made["id"])


async def _version(runtime: Runtime, channel_id: int) -> int:
    async with runtime.db.read() as conn:
        found = await conn.scalar(select(channels.c.version).where(channels.c.id == channel_id))
    return int(found)


async def test_a_change_in_one_process_reaches_the_other(two_processes: Processes) -> None:
    a, b = await two_processes(0.2)
    actor, channel_id = await _channel(a)
    assert (await b.registry.rate(channel_id)).per_second == 10  # cached by process B
    assert await _version(a, channel_id) == 1

    await channel_service.update_channel(
        a.db, actor=actor, channel_id=channel_id, box=a.box, config={"throughput": 500}
    )
    assert await _version(a, channel_id) == 2

    async def b_has_it() -> bool:
        return (await b.registry.rate(channel_id)).per_second == 500

    took = await _within(b_has_it)
    engine = "sqlite" if b.db.is_sqlite else "postgresql"
    print(f"\n[channel watch] {engine}: process B had the new rate after {took:.3f}s")
    # Disabling bumps the version as well, and B drops its object again.
    await channel_service.disable_channel(a.db, actor=actor, channel_id=channel_id, reason="t")
    assert await _version(a, channel_id) == 3

    async def b_forgot() -> bool:
        return channel_id not in b.registry.versions()

    await _within(b_forgot)
    assert b.channel_watch.signals + b.channel_watch.caught >= 2


async def test_on_postgresql_notify_carries_it_without_the_version_check(
    two_processes: Processes,
) -> None:
    a, b = await two_processes(60.0)  # the check would come only after a minute
    if a.db.is_sqlite:
        pytest.skip("NOTIFY is PostgreSQL's")
    assert b.listener is not None
    await asyncio.wait_for(b.listener.connected.wait(), timeout=10)
    actor, channel_id = await _channel(a)
    assert (await b.registry.rate(channel_id)).per_second == 10
    await channel_service.update_channel(
        a.db, actor=actor, channel_id=channel_id, box=a.box, config={"throughput": 250}
    )

    async def b_has_it() -> bool:
        return (await b.registry.rate(channel_id)).per_second == 250

    await _within(b_has_it, bound=1.0)
    assert b.channel_watch.signals >= 1 and b.channel_watch.caught == 0


async def test_the_version_check_catches_a_lost_signal(two_processes: Processes) -> None:
    a, b = await two_processes(0.2)
    actor, channel_id = await _channel(a)
    await b.registry.rate(channel_id)
    # A write nothing signals (as from a process that died before its signal went out).
    async with a.db.engine.begin() as conn:
        await conn.execute(
            channels.update()
            .where(channels.c.id == channel_id)
            .values(settings={"throughput": 42}, version=channels.c.version + 1)
        )

    async def b_has_it() -> bool:
        return (await b.registry.rate(channel_id)).per_second == 42

    await _within(b_has_it)
    assert b.channel_watch.caught == 1


async def test_channel_signals_travel_through_redis(redis_url: str) -> None:
    sender, receiver = Changes(), Changes()
    heard: list[set[int]] = []
    own: list[set[int]] = []
    receiver.on_channels(heard.append)
    sender.on_channels(own.append)
    await sender.connect(redis_url)
    await receiver.connect(redis_url)
    try:
        await asyncio.sleep(0.1)  # both subscribed
        sender.publish_channels([7, 9])
        assert own == [{7, 9}]  # this process at once, not again through Redis

        async def arrived() -> bool:
            return heard == [{7, 9}]

        await _within(arrived, bound=1.0)
        await asyncio.sleep(0.1)
        assert own == [{7, 9}]
    finally:
        await sender.close()
        await receiver.close()


# --- the limiter: sends waiting at the old rate ------------------------------------------


async def test_a_send_waiting_at_the_old_rate_takes_the_new_one_in_process() -> None:
    limiter = InProcessLimiter()
    slow, fast = Rate(1.0, 1), Rate(500.0, 1)
    await limiter.acquire(3, slow)  # the first slot is now
    waiting = [asyncio.create_task(limiter.acquire(3, slow)) for _ in range(5)]  # 5 s ahead
    await asyncio.sleep(0.05)
    started = time.monotonic()
    limiter.rerate(3, fast)
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=1.0)
    assert time.monotonic() - started < 0.2
    # The slots reserved at 1/s were re-spaced at 500/s: the next one is soon, too.
    assert limiter.reserve(3, fast) < 0.05


@pytest.fixture(params=["redis", "postgresql"])
async def store_limiters(request: pytest.FixtureRequest) -> AsyncIterator[list[StoreLimiter]]:
    """Two workers' limiters on one store: Redis, or a migrated PostgreSQL database."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        made: list[StoreLimiter] = [RedisLimiter(url, prefix="rerate:") for _ in range(2)]
    else:
        db = Database(request.getfixturevalue("postgres_url"))
        await upgrade(db)
        made = [PostgresLimiter(db.libpq_url, prefix="rerate:") for _ in range(2)]
        await db.dispose()
    try:
        yield made
    finally:
        for limiter in made:
            await limiter.close()


async def test_a_send_waiting_at_the_old_rate_takes_the_new_one_in_a_shared_store(
    store_limiters: list[StoreLimiter],
) -> None:
    first, second = store_limiters
    slow, fast = Rate(2.0, 1), Rate(500.0, 1)
    await first.acquire(5, slow)
    # Another worker's sends hold 20 slots at 2/s: 10 s of the shared schedule.
    held = [asyncio.create_task(second.acquire(5, slow)) for _ in range(20)]
    waiting = [asyncio.create_task(first.acquire(5, slow)) for _ in range(10)]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    first.rerate(5, fast)
    second.rerate(5, fast)
    await asyncio.wait_for(asyncio.gather(*waiting, *held), timeout=3.0)
    took = time.monotonic() - started
    assert took < 0.5, f"30 sends at 500/s took {took:.2f}s"
