"""Everything one Rundfunk process holds: database, secrets, channels, loops.

The worker part (dispatcher and scheduler) runs in ``rundfunk serve`` (embedded) or
``rundfunk worker`` (scaled). On SQLite one process owns the file's worker
(``ownership``); on PostgreSQL any number run side by side, woken by ``NOTIFY``
(``wakeup``), with one of them scheduling (``election``). Every sender's rate limit
is shared by all workers: kept in Redis when ``RUNDFUNK_REDIS_URL`` is set, else in
PostgreSQL, else (SQLite: one sending process) in process (``_limiter``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from rundfunk.config import Settings
from rundfunk.db.migrate import upgrade
from rundfunk.db.session import MIGRATION_LOCK, Database
from rundfunk.services import dispatch
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.services.registry import ChannelRegistry
from rundfunk.services.sandbox import DatabaseSandbox
from rundfunk.services.secrets import SecretBox
from rundfunk.worker.channel_watch import ChannelWatch
from rundfunk.worker.dispatcher import Dispatcher
from rundfunk.worker.election import SchedulerLock
from rundfunk.worker.limiter import InProcessLimiter, SenderLimiter
from rundfunk.worker.ownership import SqliteOwnership
from rundfunk.worker.postgres_limiter import PostgresLimiter
from rundfunk.worker.redis_limiter import RedisLimiter
from rundfunk.worker.scheduler import run_scheduler
from rundfunk.worker.wakeup import WorkListener

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.box = SecretBox(settings.resolved_secret_key)
        self.registry = ChannelRegistry(
            db,
            box=self.box,
            sandbox=DatabaseSandbox(db),
            whatsapp_api_base_url=settings.whatsapp_api_base_url,
        )
        self.limiter = _limiter(settings, db)
        self.dispatcher = Dispatcher(
            db,
            self.registry,
            policy=RetryPolicy(
                max_attempts=settings.max_attempts,
                base_seconds=settings.retry_base_seconds,
                cap_seconds=settings.retry_cap_seconds,
                pause_error_share=settings.pause_error_share,
                pause_min_sample=settings.pause_min_sample,
            ),
            chunk_size=settings.chunk_size,
            concurrency=settings.send_concurrency,
            lease_seconds=settings.lease_seconds,
            poll_seconds=settings.poll_seconds,
            limiter=self.limiter,
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.ownership = SqliteOwnership(db.url) if db.is_sqlite else None
        # Channel changes from any process: signals, and a version check as the net.
        self.channel_watch = ChannelWatch(
            db,
            self.registry,
            every=settings.channel_check_seconds,
            also=self._rerate,
        )
        self._rerating: set[asyncio.Task[None]] = set()
        self._working = False
        db.changes.on_channels(self.channel_watch.changed)
        self.listener = (
            None
            if db.is_sqlite
            else WorkListener(
                db.libpq_url,
                self.wake,
                on_channel=self.channel_watch.changed_text,
                # Pause / cancel / resume from any process reach the dispatcher's cache.
                on_broadcast=self.dispatcher.on_broadcast_notify,
            )
        )
        self._listening = False
        self.scheduler_lock = None if db.is_sqlite else SchedulerLock(db.libpq_url)

    @classmethod
    async def create(cls, settings: Settings, *, run_worker: bool = True) -> Runtime:
        db = Database(settings.resolved_database_url)
        async with db.exclusive(MIGRATION_LOCK):  # processes starting together migrate once
            await upgrade(db)
        runtime = cls(settings, db)
        if settings.redis_url:  # live console updates from every process, through Redis
            try:
                await db.changes.connect(settings.redis_url)
            except BaseException:
                await runtime.close()
                raise
        runtime.start_watching()
        if run_worker:
            try:
                await runtime.start_worker()
            except BaseException:
                await runtime.close()
                raise
        return runtime

    async def start_worker(self) -> None:
        """Start the dispatcher and the scheduler in this process.

        Raises ``WorkerAlreadyRunning`` on a SQLite file another process works on, and
        ``LimiterUnavailable`` when the shared limiter's store (Redis) cannot be reached:
        sending without the shared limit would break the platform's.
        """
        await self.limiter.start()
        if self.ownership is not None:
            self.ownership.acquire()
            # One dispatcher per SQLite file: whatever is still "sending" belonged to a
            # process that died. Its rows go back to the queue at once (see dispatch).
            await dispatch.requeue_expired(
                self.db, everything=True, settle_seconds=self.settings.settle_seconds
            )
        self._working = True
        self._tasks += [
            asyncio.create_task(self.dispatcher.run(self._stop)),
            asyncio.create_task(
                run_scheduler(
                    self.db,
                    self._stop,
                    poll_seconds=self.settings.poll_seconds,
                    wake=self.wake,
                    registry=self.registry,
                    settle_seconds=self.settings.settle_seconds,
                    template_sync_seconds=self.settings.template_sync_seconds,
                    lock=self.scheduler_lock,
                )
            ),
        ]
        self._listen()

    def _rerate(self, channel_id: int) -> None:
        """A channel changed: this worker's sends waiting on the limiter take its new rate."""
        if self._working and not self._stop.is_set():
            task = asyncio.create_task(self._rerate_now(channel_id))
            self._rerating.add(task)
            task.add_done_callback(self._rerating.discard)

    async def _rerate_now(self, channel_id: int) -> None:
        try:
            rate = await self.registry.rate(channel_id)  # built anew from the changed row
        except Exception as exc:  # deleted meanwhile, or the database is away
            log.warning("reading channel %s's new rate failed (%s)", channel_id, exc)
            return
        self.limiter.rerate(channel_id, rate)

    def start_watching(self) -> None:
        """Follow channel changes made by other processes (web nodes and workers alike)."""
        self._tasks.append(asyncio.create_task(self.channel_watch.run(self._stop)))
        self._listen()

    def _listen(self) -> None:
        if self.listener is not None and not self._listening:
            self._listening = True
            self._tasks.append(asyncio.create_task(self.listener.run(self._stop)))

    def wake(self) -> None:
        self.dispatcher.wake()

    def stop(self) -> None:
        """Begin a graceful stop (a signal handler may call this): see ``close``."""
        self._stop.set()

    async def close(self) -> None:
        """Stop the loops: in-flight sends finish, unsent claimed work is released."""
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rerating in list(self._rerating):
            rerating.cancel()
        if self.ownership is not None:
            self.ownership.release()
        await self.limiter.close()
        await self.registry.close()
        await self.db.dispose()


def _limiter(settings: Settings, db: Database) -> SenderLimiter:
    """Where the senders' rate limits live: shared by every worker unless on SQLite."""
    if settings.redis_url:
        return RedisLimiter(settings.redis_url)
    if not db.is_sqlite:
        return PostgresLimiter(db.libpq_url)
    return InProcessLimiter()
