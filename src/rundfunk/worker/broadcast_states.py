"""What this dispatcher knows of the broadcasts it sends: is each one still sending?

A claimed chunk holds up to ``chunk_size`` sends of a broadcast, and at a slow rate
they go out over minutes. Pause and Cancel must stop them at once, but asking the
database before every send would cost a query per message on the hot path. So the
dispatcher asks this cache (a dict look-up) and the cache is kept current by:

- the broadcast signals (``db/broadcast_signals.py``): in process right after the
  commit of a pause, cancel or resume, and from other processes by PostgreSQL's
  ``NOTIFY``; a signal that says "not sending" calls ``on_halt`` at once, so the
  dispatcher also stops the sends that wait on the rate limiter;
- a re-read every ``refresh_seconds`` of the broadcasts whose sends this dispatcher
  holds right now (one small query, only while it holds any), in case a signal was
  lost; and a re-read when a claim and the cache disagree (``confirm``).

A re-read that began before a signal arrived is older than that signal and is not
applied (each signal bumps a per-broadcast generation), nor one that would undo an
expected move (``expected``: a pause in this process whose transaction is under
way). A broadcast the cache has never heard of counts as sending: its sends were just
claimed, and the claim only takes deliveries of sending broadcasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from sqlalchemy import select

from rundfunk.db.session import Database
from rundfunk.db.tables import broadcasts

log = logging.getLogger(__name__)

SENDING = "sending"


class BroadcastStates:
    # How often the held broadcasts are read again (the bound when a signal is lost).
    REFRESH_SECONDS = 0.5
    # Forget what we heard of broadcasts we hold nothing of, past this many entries.
    MAX_ENTRIES = 10_000
    # How long an expected move stands without its commit (the write failed).
    EXPECT_SECONDS = 1.0

    def __init__(
        self,
        db: Database,
        *,
        on_halt: Callable[[int], None] | None = None,
        refresh_seconds: float | None = None,
    ) -> None:
        self._db = db
        self._on_halt = on_halt
        self.refresh_seconds = refresh_seconds or self.REFRESH_SECONDS
        self._status: dict[int, str] = {}
        self._generation: Counter[int] = Counter()
        self._held: Counter[int] = Counter()
        self._expected: dict[int, tuple[str, float]] = {}  # id -> (status, until)
        self.signals = 0
        self.rereads = 0

    # -- the hot path -----------------------------------------------------------------
    def halted(self, broadcast_id: int | None) -> bool:
        """True when ``broadcast_id`` is known to be paused, cancelled or finished."""
        if broadcast_id is None:
            return False
        return self._status.get(broadcast_id, SENDING) != SENDING

    def status(self, broadcast_id: int) -> str:
        return self._status.get(broadcast_id, SENDING)

    # -- signals ------------------------------------------------------------------------
    def moved(self, broadcast_id: int, status: str) -> None:
        """A committed move of ``broadcast_id`` to ``status`` (a signal; never raises)."""
        self.signals += 1
        self._expected.pop(broadcast_id, None)
        self._generation[broadcast_id] += 1
        self._set(broadcast_id, status)

    def expected(self, broadcast_id: int, status: str) -> None:
        """A move of ``broadcast_id`` to ``status`` this process is about to commit: act
        on it now, and let no re-read undo it until the commit's signal."""
        self._expected[broadcast_id] = (status, time.monotonic() + self.EXPECT_SECONDS)
        self._generation[broadcast_id] += 1
        self._set(broadcast_id, status)

    def expecting(self) -> list[int]:
        """The broadcasts with a move expected but not yet committed (not to be claimed)."""
        return [i for i in list(self._expected) if self._expecting(i)]

    def _expecting(self, broadcast_id: int) -> bool:
        expected = self._expected.get(broadcast_id)
        if expected is None:
            return False
        if expected[1] < time.monotonic():
            del self._expected[broadcast_id]
            return False
        return True

    def _set(self, broadcast_id: int, status: str) -> None:
        was = self._status.get(broadcast_id, SENDING)
        self._status[broadcast_id] = status
        if status != SENDING and was == SENDING and self._on_halt is not None:
            self._on_halt(broadcast_id)
        if len(self._status) > self.MAX_ENTRIES:
            self._status = {k: v for k, v in self._status.items() if k in self._held}
            kept = {k: v for k, v in self._generation.items() if k in self._held}
            self._generation = Counter(kept)

    # -- what this dispatcher holds ---------------------------------------------------
    def hold(self, broadcast_ids: Iterable[int]) -> None:
        self._held.update(broadcast_ids)

    def unhold(self, broadcast_ids: Iterable[int]) -> None:
        self._held.subtract(broadcast_ids)
        self._held = +self._held  # drop the zeros

    @property
    def held(self) -> set[int]:
        return set(self._held)

    # -- re-reads -----------------------------------------------------------------------
    async def reread(self, broadcast_ids: Iterable[int]) -> None:
        """Read the status of ``broadcast_ids`` and keep what no signal overtook."""
        ids = sorted(set(broadcast_ids))
        if not ids:
            return
        before = {i: self._generation[i] for i in ids}
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(broadcasts.c.id, broadcasts.c.status).where(broadcasts.c.id.in_(ids))
                )
            ).all()
        self.rereads += 1
        for row in rows:
            if self._generation[row.id] == before[row.id] and not self._expecting(row.id):
                self._set(int(row.id), str(row.status))

    async def confirm(self, broadcast_ids: Iterable[int]) -> None:
        """A claim just found these broadcasts sending: re-read those the cache says are
        not (a resume whose signal was lost, or a claim that raced a pause)."""
        doubtful = [i for i in set(broadcast_ids) if self.halted(i)]
        if doubtful:
            await self.reread(doubtful)

    async def run(self, stop: asyncio.Event) -> None:
        """Re-read the held broadcasts every ``refresh_seconds`` until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_seconds)
            if stop.is_set():
                return
            try:
                await self.reread(self._held)
            except Exception:  # the database is away: the signals still arrive
                log.warning("re-reading broadcast states failed; retrying", exc_info=True)
