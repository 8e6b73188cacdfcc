"""When each API token was last used, written at most once a minute per token.

A write per request would double the cost of every API call and, on SQLite, make each
request queue for the single writer. Instead ``note`` remembers a use in memory and a
background task writes the tokens noted since its last run in one statement
(``services.api_tokens.mark_used``). A token whose stored time is under a minute old,
or that this process wrote under a minute ago, is not written again: "last used" is
exact to the minute, which is what a person reading the list needs. A write that fails
(the database is restarting) is only logged: the next use a minute later tries again.

This is not an auth cache: whether a token is valid is still read from the database
on every request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from rundfunk.db.session import Database
from rundfunk.db.types import utcnow
from rundfunk.services import api_tokens

log = logging.getLogger(__name__)

INTERVAL_S = 60.0
_MAX_REMEMBERED = 10_000  # tokens remembered per process before old entries are dropped


class TokenUse:
    """One per app: the uses noted since the last write, and when each token was written."""

    def __init__(self, db: Database, *, interval_s: float = INTERVAL_S) -> None:
        self.db = db
        self._interval_s = interval_s
        self._written: dict[int, float] = {}  # token id -> monotonic time of our last write
        self._pending: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0  # statements issued (for tests and curiosity)

    def note(self, token_id: int, last_used_at: datetime | None) -> None:
        """A request was authenticated with this token (``last_used_at`` as stored)."""
        if last_used_at is not None:
            age = (utcnow() - last_used_at).total_seconds()
            if 0 <= age < self._interval_s:
                return
        now = time.monotonic()
        if now - self._written.get(token_id, -self._interval_s) < self._interval_s:
            return
        if len(self._written) >= _MAX_REMEMBERED:
            self._forget_before(now - self._interval_s)
        self._written[token_id] = now
        self._pending.add(token_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    def _forget_before(self, cutoff: float) -> None:
        self._written = {k: v for k, v in self._written.items() if v >= cutoff}

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the uses of the same moment join one statement
        while self._pending:
            batch, self._pending = self._pending, set()
            try:
                await api_tokens.mark_used(self.db, token_ids=batch, at=utcnow())
                self.writes += 1
            except Exception as exc:  # advisory data: never fail a request over it
                log.warning("could not note the use of %d API token(s): %s", len(batch), exc)
                for token_id in batch:
                    self._written.pop(token_id, None)

    async def close(self) -> None:
        """Wait for a write under way (the app is stopping)."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=2)
