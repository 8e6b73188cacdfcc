"""Writes a live worker must not lose: kept, and tried again until the database takes them.

A chunk's outcomes say what the platform accepted (each message id). When their write
fails because the database is down or restarting, forgetting them leaves the rows
``sending`` until their lease and the settle time have run out (60 + 120 s by default),
and then sends them again: their status webhooks hit the web nodes while the database
was down, so no callback settled them. A 3 s PostgreSQL crash in a 3,000-recipient
broadcast at 300/s so sent 47 people two copies, and the broadcast finished 174 s after
the database was back (issue 10). So the dispatcher hands such writes to
``KeptWrites.write``: on failure the write is kept in memory and tried again with
backoff (0.05 s doubling to 0.5 s: written within half a second of the database's
return, long before any settle time), and while one is kept the dispatcher claims
nothing new (``caught_up``). Only a dead worker's sends are left to the status
callbacks and the settle time.

Only an outage is waited out (``db.reachability``). A write the database refuses for
what it says (a value a column cannot hold, a bug) fails the same way every time:
after ``refused_tries`` it raises, and ``record_kept`` then writes the chunk's outcomes
one by one, so one bad outcome costs only its own row (left to its callback and the
settle time) and the worker goes on.

Writing late is safe: outcomes are written only to rows still in flight under the
claim they belong to (``services.outcomes``), so a row that a status webhook settled,
the settle time requeued or another claim took keeps its newer state. A commit whose
answer was lost with the connection may be written twice; the second finds its rows
moved on already.

Stopping: kept writes are tried ``stop_grace`` seconds more (all of them together),
then given up with an error in the log; their rows are left to the callbacks and the
settle time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from rundfunk.db.reachability import unreachable
from rundfunk.db.session import Database
from rundfunk.services.dispatch import SendOutcome
from rundfunk.services.outcomes import RecordResult, RetryPolicy, record

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_RETRY_S = 0.05
MAX_RETRY_S = 0.5
STOP_GRACE_S = 10.0
REFUSED_TRIES = 3  # a deadlock or a serialization failure gets another go
LOG_EVERY = 20  # tries between two "still failing" lines (about ten seconds)


class KeptWrites:
    """The writes of one dispatcher that wait for the database; counters for the logs."""

    def __init__(
        self,
        *,
        first_retry: float = FIRST_RETRY_S,
        max_retry: float = MAX_RETRY_S,
        stop_grace: float = STOP_GRACE_S,
        refused_tries: int = REFUSED_TRIES,
        is_outage: Callable[[BaseException], bool] = unreachable,
    ) -> None:
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.stop_grace = stop_grace
        self.refused_tries = refused_tries
        self.is_outage = is_outage
        self.kept = 0  # writes waiting for the database now
        self.written_late = 0  # writes that failed at first and went through later
        self.given_up = 0  # writes abandoned on stop
        self.refused = 0  # writes the database refused (not an outage)
        self._caught_up = asyncio.Event()
        self._caught_up.set()
        self._give_up_at: float | None = None  # loop time, once stopping

    async def caught_up(self) -> None:
        """Return once no write is kept (at once when none is)."""
        await self._caught_up.wait()

    async def write(
        self, what: str, attempt: Callable[[], Awaitable[T]], stop: asyncio.Event
    ) -> T | None:
        """``attempt()``'s result once it succeeds; None when ``stop`` came and the write
        still failed ``stop_grace`` seconds later. Raises the error of a write the
        database refused ``refused_tries`` times (not an outage). ``what`` names it in
        the log."""
        try:
            return await attempt()
        except Exception as exc:
            refusals = 0 if self.is_outage(exc) else 1
            if refusals >= self.refused_tries:
                self.refused += 1
                raise
            log.exception("%s failed; kept, and tried again until the database takes it", what)
        self.kept += 1
        self._caught_up.clear()
        loop = asyncio.get_running_loop()
        since = loop.time()
        delay, tries = self.first_retry, 1
        try:
            while True:
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.max_retry)
                tries += 1
                try:
                    result = await attempt()
                except Exception as exc:
                    if not self.is_outage(exc):
                        refusals += 1
                        if refusals >= self.refused_tries:
                            self.refused += 1
                            raise
                    if stop.is_set():
                        if self._give_up_at is None:  # one deadline for every kept write
                            self._give_up_at = loop.time() + self.stop_grace
                        if loop.time() >= self._give_up_at:
                            self.given_up += 1
                            log.error(
                                "stopping: %s given up after %d tries (%s); the status "
                                "callbacks and the settle time decide those rows",
                                what,
                                tries,
                                exc,
                            )
                            return None
                    if tries % LOG_EVERY == 0:
                        log.warning(
                            "%s still failing after %d tries in %.0f s: %s",
                            what,
                            tries,
                            loop.time() - since,
                            exc,
                        )
                    continue
                self.written_late += 1
                log.warning(
                    "%s went through after %.1f s (%d tries)", what, loop.time() - since, tries
                )
                return result
        finally:
            self.kept -= 1
            if not self.kept:
                self._caught_up.set()


async def record_kept(
    kept: KeptWrites,
    db: Database,
    outcomes: Sequence[SendOutcome],
    *,
    policy: RetryPolicy,
    stop: asyncio.Event,
) -> RecordResult | None:
    """Record a chunk's outcomes through ``kept``; when the database refuses the chunk,
    one by one (a bad outcome is logged and left to its callback and the settle time).
    None: given up on stop."""
    try:
        return await kept.write(
            f"recording {len(outcomes)} outcomes",
            lambda: record(db, outcomes, policy=policy),
            stop,
        )
    except Exception:
        log.exception("recording %d outcomes was refused; recording them one by one", len(outcomes))

    def alone(outcome: SendOutcome) -> Callable[[], Awaitable[RecordResult]]:
        return lambda: record(db, [outcome], policy=policy)

    merged = RecordResult()
    for outcome in outcomes:
        try:
            one = await kept.write(
                f"recording the outcome of {outcome.job.callback_data}", alone(outcome), stop
            )
        except Exception:
            log.exception(
                "the outcome of %s cannot be recorded; its status callback or the settle "
                "time decides it",
                outcome.job.callback_data,
            )
            continue
        if one is None:
            return None
        merged.paused_broadcasts.extend(one.paused_broadcasts)
        merged.disabled_channels.extend(one.disabled_channels)
    return merged
