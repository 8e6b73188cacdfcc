"""Keep this process's channel objects in step with their rows, whoever changed them.

A channel's rate, secrets or status may change in any process: a web node's API, the
console, the CLI. Every such change bumps ``channels.version`` and signals the change
(``db.changes.channel_changed``): in this process at once, to every process through
Redis (``RUNDFUNK_REDIS_URL``) and PostgreSQL ``NOTIFY`` (``wakeup.WorkListener``).
Each signal makes ``ChannelWatch.changed`` drop the cached object (the next use
rebuilds it from the row) and tell the dispatcher, whose sends waiting on the limiter
then reserve again at the new rate.

Signals can be lost (a Redis reconnect, the CLI on a SQLite file shared with a
running server), so every ``every`` seconds the versions of the cached channels are
compared with their rows: one primary-key query of a handful of ids per process
per second, and a lost signal costs at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from sqlalchemy import select

from rundfunk.db.session import Database
from rundfunk.db.tables import channels
from rundfunk.services.registry import ChannelRegistry

log = logging.getLogger(__name__)


class ChannelWatch:
    def __init__(
        self,
        db: Database,
        registry: ChannelRegistry,
        *,
        every: float = 1.0,
        also: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self._registry = registry
        self._every = every
        self._also = also  # told each changed id after the registry (the dispatcher)
        self.signals = 0  # channel ids changed by a signal (for tests and metrics)
        self.caught = 0  # channel ids found stale by the version check

    def changed(self, channel_ids: Iterable[int]) -> None:
        """Channels changed somewhere: drop their cached objects (a signal's callback)."""
        for channel_id in channel_ids:
            self.signals += 1
            self._drop(channel_id)

    def changed_text(self, payload: str) -> None:
        """A ``NOTIFY rundfunk_channels`` payload (the channel id)."""
        if payload.strip().isdigit():
            self.changed([int(payload)])

    def _drop(self, channel_id: int) -> None:
        self._registry.forget(channel_id)
        if self._also is not None:
            self._also(channel_id)

    async def check(self) -> int:
        """Compare the cached channels' versions with their rows; returns how many moved."""
        held = self._registry.versions()
        if not held:
            return 0
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(channels.c.id, channels.c.version).where(channels.c.id.in_(list(held)))
            )
            current = {int(row.id): int(row.version) for row in rows}
        stale = [cid for cid, version in held.items() if current.get(cid) != version]
        for channel_id in stale:
            # Only if nothing rebuilt it meanwhile from a newer row.
            if self._registry.versions().get(channel_id) == held[channel_id]:
                self.caught += 1
                self._drop(channel_id)
        return len(stale)

    async def run(self, stop: asyncio.Event) -> None:
        """Check every ``every`` seconds until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._every)
            if stop.is_set():
                return
            try:
                await self.check()
            except Exception as exc:  # the database is away: try again next round
                log.warning("checking channel versions failed (%s)", exc)
