"""The limiters shared by worker processes, against real Redis and real PostgreSQL.

Two limiter instances stand for two worker processes: each has connections of its own
and only the store in common. The upper bounds are generous (a loaded machine only
makes sends late) but each bound sits well away from what a broken limiter would do
(twice the rate, no slow-down, no floor).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

import engines
from rundfunk.config import Settings
from rundfunk.core.ratelimit import Rate
from rundfunk.db.session import Database
from rundfunk.worker.limiter import InProcessLimiter, LimiterUnavailable
from rundfunk.worker.postgres_limiter import PostgresLimiter
from rundfunk.worker.redis_limiter import RedisLimiter
from rundfunk.worker.runtime import Runtime
from rundfunk.worker.shared_limiter import StoreLimiter

Factory = Callable[..., StoreLimiter]
_tests = itertools.count()


@pytest.fixture(scope="module")
def migrated_postgres() -> Iterator[str]:
    """One migrated PostgreSQL database for the module (each test has keys of its own):
    a database per test would spend more time on migrations than on the tests."""
    try:
        with engines.postgres_database(migrated=True) as url:
            yield url
    except engines.PostgresUnavailable as exc:
        if os.environ.get("CI") or engines.ON_POSTGRES:
            pytest.fail(str(exc))
        pytest.skip(f"{exc}; start it to run this test")


@pytest.fixture(params=["redis", "postgresql"])
async def new_limiter(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Makes limiters on one store: Redis db 15, or the module's PostgreSQL database."""
    made: list[StoreLimiter] = []
    prefix = f"test-{next(_tests)}:"
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")

        def make(**options: float) -> StoreLimiter:
            made.append(RedisLimiter(url, prefix=prefix, **options))
            return made[-1]
    else:
        dsn = Database(request.getfixturevalue("migrated_postgres")).libpq_url

        def make(**options: float) -> StoreLimiter:
            made.append(PostgresLimiter(dsn, prefix=prefix, **options))
            return made[-1]

    yield make
    for limiter in made:
        await limiter.close()


async def _seconds_for(limiter: StoreLimiter, key: int, count: int, rate: Rate) -> float:
    """Time for ``count`` concurrent senders to get their slots, as the dispatcher asks."""
    start = time.monotonic()
    await asyncio.gather(*(limiter.acquire(key, rate) for _ in range(count)))
    return time.monotonic() - start


def _waits_observed() -> float:
    return REGISTRY.get_sample_value("rundfunk_limiter_wait_seconds_count") or 0.0


async def test_one_limiter_paces_sends_at_the_rate(new_limiter: Factory) -> None:
    limiter = new_limiter()
    await limiter.start()
    observed = _waits_observed()

    # 300 sends at 300/s: the first at once, then one every 3.3 ms (299 intervals).
    elapsed = await _seconds_for(limiter, 1, 300, Rate(300))

    assert 0.95 <= elapsed <= 1.5, elapsed
    assert _waits_observed() - observed == 300  # every wait in the histogram


async def test_two_processes_share_one_rate_instead_of_doubling_it(new_limiter: Factory) -> None:
    first, second = new_limiter(), new_limiter()
    rate = Rate(300)

    start = time.monotonic()
    await asyncio.gather(*(_seconds_for(w, 1, 150, rate) for w in (first, second)))
    elapsed = time.monotonic() - start

    # 300 slots of one 300/s sender: ~1 s together. Two separate limits would take 0.5 s.
    assert 0.95 <= elapsed <= 1.6, elapsed


async def test_a_stalled_process_gives_late_slots_up_instead_of_bursting(
    new_limiter: Factory,
) -> None:
    limiter = new_limiter()
    await limiter.start()
    rate, granted = Rate(200), list[float]()

    async def sender() -> None:
        for _ in range(6):
            await limiter.acquire(1, rate)
            granted.append(time.monotonic())

    senders = asyncio.gather(*(sender() for _ in range(40)))
    await asyncio.sleep(0.3)
    time.sleep(0.15)  # the process stalls: 30 slots pass meanwhile
    await senders

    # Sent at once when it woke up, those 30 would be a burst of 30 in one instant;
    # instead each 50 ms holds its 10, and the passed slots were given up.
    busiest = max(sum(1 for t in granted if s <= t < s + 0.05) for s in granted)
    assert busiest <= 16 and limiter.forfeited >= 15, (busiest, limiter.forfeited)


async def test_a_slow_down_is_seen_by_every_process(new_limiter: Factory) -> None:
    seeing, other = new_limiter(), new_limiter()
    rate = Rate(200)

    seeing.slow_down(1, rate)
    seeing.slow_down(1, rate)  # a burst of rejections halves once (per 5 s), not twice
    await seeing.settle()

    # 100/s in the other process too: 100 sends take ~1 s (0.5 s at the full rate,
    # 2 s had the second call halved again).
    elapsed = await _seconds_for(other, 1, 100, rate)
    assert 0.9 <= elapsed <= 1.6, elapsed


async def test_repeated_slow_downs_stop_at_an_eighth_of_the_rate(new_limiter: Factory) -> None:
    limiter = new_limiter(cut_gap_seconds=0.02)
    rate = Rate(800)
    for _ in range(5):  # 800 → 400 → 200 → 100, then the floor holds (not 50, 25)
        limiter.slow_down(1, rate)
        await limiter.settle()
        await asyncio.sleep(0.03)

    elapsed = await _seconds_for(new_limiter(), 1, 100, rate)

    assert 0.9 <= elapsed <= 1.6, elapsed  # 100/s; 2 s or 4 s below the floor


async def test_a_slow_down_wears_off(new_limiter: Factory) -> None:
    limiter = new_limiter()
    limiter.slow_down(1, Rate(200), seconds=0.1)
    await limiter.settle()
    await asyncio.sleep(0.15)

    elapsed = await _seconds_for(limiter, 1, 100, Rate(200))

    assert 0.4 <= elapsed <= 0.85, elapsed  # full speed again (1 s if still slowed)


async def test_senders_are_independent(new_limiter: Factory) -> None:
    first, second = new_limiter(), new_limiter()
    rate = Rate(200)
    first.slow_down(1, rate)
    await first.settle()
    busy = asyncio.gather(*(first.acquire(1, rate) for _ in range(150)))  # 1.5 s of key 1

    elapsed = await _seconds_for(second, 2, 100, rate)

    assert 0.4 <= elapsed <= 0.85, elapsed  # key 2 at its own full rate, not behind key 1
    busy.cancel()
    await asyncio.gather(busy, return_exceptions=True)


async def test_an_idle_sender_leaves_nothing_behind_in_redis(redis_url: str) -> None:
    limiter = RedisLimiter(redis_url, prefix="idle:")
    store = Redis.from_url(redis_url)
    try:
        await asyncio.gather(*(limiter.acquire(1, Rate(100)) for _ in range(5)))
        assert 0 < await store.pttl("idle:1") <= 1100  # its last slot, plus a second

        await asyncio.sleep(1.2)

        assert await store.exists("idle:1") == 0
        limiter.slow_down(1, Rate(100), seconds=30)  # kept as long as it lasts
        await limiter.settle()
        assert 29_000 < await store.pttl("idle:1") <= 31_000
    finally:
        await store.aclose()
        await limiter.close()


async def test_an_unreachable_redis_fails_loudly() -> None:
    limiter = RedisLimiter("redis://:secret@127.0.0.1:1/0")
    with pytest.raises(LimiterUnavailable, match="RUNDFUNK_REDIS_URL") as failed:
        await limiter.start()
    assert "secret" not in str(failed.value)
    with pytest.raises(LimiterUnavailable):  # a send never goes out unlimited
        await limiter.acquire(1, Rate(10))
    await limiter.close()


async def _runtime(tmp_path: Path, database_url: str, redis_url: str | None = None) -> Runtime:
    settings = Settings(data_dir=tmp_path, database_url=database_url, redis_url=redis_url)
    return Runtime(settings, Database(database_url))


async def test_the_runtime_keeps_limits_in_process_on_sqlite(tmp_path: Path) -> None:
    runtime = await _runtime(tmp_path, f"sqlite:///{tmp_path}/one.db")
    assert isinstance(runtime.limiter, InProcessLimiter)
    assert runtime.dispatcher.limiter is runtime.limiter
    await runtime.close()


async def test_the_runtime_shares_limits_in_postgresql_without_redis(
    tmp_path: Path, migrated_postgres: str
) -> None:
    runtime = await _runtime(tmp_path, migrated_postgres)
    assert isinstance(runtime.limiter, PostgresLimiter)
    assert runtime.dispatcher.limiter is runtime.limiter
    await runtime.close()


async def test_the_runtime_shares_limits_in_redis_when_configured(
    tmp_path: Path, migrated_postgres: str, redis_url: str
) -> None:
    runtime = await _runtime(tmp_path, migrated_postgres, redis_url)
    assert isinstance(runtime.limiter, RedisLimiter)
    assert runtime.dispatcher.limiter is runtime.limiter
    await runtime.close()


async def test_the_worker_does_not_start_without_its_redis(tmp_path: Path) -> None:
    runtime = await _runtime(tmp_path, f"sqlite:///{tmp_path}/one.db", "redis://127.0.0.1:1/0")
    try:
        with pytest.raises(LimiterUnavailable, match="RUNDFUNK_REDIS_URL"):
            await runtime.start_worker()
        assert runtime.ownership is not None and runtime.dispatcher.sent == 0
    finally:
        await runtime.close()
