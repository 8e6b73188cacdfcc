"""Per-sender rate limiting: the protocol the dispatcher uses, and the in-process limiter.

Each key (a channel: one WhatsApp number, one bot) keeps a theoretical arrival time;
a send reserves the next slot and sleeps until it. ``SenderLimiter`` is all the
dispatcher needs, so where that time is kept is the runtime's choice: in this
process (``InProcessLimiter``, embedded mode on SQLite), in Redis
(``redis_limiter``) or in a PostgreSQL row (``postgres_limiter``) when several
worker processes share one sender's limit. In process, reservation is synchronous,
so concurrent tasks on one event loop never race for a slot. Every wait is observed
in ``rundfunk_limiter_wait_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Protocol

from rundfunk.core.ratelimit import Rate, reserve, slow_down
from rundfunk.metrics import LIMITER_WAIT_SECONDS

# A burst of rejections is one signal: halve at most once per this many seconds, and
# never below this share of the configured rate (every limiter keeps these rules).
CUT_GAP_SECONDS = 5.0
FLOOR_SHARE = 1 / 8


def floor_rate(rate: Rate) -> float:
    """The lowest rate repeated slow-downs may reach for a sender configured at ``rate``."""
    return max(1.0, rate.per_second * FLOOR_SHARE)


class LimiterUnavailable(RuntimeError):
    """The store a shared limiter keeps its slots in cannot be reached.

    Sending without the limit would break the platform's, so this stops the worker
    from starting (and fails a send that needs a slot) instead.
    """


class SenderLimiter(Protocol):
    """What the dispatcher needs from a per-sender limiter."""

    async def start(self) -> None:
        """Connect and check the store is reachable; raises ``LimiterUnavailable``."""

    async def acquire(self, key: int, rate: Rate) -> None:
        """Wait until ``key`` may send once more at ``rate`` (the channel's configured rate)."""

    def slow_down(self, key: int, rate: Rate, *, seconds: float = 60.0) -> None:
        """The platform said ``key`` sends too fast: halve its rate for ``seconds``.

        Called from a failing send, so it returns at once and never raises: a shared
        store is updated in the background, and a lost update only waits for the next
        rejection to try again.
        """

    def rerate(self, key: int, rate: Rate) -> None:
        """``key``'s configured rate is now ``rate``: sends of this process waiting for a
        slot reserved at the old rate reserve again at the new one (at 10/s, 64 waiting
        sends hold 6.4 s of slots). The store re-spaces the slots still reserved by
        every process when it first sees the new rate."""

    async def close(self) -> None:
        """Finish background updates and let the store's connections go."""


class InProcessLimiter:
    CUT_GAP_SECONDS = CUT_GAP_SECONDS
    FLOOR_SHARE = FLOOR_SHARE

    def __init__(self) -> None:
        self._tat: dict[int, float] = {}
        # key -> (slowed rate, slowed until, last cut)
        self._slowed: dict[int, tuple[Rate, float, float]] = {}
        self._configured: dict[int, Rate] = {}  # the rate each key last reserved at
        self.rerates = Rerates()

    def reserve(self, key: int, rate: Rate) -> float:
        """Reserve a slot now; returns how long to wait before sending."""
        now = time.monotonic()
        before = self._configured.get(key)
        if before is not None and before != rate:
            # A new configured rate: the slots still reserved are spaced at it, and a
            # slow-down derived from the old one is forgotten.
            ahead = self._tat.get(key, now) - now
            if ahead > 0:
                self._tat[key] = now + ahead * before.per_second / rate.per_second
            self._slowed.pop(key, None)
        self._configured[key] = rate
        slowed = self._slowed.get(key)
        if slowed is not None:
            if slowed[1] > now:
                rate = slowed[0]
            else:
                del self._slowed[key]
        tat, wait = reserve(self._tat.get(key, now), now, rate)
        self._tat[key] = tat
        return wait

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to let go."""

    async def acquire(self, key: int, rate: Rate) -> None:
        while True:
            wait = self.reserve(key, rate)
            LIMITER_WAIT_SECONDS.observe(wait)
            if wait <= 0:
                return
            with self.rerates.waiting(key) as told:
                await told.sleep(wait)
                if told.rate is None:
                    return
                rate = told.rate

    def rerate(self, key: int, rate: Rate) -> None:
        self.rerates.wake(key, rate)

    def slow_down(self, key: int, rate: Rate, *, seconds: float = 60.0) -> None:
        """The platform said we are too fast: halve the rate for a while.

        Many sends in flight fail together when the limit is hit; counting each would
        halve the rate a hundred times. So one halving per ``CUT_GAP_SECONDS`` (later
        rejections only extend it), and never below ``FLOOR_SHARE`` of ``rate``.
        """
        now = time.monotonic()
        current, _, last_cut = self._slowed.get(key, (rate, 0.0, -self.CUT_GAP_SECONDS))
        if now - last_cut >= self.CUT_GAP_SECONDS:
            current, last_cut = slow_down(current, floor=floor_rate(rate)), now
        self._slowed[key] = (current, now + seconds, last_cut)


class _Told:
    """One waiting send's view of ``Rerates``: the new rate if it was woken for one."""

    def __init__(self, task: asyncio.Task[object]) -> None:
        self.task = task
        self.rate: Rate | None = None
        self.due: float | None = None  # ``sleep_until``: the slot's time

    async def sleep(self, seconds: float) -> None:
        """Sleep, or return early with ``rate`` set when ``Rerates.wake`` names this key."""
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self._woken()

    async def sleep_until(
        self, slot: asyncio.Future[float], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Wait for ``slot`` (a loop time) and then until it; early as ``sleep``."""
        try:
            self.due = await slot
            wait = self.due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        except asyncio.CancelledError:
            slot.cancel()  # a slot granted meanwhile goes back as a spare
            self._woken()

    def _woken(self) -> None:
        if self.rate is None:
            raise asyncio.CancelledError
        self.task.uncancel()
        if self.task.cancelling():  # cancelled for another reason as well
            raise asyncio.CancelledError


class Rerates:
    """The sends of this process waiting for a slot, by key, to wake on a rate change."""

    def __init__(self) -> None:
        self._waiting: dict[int, set[_Told]] = {}

    @contextlib.contextmanager
    def waiting(self, key: int) -> Iterator[_Told]:
        task = asyncio.current_task()
        assert task is not None
        told = _Told(task)
        waiters = self._waiting.setdefault(key, set())
        waiters.add(told)
        try:
            yield told
        finally:
            waiters.discard(told)
            if not waiters and self._waiting.get(key) is waiters:
                del self._waiting[key]

    def wake(self, key: int, rate: Rate) -> None:
        for told in list(self._waiting.get(key, ())):
            if told.rate is None:
                told.rate = rate
                told.task.cancel()


class PairGuard:
    """At most a few messages per recipient in a short time (WhatsApp's pair rate).

    One GCRA per (channel, recipient). Unlike the sender limiter it never makes a send
    wait: ``check`` either reserves a slot now (returns 0) or says how long until one
    frees up, reserving nothing, and the dispatcher puts the message back for then.
    """

    PRUNE_EVERY = 10_000

    def __init__(self) -> None:
        self._tat: dict[tuple[int, str], float] = {}
        self._checks = 0

    def check(self, channel_id: int, address: str, rate: Rate | None) -> float:
        if rate is None:
            return 0.0
        now = time.monotonic()
        key = (channel_id, address)
        tat, wait = reserve(self._tat.get(key, now), now, rate)
        if wait > 0:
            return wait
        self._tat[key] = tat
        self._checks += 1
        if self._checks % self.PRUNE_EVERY == 0:
            # Recipients whose slots have all refilled carry no state worth keeping.
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return 0.0
