"""Group commit for concurrent callers: one batch call for all that arrive together.

Many tasks each ask for one thing (put a message on a phone, check one contact's
consent); the first waits a couple of milliseconds, then everything that arrived in
the meantime is handled by one call. A commit or query per item would cap the rate
at the database's round-trip rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupBatcher(Generic[T, R]):
    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        on_error: Callable[[Exception], Exception] = lambda exc: exc,
        window_s: float = 0.002,
    ) -> None:
        """``handle`` returns one result per item, in order; if it raises, every caller
        of that batch gets ``on_error(exc)`` raised instead."""
        self._handle = handle
        self._on_error = on_error
        self._window_s = window_s
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(self._window_s)
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._handle([item for item, _ in batch])
            except Exception as exc:
                error = self._on_error(exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
