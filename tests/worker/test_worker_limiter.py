"""The in-process GCRA limiter paces real sleeps (behaviour, not a performance target)."""

from __future__ import annotations

import asyncio
import time

from rundfunk.core.ratelimit import Rate
from rundfunk.worker.limiter import InProcessLimiter

RATE = Rate(per_second=200, burst=1)


async def _seconds_for(limiter: InProcessLimiter, key: int, count: int, rate: Rate) -> float:
    """Time for ``count`` concurrent senders to get their slots, as the dispatcher asks."""
    start = time.monotonic()
    await asyncio.gather(*(limiter.acquire(key, rate) for _ in range(count)))
    return time.monotonic() - start


async def test_200_per_second_spaces_200_sends_over_one_second() -> None:
    # The first goes at once, then one every 5 ms: 199 * 5 ms = 0.995 s.
    elapsed = await _seconds_for(InProcessLimiter(), 1, 200, RATE)
    assert 0.9 <= elapsed <= 1.3, elapsed


async def test_slow_down_halves_the_rate() -> None:
    limiter = InProcessLimiter()
    limiter.slow_down(1, RATE)

    # 100/s now: 100 sends take as long as 200 did before.
    elapsed = await _seconds_for(limiter, 1, 100, RATE)

    assert 0.9 <= elapsed <= 1.3, elapsed


async def test_slow_down_is_per_key_and_wears_off() -> None:
    limiter = InProcessLimiter()
    limiter.slow_down(1, RATE, seconds=0.1)

    other_key = await _seconds_for(limiter, 2, 100, RATE)  # 99 * 5 ms ≈ 0.5 s
    assert 0.4 <= other_key <= 0.85, other_key  # 1 s if key 2 were slowed too

    # By now key 1's slow-down has expired: full speed again.
    recovered = await _seconds_for(limiter, 1, 100, RATE)
    assert 0.4 <= recovered <= 0.85, recovered  # 1 s if still slowed
