"""Live change signals: "something a console page shows moved in workspace W".

A service that writes what an open console page shows (an inbound message, a reply,
a delivery's progress) marks the workspace on its connection (``changed``); when the
transaction commits, ``Database.write`` hands the marked workspaces to ``Changes``,
which wakes every live stream (``web/ui/live.py``) watching them. Signals go out only
after the commit, so a woken stream always reads the new state.

One process (embedded mode) needs nothing more. With ``RUNDFUNK_REDIS_URL`` every
process publishes its signals on one Redis pub/sub channel and every web node
subscribes to it, so a browser connected to node A sees at once a message that node
B stored. Signals are coalesced while a publish is in flight, so a broadcast sending
thousands of messages per second costs a handful of publishes, not thousands.

Pub/sub delivers at most once and only to who listens right now; a signal lost while
a node reconnects only delays a page until its next fallback check (``live.py``).

Channel changes (a new rate, token, secret or status) travel the same ways, on a
channel of their own: ``channel_changed`` marks a channel and sends ``NOTIFY
rundfunk_channels`` (PostgreSQL), and after the commit every callback registered with
``on_channels`` in this process and, through Redis, in every process is told, so each
drops its cached channel object (``worker/channel_watch.py``, which also compares
versions periodically in case a signal is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL = "rundfunk:changes"
CHANNEL_CHANGES = "rundfunk:channel-changes"  # Redis pub/sub: "<origin> <id>,<id>"
CHANNEL_NOTIFY = "rundfunk_channels"  # PostgreSQL NOTIFY, payload: the channel id
_MARK = "rundfunk_changed_workspaces"
_CHANNEL_MARK = "rundfunk_changed_channels"


class RedisUnreachable(RuntimeError):
    """``RUNDFUNK_REDIS_URL`` is set but that Redis does not answer (the message says so)."""


def redacted_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def check_redis(url: str) -> None:
    """Raise ``RedisUnreachable`` unless the Redis at ``url`` answers a PING."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnreachable(
            f"RUNDFUNK_REDIS_URL: cannot reach Redis at {redacted_url(url)}: {exc}"
        ) from exc
    finally:
        await client.aclose()


def changed(conn: AsyncConnection, workspace_id: int) -> None:
    """Mark ``workspace_id`` as changed by this transaction (signalled on commit)."""
    marked: set[int] = conn.info.setdefault(_MARK, set())
    marked.add(workspace_id)


def take_marks(conn: AsyncConnection) -> set[int]:
    """The workspaces marked on this connection since the last call (cleared)."""
    marks: set[int] = conn.info.pop(_MARK, None) or set()
    return marks


async def channel_changed(conn: AsyncConnection, channel_id: int) -> None:
    """Mark ``channel_id`` as changed by this transaction: every process is told on commit.

    The caller bumps the row's ``version`` in the same transaction. PostgreSQL delivers
    the ``NOTIFY`` only on commit; the in-process and Redis signals go out from
    ``Database.write`` after it.
    """
    marked: set[int] = conn.info.setdefault(_CHANNEL_MARK, set())
    marked.add(channel_id)
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL_NOTIFY, "payload": str(channel_id)},
        )


def take_channel_marks(conn: AsyncConnection) -> set[int]:
    """The channels marked on this connection since the last call (cleared)."""
    marks: set[int] = conn.info.pop(_CHANNEL_MARK, None) or set()
    return marks


class Changes:
    """Fans change signals out to the live streams of this process, and, with Redis,
    of every process."""

    def __init__(self) -> None:
        self._watchers: defaultdict[int, set[asyncio.Event]] = defaultdict(set)
        self._redis: aioredis.Redis | None = None
        self._pending: set[int] = set()
        self._has_pending = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._channel_callbacks: list[Callable[[set[int]], None]] = []
        self._pending_channels: set[int] = set()
        self._origin = secrets.token_hex(8)  # our own Redis signals come back: skip them

    @property
    def shared(self) -> bool:
        """True when signals reach every process (Redis), not only this one."""
        return self._redis is not None

    @contextlib.contextmanager
    def watch(self, workspace_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever ``workspace_id`` changes (the watcher clears it)."""
        event = asyncio.Event()
        self._watchers[workspace_id].add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(workspace_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[workspace_id]

    def publish(self, workspace_ids: Iterable[int]) -> None:
        """Signal committed changes (never blocks, never raises)."""
        ids = set(workspace_ids)
        if not ids:
            return
        if self._redis is None:
            self._wake(ids)
            return
        self._pending |= ids
        self._has_pending.set()

    def on_channels(self, callback: Callable[[set[int]], None]) -> None:
        """Call ``callback`` with the ids of channels changed in any process."""
        self._channel_callbacks.append(callback)

    def publish_channels(self, channel_ids: Iterable[int]) -> None:
        """Signal committed channel changes (never blocks, never raises)."""
        ids = set(channel_ids)
        if not ids:
            return
        self._tell_channels(ids)
        if self._redis is not None:
            self._pending_channels |= ids
            self._has_pending.set()

    def _tell_channels(self, channel_ids: set[int]) -> None:
        for callback in self._channel_callbacks:
            try:
                callback(channel_ids)
            except Exception:  # one broken watcher must not stop the others
                log.exception("a channel change callback failed")

    def _wake(self, workspace_ids: Iterable[int]) -> None:
        for workspace_id in workspace_ids:
            for event in self._watchers.get(workspace_id, ()):
                event.set()

    # -- Redis ---------------------------------------------------------------------------
    async def connect(self, url: str) -> None:
        """Share signals through Redis; fails at once with a clear message when it is down."""
        await check_redis(url)
        client = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL, CHANNEL_CHANGES)
        except (RedisError, OSError) as exc:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
            raise RedisUnreachable(
                f"RUNDFUNK_REDIS_URL: cannot subscribe at {redacted_url(url)}: {exc}"
            ) from exc
        self._redis = client
        self._tasks = [
            asyncio.create_task(self._listen(pubsub)),
            asyncio.create_task(self._flush(client)),
        ]

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        try:
            while True:
                try:
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        topic = message.get("channel")
                        if isinstance(topic, bytes):
                            topic = topic.decode()
                        if topic == CHANNEL_CHANGES:
                            self._received_channels(text)
                            continue
                        self._wake(int(part) for part in text.split(",") if part.isdigit())
                except (RedisError, OSError) as exc:
                    # Streams fall back to their slow check meanwhile; try again shortly.
                    log.warning("live changes: Redis subscription lost (%s); retrying", exc)
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.subscribe(CHANNEL, CHANNEL_CHANGES)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _received_channels(self, text: str) -> None:
        origin, _, listed = text.partition(" ")
        if origin == self._origin:
            return  # told this process's callbacks at commit already
        ids = {int(part) for part in listed.split(",") if part.isdigit()}
        if ids:
            self._tell_channels(ids)

    async def _flush(self, client: aioredis.Redis) -> None:
        while True:
            await self._has_pending.wait()
            self._has_pending.clear()
            channel_ids, self._pending_channels = self._pending_channels, set()
            if channel_ids:
                listed = ",".join(str(i) for i in sorted(channel_ids))
                try:
                    await client.publish(CHANNEL_CHANGES, f"{self._origin} {listed}")
                except (RedisError, OSError) as exc:
                    # The other processes' periodic version check catches it up.
                    log.warning("channel changes: publish failed (%s)", exc)
            ids, self._pending = self._pending, set()
            if not ids:
                continue
            try:
                await client.publish(CHANNEL, ",".join(str(i) for i in sorted(ids)))
            except (RedisError, OSError) as exc:
                log.warning("live changes: publish failed (%s); pages catch up later", exc)
                self._wake(ids)  # this process's own pages at least
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
