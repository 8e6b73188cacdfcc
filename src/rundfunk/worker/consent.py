"""The last-moment consent check before a broadcast send, batched.

A claimed chunk can wait seconds on the rate limiter; whoever says STOP in that time
must not get the broadcast. Every send asks just before it goes out; the questions
of all sends that arrive together share one query (``GroupBatcher``).
"""

from __future__ import annotations

from rundfunk.db.session import Database
from rundfunk.services.batching import GroupBatcher
from rundfunk.services.consent_check import still_wanted
from rundfunk.services.dispatch import SendJob


class ConsentGate:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._batcher: GroupBatcher[SendJob, bool] = GroupBatcher(self._check)

    async def allows(self, job: SendJob) -> bool:
        """True when the job's contact still wants it (always True for non-broadcasts)."""
        if job.table != "deliveries":
            return True
        return await self._batcher.submit(job)

    async def _check(self, jobs: list[SendJob]) -> list[bool]:
        wanted = await still_wanted(self._db, jobs)
        return [job.id in wanted for job in jobs]
