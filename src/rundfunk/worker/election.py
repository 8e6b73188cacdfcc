"""One scheduler at a time across every worker on a PostgreSQL database.

The scheduler's passes (start due broadcasts, requeue expired leases, close finished
broadcasts) are safe to run twice, but pointless, and each takes write locks. Every
worker runs the scheduler loop; only the one holding a session-level advisory lock
does the work. The lock lives on a connection of its own: when that process exits
or crashes, PostgreSQL ends the session and the lock is free for the next worker's
``pg_try_advisory_lock`` (tried once per scheduler pass, so within a poll interval).
"""

from __future__ import annotations

import logging

import asyncpg  # type: ignore[import-untyped]  # no stubs; used on two connections only

from rundfunk.db.session import SCHEDULER_LOCK

log = logging.getLogger(__name__)


class SchedulerLock:
    def __init__(self, dsn: str, *, key: int = SCHEDULER_LOCK) -> None:
        self._dsn = dsn
        self._key = key
        self._conn: asyncpg.Connection | None = None
        self.held = False
        self.failures = 0  # times the database could not be asked (the scheduler's quiet time)

    async def hold(self) -> bool:
        """True while this process is the scheduler.

        Takes the lock when it is free; while held, checks the connection (and so the
        lock) is still alive, so a process whose connection broke stops scheduling.
        """
        try:
            if self._conn is None or self._conn.is_closed():
                if self._conn is not None:  # the server ended our session (a restart)
                    self.failures += 1
                    if self.held:
                        log.warning("lost the scheduler lock: its connection was closed")
                self.held = False
                self._conn = await asyncpg.connect(self._dsn, timeout=5)
            if self.held:
                await self._conn.fetchval("SELECT 1", timeout=5)
                return True
            self.held = bool(
                await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key, timeout=5)
            )
            if self.held:
                log.info("this worker is now the scheduler")
            return self.held
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.failures += 1
            if self.held:
                log.warning("lost the scheduler lock: %s", exc)
            await self.close()
            return False

    async def close(self) -> None:
        """Give the lock up (closing the session releases it)."""
        self.held = False
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()
