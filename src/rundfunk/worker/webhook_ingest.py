"""The loops behind the webhook route: group commit before the 200, batched application.

``GroupCommitter`` collects the verified bodies of concurrent webhook requests and
writes them to the inbox in one transaction when a batch is full or its oldest item has
waited ``max_delay``; each request's ``submit`` returns only once its row is committed
(or raises, and the route answers 503 so the platform retries). One transaction per
POST is what capped the old route; one per few milliseconds costs next to nothing.

``InboxApplier`` carries stored webhooks out (``services.webhook_inbox``): woken by each
commit of this process, and every ``poll_seconds`` for rows another node or a crashed
process left. ``WebhookIngestion`` is both, as every web process runs them (started and
stopped by the app's lifespan; on the first webhook for clients that skip it).

These are long-running loops of the web process, hence ``worker/`` like the dispatcher;
the database work they drive lives in the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from rundfunk.channels.base import InboundEvent
from rundfunk.channels.whatsapp.webhook import MalformedWebhook
from rundfunk.services import webhook_inbox
from rundfunk.services.errors import NotFound
from rundfunk.services.webhooks import IngestResult
from rundfunk.worker.runtime import Runtime

log = logging.getLogger(__name__)

MAX_DELAY = 0.008  # seconds the first webhook of a batch may wait for company
MAX_ITEMS = 512
POLL_SECONDS = 1.0
# After a wake-up the applier lets stored webhooks gather this long: one pass over
# ~50 ms of traffic (hundreds of rows at platform rates) instead of a pass per commit,
# which on SQLite would also take the write lock from the committer every few ms.
GATHER_SECONDS = 0.05

Store = Callable[[Sequence[tuple[int, bytes]]], Awaitable[None]]


class IngestionClosed(RuntimeError):
    """The process is shutting down: the webhook was not stored."""


@dataclass
class _Waiting:
    channel_id: int
    body: bytes
    done: asyncio.Future[None]


class GroupCommitter:
    """Many waiting webhooks, one transaction; ``commits``/``stored`` tell the grouping."""

    def __init__(
        self,
        store: Store,
        *,
        max_delay: float = MAX_DELAY,
        max_items: int = MAX_ITEMS,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self.max_delay = max_delay
        self.max_items = max_items
        self._on_commit = on_commit
        self._waiting: list[_Waiting] = []
        self._first_at = 0.0  # loop time the oldest waiting webhook arrived
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0
        self.stored = 0
        self.largest = 0

    def start(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.create_task(self._run())

    async def submit(self, channel_id: int, body: bytes) -> None:
        """Store one verified webhook; returns once it is committed."""
        if self._closing:
            raise IngestionClosed("shutting down")
        self.start()
        loop = asyncio.get_running_loop()
        if not self._waiting:
            self._first_at = loop.time()
        waiting = _Waiting(channel_id, body, loop.create_future())
        self._waiting.append(waiting)
        self._arrived.set()
        if len(self._waiting) >= self.max_items:
            self._full.set()
        await waiting.done

    async def close(self) -> None:
        """Write what is waiting, then stop; later submits raise ``IngestionClosed``."""
        self._closing = True
        self._full.set()
        self._arrived.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            if not self._waiting:
                self._arrived.clear()
                if self._closing:
                    return
                continue
            left = self._first_at + self.max_delay - loop.time()
            if left > 0 and len(self._waiting) < self.max_items and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), left)
            batch = self._waiting[: self.max_items]
            self._waiting = self._waiting[self.max_items :]
            self._first_at = loop.time()
            if len(self._waiting) < self.max_items and not self._closing:
                self._full.clear()
            await self._write(batch)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            await self._store([(w.channel_id, w.body) for w in batch])
        except Exception as exc:
            log.exception("storing %d webhooks failed", len(batch))
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
            return
        self.commits += 1
        self.stored += len(batch)
        self.largest = max(self.largest, len(batch))
        for waiting in batch:
            if not waiting.done.done():  # the client may have hung up meanwhile
                waiting.done.set_result(None)
        if self._on_commit is not None:
            self._on_commit()


class InboxApplier:
    """Applies stored webhooks in batches; ``totals`` adds up what it did."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        batch: int = webhook_inbox.BATCH,
        poll_seconds: float = POLL_SECONDS,
        gather_seconds: float = GATHER_SECONDS,
    ) -> None:
        self._runtime = runtime
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.gather_seconds = gather_seconds
        self.totals = IngestResult()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one pass at a time in this process

    def kick(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Apply whenever woken and every ``poll_seconds`` (a first pass at once: rows
        a crash left are applied on start), until ``stop``."""
        self._wake.set()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            if self._wake.is_set() and not stop.is_set():
                await asyncio.sleep(self.gather_seconds)
            self._wake.clear()
            try:
                await self.apply_all()
            except Exception:
                log.exception("applying stored webhooks failed; trying again shortly")
                await asyncio.sleep(self.poll_seconds)

    async def apply_all(self) -> IngestResult:
        """Apply until the inbox has nothing more for us; what this call applied."""
        done = IngestResult()
        async with self._lock:
            while True:
                taken, result = await webhook_inbox.apply_pending(
                    self._runtime.db,
                    self._parse,
                    limit=self.batch,
                    policy=self._runtime.dispatcher.policy,
                )
                self._effects(result)
                done.add(result)
                if taken < self.batch:
                    return done

    def _effects(self, result: IngestResult) -> None:
        self.totals.add(result)
        for disabled in result.effects.disabled_channels:
            self._runtime.registry.forget(disabled)
        if result.messages or result.statuses_changed:
            self._runtime.wake()  # confirmations and requeued sends are due now

    async def _parse(self, channel_id: int, body: bytes) -> Sequence[InboundEvent] | None:
        try:
            channel = await self._runtime.registry.get(channel_id)
            return channel.parse(body)
        except NotFound:
            log.warning("stored webhook for channel %s, which is gone: dropped", channel_id)
        except MalformedWebhook as exc:  # the route parsed it once: not expected
            log.warning("stored webhook for channel %s unreadable: %s", channel_id, exc)
        return None


class WebhookIngestion:
    """The committer and the applier of one web process."""

    def __init__(self, runtime: Runtime, *, max_delay: float = MAX_DELAY) -> None:
        self.applier = InboxApplier(runtime)
        self.committer = GroupCommitter(
            lambda items: webhook_inbox.store(runtime.db, items),
            max_delay=max_delay,
            on_commit=self.applier.kick,
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start both loops (idempotent); needs a running event loop."""
        if self._task is None and not self._stop.is_set():
            self.committer.start()
            self._task = asyncio.create_task(self.applier.run(self._stop))

    async def submit(self, channel_id: int, body: bytes) -> None:
        self.start()
        await self.committer.submit(channel_id, body)

    async def drain(self) -> IngestResult:
        """Apply everything stored so far (tests, and the last step of ``close``)."""
        return await self.applier.apply_all()

    async def close(self, *, timeout: float = 10.0) -> None:
        """Store what is waiting, stop, and apply what is left if it goes quickly (the
        next start applies anything that did not make it)."""
        await self.committer.close()
        self._stop.set()
        self.applier.kick()
        if self._task is not None:
            await self._task
        try:
            await asyncio.wait_for(self.drain(), timeout)
        except Exception:
            log.warning("stored webhooks left for the next start", exc_info=True)
