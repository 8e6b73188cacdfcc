"""The dispatcher: claim a chunk, render, wait for the limiter, send, record.

One loop claims chunks of due work; each send runs as its own task (bounded by a
semaphore), and a chunk's outcomes are recorded in one transaction when all its
sends have finished (kept and written again when the database is down: ``kept_writes``;
no new claim meanwhile). The next chunk is claimed while the current one is sending,
so the platform never waits on our bookkeeping.

Stopping (SIGTERM, SIGINT): sends already handed to the channel finish and are
recorded; everything claimed but not yet sent (waiting for a slot, the limiter or
the consent check) goes back to the queue at once (``dispatch.release``), so other
workers take it over without waiting for a lease to run out.

Pause and Cancel: before each send (and before it waits for a slot or the limiter)
the dispatcher looks up the broadcast in its state cache (``broadcast_states``: a
dict kept current by the broadcast signals, no query per send). A send of a paused
or cancelled broadcast is not made; sends waiting on the limiter for it stop waiting
the moment the signal arrives; and all of them are released (``dispatch.release``:
back to the queue, or skipped for a cancelled broadcast).

Outages: a send that cannot get past the shared limiter (Redis down) or the last
checks (the database down) before its platform request is released without counting
an attempt, and claiming pauses with backoff (``outages``): one warning per outage.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from rundfunk.channels.base import Channel
from rundfunk.core import errors, personalize
from rundfunk.core.ratelimit import Rate
from rundfunk.db.broadcast_signals import parse_payload
from rundfunk.db.session import Database
from rundfunk.services import dispatch
from rundfunk.services.dispatch import SendJob, SendOutcome
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.services.registry import ChannelRegistry
from rundfunk.worker.broadcast_states import BroadcastStates
from rundfunk.worker.consent import ConsentGate
from rundfunk.worker.kept_writes import KeptWrites, record_kept
from rundfunk.worker.limiter import InProcessLimiter, PairGuard, SenderLimiter
from rundfunk.worker.outages import OutagePause, is_outage

log = logging.getLogger(__name__)

# A send that goes out longer than this after its chunk was claimed first asks again
# whether the person still consents and whether the row is still this claim's (its
# lease may have run out). Sooner, the claim's own check stands: asking for every send
# halved the throughput (benchmarks), for a window of under a second.
RECHECK_AFTER_S = 1.0


class Dispatcher:
    def __init__(
        self,
        db: Database,
        registry: ChannelRegistry,
        *,
        policy: RetryPolicy,
        chunk_size: int = 500,
        concurrency: int = 64,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.5,
        limiter: SenderLimiter | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.policy = policy
        self.chunk_size = chunk_size
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.limiter: SenderLimiter = limiter or InProcessLimiter()
        self.pairs = PairGuard()
        self.consent = ConsentGate(db)
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._chunks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._limited: set[asyncio.Task[object]] = set()  # sends waiting on the limiter
        # ... by broadcast: a pause stops their wait at once (``_halt``).
        self._limited_by: dict[int, set[asyncio.Task[object]]] = {}
        self._halting: set[asyncio.Task[object]] = set()  # ... and those it cancelled
        # Is each broadcast we send still sending? Told in process right after a commit
        # that paused or cancelled one (``Database.write``), by NOTIFY from other processes
        # (``on_broadcast_notify``), and re-read while we hold its sends.
        self.states = BroadcastStates(db, on_halt=self._halt)
        db.broadcast_signals.on_moved(self.states.moved)
        db.broadcast_signals.on_expected(self.states.expected)
        self.sent = 0
        self.released = 0
        # Outcomes (and releases) whose write failed: kept and written again (kept_writes).
        self.kept = KeptWrites()
        self.halted = 0  # claimed sends not made because their broadcast stopped
        # Redis or the database unreachable before a send: released, claiming paused.
        self.outage = OutagePause()

    def wake(self) -> None:
        self._wake.set()

    def on_broadcast_notify(self, payload: str) -> None:
        """A ``NOTIFY rundfunk_broadcasts`` from any process (``worker/wakeup.py``)."""
        move = parse_payload(payload)
        if move is not None:
            self.states.moved(*move)

    def _halt(self, broadcast_id: int) -> None:
        """``broadcast_id`` stopped sending: its sends waiting on the limiter give up now."""
        for task in list(self._limited_by.get(broadcast_id, ())):
            self._halting.add(task)
            task.cancel()

    def _unhold(self, held: list[int], _task: asyncio.Task[None]) -> None:
        self.states.unhold(held)

    def _stopped(self, job: SendJob) -> bool:
        """True when ``job`` must not be sent now: its broadcast is paused or cancelled."""
        return self.states.halted(job.broadcast_id)

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        stopping = asyncio.create_task(stop.wait())
        rereading = asyncio.create_task(self.states.run(stop))
        try:
            await self._loop(stop, stopping)
        finally:
            stopping.cancel()
            rereading.cancel()
            # Sends waiting on the limiter give their jobs back instead of waiting on.
            for task in list(self._limited):
                task.cancel()
            if self._chunks:  # finish in-flight sends before leaving
                await asyncio.wait(self._chunks)

    async def _loop(self, stop: asyncio.Event, stopping: asyncio.Task[bool]) -> None:
        while not stop.is_set():
            if self.kept.kept:  # outcomes wait for the database: claim nothing new meanwhile
                caught_up = asyncio.create_task(self.kept.caught_up())
                await asyncio.wait({caught_up, stopping}, return_when=asyncio.FIRST_COMPLETED)
                caught_up.cancel()
                continue
            if (pause := self.outage.pause_left()) > 0:  # Redis or the database is down
                await asyncio.wait({stopping}, timeout=pause)
                continue
            try:
                jobs = await dispatch.claim(
                    self.db,
                    limit=self.chunk_size,
                    lease_seconds=self.lease_seconds,
                    # A pause of this process still committing: what it released stays.
                    skip_broadcasts=self.states.expecting(),
                )
            except Exception:
                log.exception("claiming work failed; retrying")
                jobs = []
            if jobs:
                held = [job.broadcast_id for job in jobs if job.broadcast_id is not None]
                try:  # the claim saw them sending: a cache that says otherwise asks again
                    await self.states.confirm(held)
                except Exception:
                    log.warning("re-reading broadcast states failed", exc_info=True)
                self.states.hold(held)
                task = asyncio.create_task(self._chunk(jobs))
                self._chunks.add(task)
                task.add_done_callback(self._chunks.discard)
                task.add_done_callback(functools.partial(self._unhold, held))
                # Keep at most two chunks in flight: one sending, one being recorded.
                while len(self._chunks) >= 2 and not stop.is_set():
                    await asyncio.wait(
                        {*self._chunks, stopping}, return_when=asyncio.FIRST_COMPLETED
                    )
                continue
            self._wake.clear()
            waiter = asyncio.create_task(self._wake.wait())
            await asyncio.wait(
                {waiter, stopping}, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()

    async def _chunk(self, jobs: list[SendJob]) -> None:
        claimed = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(self._send(job, claimed) for job in jobs))
        outcomes = [o for o in results if not o.released]
        unsent = [o.job for o in results if o.released]
        if unsent:  # (given up or refused: their leases run out, the scheduler requeues them)
            try:
                released = await self.kept.write(
                    f"releasing {len(unsent)} unsent jobs",
                    lambda: dispatch.release(self.db, unsent),
                    self._stop,
                )
            except Exception:
                log.exception("releasing %d unsent jobs failed", len(unsent))
                released = 0
            self.released += released or 0
        if not outcomes:
            return
        # The database down or restarting: kept, and written once it is back.
        result = await record_kept(
            self.kept, self.db, outcomes, policy=self.policy, stop=self._stop
        )
        if result is None:  # given up on stop: the status callbacks and settle time decide
            return
        self.sent += sum(1 for o in outcomes if o.error is None and not o.skipped)
        for channel_id in result.disabled_channels:
            self.registry.forget(channel_id)
        for broadcast_id in result.paused_broadcasts:
            log.warning("broadcast %s paused", broadcast_id)

    async def _send(self, job: SendJob, claimed: float) -> SendOutcome:
        try:
            text = job.text
            template = bool(job.content and job.content.get("template"))
            if job.table == "deliveries" and text is not None and not template:
                text = personalize.render(text, contact=job.contact, workspace=job.workspace)
            message = job.message(None if template else text)
        except (personalize.PersonalizationError, ValueError) as exc:
            return SendOutcome(
                job, error=errors.PermanentError(f"personalization: {exc}", code="render")
            )
        if self._stop.is_set() or self._stopped(job):
            return self._release(job)
        async with self._slots:
            if self._stopped(job):  # paused while this send waited for a slot
                return self._release(job)
            sending = False  # until the platform request starts: an outage defers the send
            try:
                rate = await self.registry.rate(job.channel_id)
                wait = self.pairs.check(
                    job.channel_id, message.address, await self.registry.pair_rate(job.channel_id)
                )
                if wait > 0:
                    return SendOutcome(
                        job,
                        defer_seconds=wait,
                        defer_reason=f"pair rate: this person got a message moments ago; "
                        f"next in {wait:.1f}s",
                    )
                if not await self._acquire(job, rate):
                    return self._release(job)
                # Only now: a channel that changed while this send waited is built anew.
                channel: Channel = await self.registry.get(job.channel_id)
                # The claim checked consent; ask again only for a send that waited since.
                held = asyncio.get_running_loop().time() - claimed
                if held > RECHECK_AFTER_S and not await self.consent.allows(job):
                    return SendOutcome(job, skipped=True)
                if self._stop.is_set() or self._stopped(job):
                    return self._release(job)
                # Nothing awaits between the check above and the send's start: a pause
                # signalled before this line stops it.
                self.outage.sent(claimed)  # (no await: the check above still stands)
                sending = True
                result = await channel.send(message)
            except errors.ChannelError as exc:
                if (
                    isinstance(exc, errors.RateLimitedError)
                    and exc.scope is errors.RateScope.SENDER
                ):
                    self.limiter.slow_down(job.channel_id, await self.registry.rate(job.channel_id))
                return SendOutcome(job, error=exc)
            except Exception as exc:
                if not sending and is_outage(exc):  # nothing went out: not an attempt
                    self.outage.deferred_send(job.callback_data, exc)
                    return SendOutcome(job, released=True)
                # A bug or an unexpected library error: retry later.
                log.exception("send of %s failed unexpectedly", job.callback_data)
                return SendOutcome(
                    job, error=errors.RetryableError(f"unexpected: {exc!r}", code="internal")
                )
        return SendOutcome(job, provider_message_id=result.provider_message_id)

    def _release(self, job: SendJob) -> SendOutcome:
        if self._stopped(job):
            self.halted += 1
        return SendOutcome(job, released=True)

    async def _acquire(self, job: SendJob, rate: Rate) -> bool:
        """Wait for the limiter; False when the dispatcher stopped or the job's broadcast
        was paused or cancelled meanwhile.

        The waiting send's task is cancelled by ``run`` on stop and by ``_halt`` on a
        pause (cheaper than racing every wait against an event: this is the hot path).
        """
        if self._stop.is_set() or self._stopped(job):
            return False
        task = asyncio.current_task()
        assert task is not None
        self._limited.add(task)
        waiting = None
        if job.broadcast_id is not None:
            waiting = self._limited_by.setdefault(job.broadcast_id, set())
            waiting.add(task)
        try:
            await self.limiter.acquire(job.channel_id, rate)
        except asyncio.CancelledError:
            if not (self._stop.is_set() or task in self._halting):
                raise
            task.uncancel()
            return False
        finally:
            self._limited.discard(task)
            self._halting.discard(task)
            if waiting is not None:
                waiting.discard(task)
                if not waiting and self._limited_by.get(job.broadcast_id or 0) is waiting:
                    del self._limited_by[job.broadcast_id or 0]
        return True
