"""The last-moment consent check before a broadcast send, batched.

A claimed chunk can wait seconds on the rate limiter; whoever says STOP in that time
must not get the broadcast. Every send asks just before it goes out; the questions
of all sends that arrive within a couple of milliseconds share one query, so the
check costs one read per group, not one per message.
"""

from __future__ import annotations

import asyncio

from rundfunk.db.session import Database
from rundfunk.services.dispatch import SendJob, still_wanted

_GROUP_WINDOW_S = 0.002


class ConsentGate:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[tuple[SendJob, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def allows(self, job: SendJob) -> bool:
        """True when the job's contact still wants it (always True for non-broadcasts)."""
        if job.table != "deliveries":
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(_GROUP_WINDOW_S)
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                wanted = await still_wanted(self._db, [job for job, _ in batch])
            except Exception as exc:  # unknown consent: the sends must not go out
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for job, future in batch:
                if not future.done():
                    future.set_result(job.id in wanted)
