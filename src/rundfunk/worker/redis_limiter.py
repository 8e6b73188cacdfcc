"""The per-sender limit shared by every worker process through Redis (scaled mode).

Several ``rundfunk worker`` processes send for the same WhatsApp number; each with a
limiter of its own would send at the full rate, together a multiple of it. Here each
sender's GCRA state is one Redis hash, updated by one Lua script per round trip
(atomic: no two workers get the same slot). The scripts read Redis's own clock
(``TIME``), so the worker machines' clocks never enter the schedule.

The hash ``<prefix><key>`` holds ``tat`` (the theoretical arrival time, seconds on
Redis's clock) and the shared slow-down: ``until`` (when it wears off), ``level``
(how many halvings) and ``cut`` (the last halving). A 130429 seen by one worker
slows every worker down. Each call passes the channel's configured rate, so an
edited rate applies at once (``rate`` keeps the last one: when it changes, the slots
still reserved are spaced anew at the new rate), and the slowed rate is derived
from it (``rate / 2**level``, not below ``floor_rate``), which is what
``InProcessLimiter.slow_down`` reaches by halving ``level`` times. The hash expires
when its last reserved slot and its slow-down have both passed: an idle sender's
state is the same as none.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from rundfunk.core.ratelimit import Rate
from rundfunk.db.changes import redacted_url
from rundfunk.worker.limiter import CUT_GAP_SECONDS, LimiterUnavailable, floor_rate
from rundfunk.worker.shared_limiter import LATE_SECONDS, Grant, StoreLimiter

# Everything in seconds; numbers go back as strings (Lua numbers would be cut to
# integers) with 17 digits (``tostring`` keeps 14: 0.1 ms at today's epoch).
_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function num(value, default) return tonumber(value) or default end
local function str(value) return string.format('%.17g', value) end
local function keep(tat, slowed_until)
  local ttl = math.max(tat, slowed_until) - now
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(ttl * 1000)) + 1000)
end
"""

# KEYS[1] the sender; ARGV per_second, burst, count, floor, lead.
_RESERVE = (
    _CLOCK
    + """
local state = redis.call('HMGET', KEYS[1], 'tat', 'until', 'level', 'rate')
local per_second, burst = num(ARGV[1]), num(ARGV[2])
local configured, before = per_second, num(state[4], nil)
local stored = num(state[1], now)
if before ~= nil and before ~= configured and stored > now then
  -- the configured rate changed: the slots still reserved are spaced at the new one
  stored = now + (stored - now) * before / configured
end
local count, floor = num(ARGV[3]), num(ARGV[4])
local slowed_until = num(state[2], 0)
if slowed_until > now then
  local share = 2 ^ num(state[3], 0)
  per_second = math.max(per_second / share, math.min(floor, per_second))
  burst = math.max(1, math.floor(burst / share))
end
local interval = 1 / per_second
local tat = math.max(stored, now + num(ARGV[5]))
local last = tat + count * interval
redis.call('HSET', KEYS[1], 'tat', str(last), 'rate', str(configured))
keep(last, slowed_until)
return {str(now), str(tat - now), str(interval), str((burst - 1) * interval)}
"""
)

# KEYS[1] the sender; ARGV seconds, gap. Halve (level + 1) at most once per gap;
# later rejections only extend it. Once worn off, it starts over from the full rate.
_SLOW_DOWN = (
    _CLOCK
    + """
local state = redis.call('HMGET', KEYS[1], 'tat', 'until', 'level', 'cut')
local level, cut = 0, nil
if num(state[2], 0) > now then
  level, cut = num(state[3], 0), num(state[4], nil)
end
if cut == nil or now - cut >= num(ARGV[2]) then
  level, cut = math.min(level + 1, 30), now
end
local slowed_until = now + num(ARGV[1])
redis.call('HSET', KEYS[1], 'until', str(slowed_until), 'level', level, 'cut', str(cut))
keep(num(state[1], 0), slowed_until)
return level
"""
)


class RedisLimiter(StoreLimiter):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "rundfunk:limiter:",
        cut_gap_seconds: float = CUT_GAP_SECONDS,
        late_seconds: float = LATE_SECONDS,
    ) -> None:
        super().__init__(cut_gap_seconds=cut_gap_seconds, late_seconds=late_seconds)
        self.url = url
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        self._reserve_script = self._redis.register_script(_RESERVE)
        self._slow_down_script = self._redis.register_script(_SLOW_DOWN)

    def _unavailable(self, exc: Exception) -> LimiterUnavailable:
        where = redacted_url(self.url)
        return LimiterUnavailable(
            f"Redis at {where} (RUNDFUNK_REDIS_URL), which keeps the shared rate limits, "
            f"cannot be reached: {exc}"
        )

    async def start(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def _reserve(self, key: int, rate: Rate, count: int, lead: float) -> Grant:
        args = [rate.per_second, rate.burst, count, floor_rate(rate), lead]
        try:
            reply = await self._reserve_script(keys=[f"{self.prefix}{key}"], args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        now, start, interval, tolerance = (float(value) for value in reply)
        return Grant(now, start, interval, tolerance)

    async def _slow_down(self, key: int, rate: Rate, seconds: float) -> None:
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be positive and finite, got {seconds}")
        await self._slow_down_script(
            keys=[f"{self.prefix}{key}"], args=[seconds, self.cut_gap_seconds]
        )

    async def _close_store(self) -> None:
        await self._redis.aclose()
