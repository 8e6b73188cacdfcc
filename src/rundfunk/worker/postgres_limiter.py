"""The per-sender limit shared by every worker process through PostgreSQL (no Redis).

When several workers share a PostgreSQL database but no Redis is configured, each
sender's GCRA state is a row of ``rate_limits`` (migration 0004): one
``INSERT … ON CONFLICT (key) DO UPDATE … RETURNING`` per round trip reserves a run of
slots atomically (the row lock orders concurrent workers), computed on the database
server's clock (``clock_timestamp()``), so the worker machines' clocks never matter.

The SQL lives here rather than in ``services/`` because, like ``election``'s advisory
lock, this is the limiter's own scratch state, not the product's data: no service
reads it, and losing it costs at most one burst. That is also why it runs on a small
asyncpg pool of its own with ``synchronous_commit = off``: a reservation must not
wait for the WAL to reach the disk (the row stays locked until commit, so every
flush would cap all workers' shared rate), nor for a connection the dispatcher's
claims and records hold.

Rows (``tat`` is a float in every one): ``sender:<key>`` the theoretical arrival
time; while slowed down also ``…:slowed-until``, ``…:slow-level`` (how many
halvings) and ``…:slow-cut`` (the last halving), so a 130429 seen by one worker slows
every worker down. A sender's row also keeps the configured rate it last reserved at
(``rate``): when a channel's rate changes, the slots still reserved are re-spaced at
the new one (see ``redis_limiter``). The slowed rate is ``rate / 2**level``, not below
``floor_rate``. Rows of idle senders stay (one per
channel): a ``tat`` in the past is the same as none.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs

from rundfunk.core.ratelimit import Rate
from rundfunk.worker.limiter import CUT_GAP_SECONDS, LimiterUnavailable, floor_rate
from rundfunk.worker.shared_limiter import LATE_SECONDS, Grant, StoreLimiter

_NOW = "extract(epoch FROM clock_timestamp())::float8"

# $1 the sender's row, $2 per_second, $3 burst, $4 floor, $5 slow-level row,
# $6 slowed-until row, $7 how many slots, $8 the lead (see ``shared_limiter``).
_RESERVE = f"""
WITH clock AS MATERIALIZED (SELECT {_NOW} AS now),
level AS (
    SELECT coalesce((
        SELECT l.tat FROM rate_limits AS l JOIN rate_limits AS u ON u.key = $6
        WHERE l.key = $5 AND u.tat > (SELECT now FROM clock)
    ), 0) AS n
),
pace AS (
    SELECT 1 / greatest($2::float8 / power(2, n), least($4::float8, $2::float8)) AS interval,
           greatest(1, floor($3::float8 / power(2, n))) AS burst
    FROM level
)
INSERT INTO rate_limits AS r (key, tat, rate)
SELECT $1, clock.now + $8::float8 + $7::int * pace.interval, $2::float8 FROM clock, pace
ON CONFLICT (key) DO UPDATE
    SET tat = greatest(
        -- a new configured rate: the slots still reserved are spaced at it (under the
        -- row's lock, so two workers never re-space the same slots twice)
        CASE WHEN r.rate IS NOT NULL AND r.rate <> $2::float8 AND r.tat > (SELECT now FROM clock)
             THEN (SELECT now FROM clock) + (r.tat - (SELECT now FROM clock)) * r.rate / $2::float8
             ELSE r.tat END
        + $7::int * (SELECT interval FROM pace),
        excluded.tat),
        rate = $2::float8
RETURNING
    (SELECT now FROM clock),
    r.tat - $7::int * (SELECT interval FROM pace) - (SELECT now FROM clock),
    (SELECT interval FROM pace),
    ((SELECT burst FROM pace) - 1) * (SELECT interval FROM pace)
"""

# Takes the row lock that orders concurrent slow-downs of one sender.
_LOCK_CUT = """
INSERT INTO rate_limits AS r (key, tat) VALUES ($1, 0) ON CONFLICT (key)
DO UPDATE SET tat = r.tat RETURNING tat
"""

_READ_SLOW = f"""
SELECT {_NOW},
    (SELECT tat FROM rate_limits WHERE key = $1),
    (SELECT tat FROM rate_limits WHERE key = $2)
"""

_WRITE = """
INSERT INTO rate_limits AS r (key, tat) SELECT * FROM unnest($1::varchar[], $2::float8[])
ON CONFLICT (key) DO UPDATE SET tat = excluded.tat
"""

_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class PostgresLimiter(StoreLimiter):
    def __init__(
        self,
        dsn: str,
        *,
        prefix: str = "sender:",
        pool_size: int = 4,
        cut_gap_seconds: float = CUT_GAP_SECONDS,
        late_seconds: float = LATE_SECONDS,
    ) -> None:
        """``dsn`` as asyncpg takes it (``Database.libpq_url``)."""
        super().__init__(cut_gap_seconds=cut_gap_seconds, late_seconds=late_seconds)
        self._dsn = dsn
        self.prefix = prefix
        self._pool_size = pool_size
        self._pool: Any = None  # asyncpg.Pool, once started
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._pool is not None:
                return
            try:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=10,
                    server_settings={
                        "synchronous_commit": "off",
                        "application_name": "rundfunk-limiter",
                    },
                )
            except _ERRORS as exc:
                raise LimiterUnavailable(
                    f"PostgreSQL, which keeps the shared rate limits, cannot be reached: {exc}"
                ) from exc

    async def _reserve(self, key: int, rate: Rate, count: int, lead: float) -> Grant:
        if self._pool is None:
            await self.start()
        name = f"{self.prefix}{key}"
        args = (name, rate.per_second, rate.burst, floor_rate(rate))
        try:
            row = await self._pool.fetchrow(
                _RESERVE,
                *args,
                f"{name}:slow-level",
                f"{name}:slowed-until",
                count,
                lead,
                timeout=10,
            )
        except _ERRORS as exc:
            raise LimiterUnavailable(f"reserving a send slot in PostgreSQL failed: {exc}") from exc
        return Grant(float(row[0]), float(row[1]), float(row[2]), float(row[3]))

    async def _slow_down(self, key: int, rate: Rate, seconds: float) -> None:
        """The rules of ``InProcessLimiter.slow_down``, in one short transaction."""
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be positive and finite, got {seconds}")
        if self._pool is None:
            await self.start()
        name = f"{self.prefix}{key}"
        keys = [f"{name}:slowed-until", f"{name}:slow-level", f"{name}:slow-cut"]
        async with self._pool.acquire() as conn, conn.transaction():
            cut: float | None = await conn.fetchval(_LOCK_CUT, keys[2])
            now, slowed_until, level = await conn.fetchrow(_READ_SLOW, keys[0], keys[1])
            if slowed_until is None or slowed_until <= now:  # worn off: start over
                level, cut = 0.0, None
            if cut is None or now - cut >= self.cut_gap_seconds:
                level, cut = min((level or 0.0) + 1, 30.0), now
            await conn.execute(_WRITE, keys, [now + seconds, level, cut])

    async def _close_store(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
