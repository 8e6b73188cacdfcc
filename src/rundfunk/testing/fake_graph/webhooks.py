"""Webhook delivery: statuses posted on schedule, batched, signed, retried with backoff."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import aiohttp

from .errors import JSON

if TYPE_CHECKING:
    from .server import FakeGraph


def encode(envelope: JSON) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookSender:
    """Posts ``graph``'s webhooks to ``graph.webhook_url``, reading its knobs at each step.

    Counts into the graph's ``statuses_emitted``, ``webhook_posts``, ``webhook_failures``,
    ``webhook_dropped`` and ``webhook_responses``.
    """

    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph
        self.closed = False
        self.pending: list[JSON] = []  # statuses waiting for the batch window to end
        self.flush_handle: asyncio.TimerHandle | None = None
        self.timers: set[asyncio.TimerHandle] = set()  # statuses not yet due
        self.tasks: set[asyncio.Task[None]] = set()  # POSTs, with their retries
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: tuple[int, asyncio.Semaphore] | None = None

    def cancel(self) -> None:
        """Forget scheduled statuses, the open batch and POSTs under way."""
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        self.pending.clear()

    async def close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- statuses: scheduled, then batched -----------------------------------------------

    def schedule(self, plan: list[JSON]) -> None:
        """Enqueue the planned statuses one ``status_delay`` apart."""
        loop = asyncio.get_running_loop()
        for step, status in enumerate(plan, start=1):
            self._later(loop, self.graph.status_delay * step, status)

    def _later(self, loop: asyncio.AbstractEventLoop, delay: float, status: JSON) -> None:
        def fire() -> None:
            self.timers.discard(handle)
            self._enqueue(status)

        handle = loop.call_later(delay, fire)
        self.timers.add(handle)

    def _enqueue(self, status: JSON) -> None:
        if self.closed:
            return
        self.pending.append(status)
        self.graph.statuses_emitted += 1
        if self.flush_handle is None:
            loop = asyncio.get_running_loop()
            self.flush_handle = loop.call_later(self.graph.webhook_batch_seconds, self._flush)

    def _flush(self) -> None:
        """Post what collected during one batch window, ``webhook_batch_max`` per POST."""
        self.flush_handle = None
        pending, self.pending = self.pending, []
        if self.graph.webhook_url is None:
            return
        size = max(1, self.graph.webhook_batch_max)
        for i in range(0, len(pending), size):
            body = encode(self._status_envelope(pending[i : i + size]))
            self.spawn(self.deliver(body))

    def _status_envelope(self, statuses: list[JSON]) -> JSON:
        # Like Meta, sometimes split one POST into two changes, or two entries.
        rng = self.graph.rng
        if len(statuses) < 2 or rng.random() >= self.graph.multi_change_share:
            return self.envelope([{**self.value_head(), "statuses": statuses}])
        cut = rng.randint(1, len(statuses) - 1)
        values = [
            {**self.value_head(), "statuses": statuses[:cut]},
            {**self.value_head(), "statuses": statuses[cut:]},
        ]
        if rng.random() < 0.5:
            return self.envelope(values)
        entries = [self.envelope([v])["entry"][0] for v in values]
        return {"object": "whatsapp_business_account", "entry": entries}

    # --- envelopes -----------------------------------------------------------------------

    def value_head(self) -> JSON:
        return {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": re.sub(r"\D", "", self.graph.display_phone_number),
                "phone_number_id": self.graph.phone_number_id,
            },
        }

    def envelope(self, values: list[JSON], *, field: str = "messages") -> JSON:
        changes = [{"field": field, "value": value} for value in values]
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.graph.waba_id, "changes": changes}],
        }

    # --- delivery ------------------------------------------------------------------------

    def spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    def _slots(self) -> asyncio.Semaphore:
        size = max(1, self.graph.webhook_concurrency)
        if self._semaphore is None or self._semaphore[0] != size:
            self._semaphore = (size, asyncio.Semaphore(size))
        return self._semaphore[1]

    async def deliver(self, body: bytes) -> None:
        """POST with Meta-like retries: up to ``webhook_retries`` more, backoff from 0.2 s."""
        graph = self.graph
        for attempt in range(graph.webhook_retries + 1):
            url = graph.webhook_url
            if url is None:
                return
            async with self._slots():
                status = await self.post(url, body)
            if 200 <= status < 300:
                return
            graph.webhook_failures += 1
            if attempt < graph.webhook_retries:
                await asyncio.sleep(0.2 * 2**attempt)
        graph.webhook_dropped += 1

    async def post(
        self, url: str, body: bytes, *, sign: bool = True, secret: str | None = None
    ) -> int:
        """One POST, signed with the app secret (or ``secret``); the status, 0: no answer."""
        headers = {"Content-Type": "application/json"}
        if sign:
            key = (self.graph.app_secret if secret is None else secret).encode()
            headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(key, body, "sha256").hexdigest()
        self.graph.webhook_posts += 1
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.graph.webhook_responses.append(status)
        return status
