"""Wake an idle dispatcher the moment work is queued in another process.

Every write that makes work due (a broadcast fanned out or resumed, a message queued,
rows released or requeued) sends ``NOTIFY rundfunk_work`` in its transaction, which
PostgreSQL delivers on commit. Each worker keeps one connection that ``LISTEN``s and
turns a notification into ``Dispatcher.wake``. The dispatcher's poll stays as the
fallback, and for work that becomes due later (retries, deferrals) without any write.

The same connection also ``LISTEN``s for ``rundfunk_channels`` (a channel changed,
``db.changes.channel_changed``) when given ``on_channel``: web nodes run it for that
alone, so their cached app secrets follow a rotation at once.

And for ``rundfunk_broadcasts`` (a broadcast paused, cancelled or resumed,
``db.broadcast_signals``) when given ``on_broadcast``: the dispatcher's state cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]  # no stubs; used on two connections only

from rundfunk.db.broadcast_signals import BROADCAST_NOTIFY
from rundfunk.db.changes import CHANNEL_NOTIFY
from rundfunk.db.session import WORK_CHANNEL

log = logging.getLogger(__name__)


class WorkListener:
    # How often the listening connection is checked (a dead TCP peer sends no error).
    CHECK_SECONDS = 5.0
    RECONNECT_SECONDS = 1.0  # the first wait before reconnecting; doubled up to the next
    MAX_RECONNECT_SECONDS = 30.0

    def __init__(
        self,
        dsn: str,
        wake: Callable[[], None],
        *,
        on_channel: Callable[[str], None] | None = None,
        on_broadcast: Callable[[str], None] | None = None,
    ) -> None:
        self._dsn = dsn
        self._wake = wake
        self._on_channel = on_channel
        self._on_broadcast = on_broadcast
        self.connected = asyncio.Event()
        self.notifications = 0

    def _on_notify(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self.notifications += 1
        self._wake()

    def _on_channel_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if self._on_channel is not None:
            self._on_channel(payload)

    def _on_broadcast_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if self._on_broadcast is not None:
            self._on_broadcast(payload)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until ``stop``; reconnect whenever the connection breaks, and after
        any other error too (logged with its traceback): the listener never ends early."""
        backoff = self.RECONNECT_SECONDS
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
                await conn.add_listener(WORK_CHANNEL, self._on_notify)
                if self._on_channel is not None:
                    await conn.add_listener(CHANNEL_NOTIFY, self._on_channel_notify)
                if self._on_broadcast is not None:
                    await conn.add_listener(BROADCAST_NOTIFY, self._on_broadcast_notify)
                self.connected.set()
                backoff = self.RECONNECT_SECONDS
                self._wake()  # whatever was queued while we were not listening
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.CHECK_SECONDS)
                    await conn.fetchval("SELECT 1", timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listening for work failed (%s); polling until it is back", exc)
            except Exception:  # a bug, or a library error of another kind: still listen on
                log.exception("listening for work failed unexpectedly; polling until it is back")
            else:
                continue  # (stopped)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    try:
                        await conn.close(timeout=5)
                    except Exception:
                        conn.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(2 * backoff, self.MAX_RECONNECT_SECONDS)
