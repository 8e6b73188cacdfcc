"""A send held up by our own infrastructure is deferred, not attempted.

Before a send reaches the platform, the dispatcher asks the shared rate limiter
(Redis, or a PostgreSQL row) for a slot and, for a send that waited, the database
whether the person still consents. When Redis or the database cannot be reached,
nothing went out: charging the send an attempt would fail queued deliveries for good
once an outage outlasts the retry policy (5 attempts 2 s apart: under half a minute),
and a traceback per send buries the one line that matters (about 400 per worker in
3 s). So such a send is released (``dispatch.release``: queued again, its attempt
not counted), and the dispatcher stops claiming for a while (``pause_left``),
doubling the pause while the outage lasts and ending it with the first send that
goes through. The log gets one warning when an outage starts, one every
``LOG_EVERY_S`` while it lasts, and one when sending works again.

Only errors raised before the platform request count (the dispatcher's choice); an
error from the platform's own connection is the channel's (``ChannelError``), and a
send that may have gone out is never released.
"""

from __future__ import annotations

import asyncio
import logging

import redis.exceptions

from rundfunk.db.reachability import unreachable
from rundfunk.worker.limiter import LimiterUnavailable

log = logging.getLogger(__name__)

FIRST_PAUSE_S = 0.2
MAX_PAUSE_S = 1.0  # a claim and a release a second per worker while down: cheap
LOG_EVERY_S = 30.0


def is_outage(error: BaseException) -> bool:
    """True when ``error`` says Redis or the database cannot be reached now."""
    if isinstance(
        error,
        LimiterUnavailable | redis.exceptions.ConnectionError | redis.exceptions.TimeoutError,
    ):
        return True
    return unreachable(error)


class OutagePause:
    """One dispatcher's view of an infrastructure outage: how long to hold off claiming."""

    def __init__(
        self, *, first_pause: float = FIRST_PAUSE_S, max_pause: float = MAX_PAUSE_S
    ) -> None:
        self.first_pause = first_pause
        self.max_pause = max_pause
        self.deferred = 0  # sends released because of an outage (no attempt counted)
        self.outages = 0  # outages seen (each: one warning when it starts)
        self._pause = first_pause
        self._until = 0.0  # loop time: claim nothing before it
        self._since: float | None = None  # when the current outage was first seen
        self._logged = 0.0
        self._deferred_since = 0

    @property
    def active(self) -> bool:
        return self._since is not None

    def pause_left(self) -> float:
        """Seconds to wait before the next claim (0: claim now)."""
        return max(0.0, self._until - asyncio.get_running_loop().time())

    def deferred_send(self, what: str, error: BaseException) -> None:
        """A send of ``what`` was not made because of ``error`` (an outage)."""
        now = asyncio.get_running_loop().time()
        self.deferred += 1
        self._deferred_since += 1
        if now >= self._until:  # the sends of one chunk fail together: one step each pause
            if self._since is not None:
                self._pause = min(2 * self._pause, self.max_pause)
            self._until = now + self._pause
        if self._since is None:
            self._since, self._logged = now, now
            self.outages += 1
            log.warning(
                "sending held: %s cannot be reached (%s, first at %s); claimed sends go back "
                "to the queue without counting an attempt, claiming pauses until it is back",
                _which(error),
                _first_line(error),
                what,
            )
        elif now - self._logged >= LOG_EVERY_S:
            self._logged = now
            log.warning(
                "sending still held after %.0f s (%d sends deferred): %s",
                now - self._since,
                self._deferred_since,
                _first_line(error),
            )

    def sent(self, claimed: float) -> None:
        """A send of a chunk claimed at ``claimed`` (loop time) got past the limiter and
        the checks: the outage (if any) is over, unless the chunk was claimed before it
        began (a slot reserved earlier says nothing about the store now)."""
        if self._since is None or claimed < self._since:
            return
        now = asyncio.get_running_loop().time()
        log.warning(
            "sending again after %.1f s; %d sends were deferred meanwhile",
            now - self._since,
            self._deferred_since,
        )
        self._since = None
        self._pause = self.first_pause
        self._deferred_since = 0


def _which(error: BaseException) -> str:
    if isinstance(error, LimiterUnavailable):
        return "the rate limiter's store"  # (its message names Redis or PostgreSQL)
    if isinstance(error, redis.exceptions.RedisError):
        return "Redis"
    return "the database"


def _first_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]
