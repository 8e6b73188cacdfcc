"""What every limiter kept outside the process does alike: one round trip for many slots.

A limiter shared by several worker processes keeps each sender's theoretical arrival
time in a store (Redis, a PostgreSQL row), so every reservation is a round trip. With
64 send tasks per process asking at once, one round trip per slot would queue them
behind each other's network latency. Instead, the tasks of one process that ask for
the same sender while a round trip is out are coalesced: the next round trip reserves
one contiguous run of slots for all of them (``Grant``), and each task sleeps until
its own. The run also holds ``HORIZON`` (20 ms) of this process's recent demand for
that sender as spare slots, which the next tasks to ask take without a round trip:
at 500 slots/s per process that is one round trip per ~10 sends instead of one per
send (measured here: ~300 µs of CPU per Redis send became ~120, ~80 in process). The
slots of a run are spaced exactly as single reservations would be, so accuracy is
that of one slot per round trip; a spare nobody claims in time goes unused (``unused``:
at most 20 ms of the sender's share when demand stops — sending less, never more).

The store's clock decides when a slot is (``Grant``), and ``StoreClock`` maps it onto
this process's: the smallest recent difference between a reply's arrival here and the
store's time in it (a round trip's own delay only ever adds to it). So a reply that
was read late (the process stalled) does not shift its slots later; a task that wakes
up too late for its slot gives it up (``acquire``). So that a slow reply is not
"too late" itself, a sender found idle gets its first slot a little ahead of the
store's now (``lead``: twice the smoothed round trip), never earlier than the reply
can arrive; the spacing between slots is untouched.

Slow-downs are rare and must not hold up (or fail) the send that saw the rejection,
so they are written in the background; ``close`` waits for them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field

from rundfunk.core.ratelimit import Rate
from rundfunk.metrics import LIMITER_WAIT_SECONDS
from rundfunk.worker.limiter import LimiterUnavailable, Rerates

log = logging.getLogger(__name__)

# How late a woken task may still use its slot: at 1,000/s a stall this long lets at
# most 5 extra sends into a 100 ms window (and waking up takes ~1 ms on an idle loop).
LATE_SECONDS = 0.005


@dataclass(frozen=True)
class Grant:
    """A run of consecutive slots, as the store reserved them on its own clock.

    ``now`` is the store's time of the reservation; the first slot lies ``start``
    seconds after it, slot ``i`` ``i`` intervals later, and each may go ``tolerance``
    (the burst) early.
    """

    now: float
    start: float
    interval: float
    tolerance: float

    def due(self, index: int) -> float:
        """When slot ``index`` may send, on the store's clock."""
        return self.now + max(0.0, self.start + index * self.interval - self.tolerance)


class StoreClock:
    """This process's loop time for a time on the store's clock (an offset, re-learned).

    Each reply gives ``arrival - store time`` = offset + the reply's delay; the least
    of the last one to two ``WINDOW`` s is the offset plus the smallest delay (well
    under a millisecond on a LAN). Forgetting older samples follows clock drift.
    """

    WINDOW = 5.0

    def __init__(self) -> None:
        self._current = math.inf
        self._previous = math.inf
        self._since = -math.inf

    def observe(self, store_now: float, local_now: float) -> None:
        if local_now - self._since > self.WINDOW:
            self._previous, self._current, self._since = self._current, math.inf, local_now
        self._current = min(self._current, local_now - store_now)

    def local(self, store_time: float) -> float:
        return store_time + min(self._current, self._previous)


@dataclass
class _Sender:
    """One sender as this process sees it: who waits, which reserved slots are spare."""

    since: float  # when ``claims`` started counting
    claims: int = 0  # slots asked for since then
    demand: float = 0.0  # slots per second this process asked for, lately
    busy: bool = False  # a task is doing round trips for the waiters
    waiting: list[asyncio.Future[float]] = field(default_factory=list)
    spare: deque[float] = field(default_factory=deque)  # reserved, unclaimed: when due


class StoreLimiter(ABC):
    """A ``SenderLimiter`` whose slots live in a store; subclasses do the round trips."""

    MAX_BATCH = 128  # slots per round trip at most (a bound on one call's cost)
    MAX_LEAD = 0.05  # seconds: the most an idle sender's first slot is put ahead
    HORIZON = 0.02  # seconds of this process's recent demand reserved ahead per round trip
    DEMAND_PERIOD = 0.05  # seconds over which that demand is counted

    def __init__(self, *, cut_gap_seconds: float, late_seconds: float) -> None:
        self.cut_gap_seconds = cut_gap_seconds  # one halving per this many seconds at most
        self.late_seconds = late_seconds  # a slot woken up later than this is given up
        self.forfeited = 0  # slots given up so (see ``acquire``)
        self.unused = 0  # slots reserved ahead that nobody claimed in time
        self.clock = StoreClock()
        self.round_trip = 0.001  # seconds, smoothed
        self._senders: dict[tuple[int, Rate], _Sender] = {}
        self._reserving: set[asyncio.Task[None]] = set()
        self._storing: set[asyncio.Task[None]] = set()  # slow-downs being written
        self.rerates = Rerates()

    @abstractmethod
    async def _reserve(self, key: int, rate: Rate, count: int, lead: float) -> Grant:
        """Reserve ``count`` consecutive slots for ``key``, the first not before ``lead``
        seconds after the store's now; raise ``LimiterUnavailable``."""

    @abstractmethod
    async def _slow_down(self, key: int, rate: Rate, seconds: float) -> None:
        """Store a slow-down of ``key`` (the rules of ``InProcessLimiter.slow_down``)."""

    @abstractmethod
    async def _close_store(self) -> None:
        """Let the store's connections go."""

    async def acquire(self, key: int, rate: Rate) -> None:
        """Wait for a slot of ``key``; one that this process woke up to late is given up.

        A process that stalls (a busy machine, a long garbage collection) would wake
        every task whose slot passed meanwhile at once, and they would all send in the
        same instant: a burst over the platform's limit, although each slot was
        reserved correctly. So a task that wakes more than ``late_seconds`` after its
        slot lets the slot go unused and reserves a new one: a stall costs sends (the
        mean falls a little) instead of bunching them.
        """
        loop = asyncio.get_running_loop()
        waited = 0.0
        while True:
            with self.rerates.waiting(key) as told:
                started = loop.time()
                await told.sleep_until(self._slot(key, rate), loop)
                waited += loop.time() - started
                if told.rate is not None:  # the channel's rate changed: reserve again
                    rate = told.rate
                    continue
            if told.due is not None and loop.time() - told.due <= self.late_seconds:
                break
            self.forfeited += 1
        LIMITER_WAIT_SECONDS.observe(waited)

    def rerate(self, key: int, rate: Rate) -> None:
        self.rerates.wake(key, rate)

    def _slot(self, key: int, rate: Rate) -> asyncio.Future[float]:
        """When one slot of ``key`` is due (loop time): a spare one, or the next round trip's."""
        loop = asyncio.get_running_loop()
        sender = self._senders.setdefault((key, rate), _Sender(since=loop.time()))
        sender.claims += 1
        waiter: asyncio.Future[float] = loop.create_future()
        self._drop_stale(sender, loop.time())
        if sender.spare and not sender.waiting:
            waiter.set_result(sender.spare.popleft())
            return waiter
        sender.waiting.append(waiter)
        if not sender.busy:
            sender.busy = True
            self._spawn(self._reserve_for(key, rate, sender), self._reserving)
        return waiter

    def _drop_stale(self, sender: _Sender, now: float) -> None:
        while sender.spare and sender.spare[0] < now - self.late_seconds:
            sender.spare.popleft()  # nobody came for it in time: it goes unused
            self.unused += 1

    async def _reserve_for(self, key: int, rate: Rate, sender: _Sender) -> None:
        """Round trips for one sender until nobody of this process waits for it."""
        loop = asyncio.get_running_loop()
        queue = sender.waiting
        try:
            while queue:
                now = loop.time()
                self._drop_stale(sender, now)
                while queue and sender.spare:
                    waiter = queue.pop(0)
                    if not waiter.done():
                        waiter.set_result(sender.spare.popleft())
                batch = [w for w in queue[: self.MAX_BATCH] if not w.done()]
                del queue[: self.MAX_BATCH]
                if not batch:  # served from spares, or all of them gave up meanwhile
                    continue
                if now - sender.since >= self.DEMAND_PERIOD:
                    sender.demand = sender.claims / (now - sender.since)
                    sender.claims, sender.since = 0, now
                ahead = min(self.MAX_BATCH - len(batch), int(sender.demand * self.HORIZON))
                try:
                    lead = min(self.MAX_LEAD, 2 * self.round_trip)
                    grant = await self._reserve(key, rate, len(batch) + ahead, lead)
                except asyncio.CancelledError:
                    _fail(batch, LimiterUnavailable("the rate limiter was closed"))
                    raise
                except Exception as exc:
                    _fail(
                        batch,
                        exc
                        if isinstance(exc, LimiterUnavailable)
                        else LimiterUnavailable(f"the rate limiter failed: {exc!r}"),
                    )
                    continue
                arrived = loop.time()
                self.round_trip += 0.2 * (arrived - now - self.round_trip)
                self.clock.observe(grant.now, arrived)
                slots = [self.clock.local(grant.due(i)) for i in range(len(batch) + ahead)]
                for waiter, due in zip(batch, slots, strict=False):
                    if not waiter.done():
                        waiter.set_result(due)
                    else:  # cancelled during the round trip: its slot is spare now
                        sender.spare.append(due)
                sender.spare.extend(slots[len(batch) :])
        finally:
            # Reached with the queue empty (no await since the check) or on cancel.
            _fail(queue, LimiterUnavailable("the rate limiter was closed"))
            queue.clear()
            sender.busy = False

    def slow_down(self, key: int, rate: Rate, *, seconds: float = 60.0) -> None:
        self._spawn(self._slow_down_logged(key, rate, seconds), self._storing)

    async def _slow_down_logged(self, key: int, rate: Rate, seconds: float) -> None:
        try:
            await self._slow_down(key, rate, seconds)
        except Exception:  # the next rejection tries again
            log.exception("storing a slow-down of sender %s failed", key)

    async def settle(self) -> None:
        """Wait until every slow-down asked for so far is stored."""
        while self._storing:
            await asyncio.wait(set(self._storing))

    async def close(self) -> None:
        for task in list(self._reserving):  # their waiters get LimiterUnavailable
            task.cancel()
        if self._reserving:
            await asyncio.wait(set(self._reserving))
        await self.settle()
        await self._close_store()

    @staticmethod
    def _spawn(work: Coroutine[object, object, None], into: set[asyncio.Task[None]]) -> None:
        task = asyncio.create_task(work)
        into.add(task)
        task.add_done_callback(into.discard)


def _fail(waiters: list[asyncio.Future[float]], error: Exception) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)
