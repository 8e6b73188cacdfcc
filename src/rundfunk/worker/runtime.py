"""Everything one Rundfunk process holds: database, secrets, channels, loops."""

from __future__ import annotations

import asyncio
import contextlib

from rundfunk.config import Settings
from rundfunk.db.migrate import upgrade
from rundfunk.db.session import Database
from rundfunk.services import dispatch
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.services.registry import ChannelRegistry
from rundfunk.services.sandbox import DatabaseSandbox
from rundfunk.services.secrets import SecretBox
from rundfunk.worker.dispatcher import Dispatcher
from rundfunk.worker.scheduler import run_scheduler


class Runtime:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.box = SecretBox(settings.resolved_secret_key)
        self.registry = ChannelRegistry(db, box=self.box, sandbox=DatabaseSandbox(db))
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
        )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def create(cls, settings: Settings, *, run_worker: bool = True) -> Runtime:
        db = Database(settings.resolved_database_url)
        await upgrade(db)
        runtime = cls(settings, db)
        if run_worker:
            await runtime.start_worker()
        return runtime

    async def start_worker(self) -> None:
        if self.db.is_sqlite:
            # One dispatcher per SQLite file: whatever is still "sending" belonged to a
            # process that died. Its rows go back to the queue at once (see dispatch).
            await dispatch.requeue_expired(
                self.db, everything=True, settle_seconds=self.settings.settle_seconds
            )
        self._tasks = [
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
                )
            ),
        ]

    def wake(self) -> None:
        self.dispatcher.wake()

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.registry.close()
        await self.db.dispose()
