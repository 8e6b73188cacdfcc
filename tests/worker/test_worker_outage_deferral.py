"""An infrastructure outage before a send is a deferral, not an attempt.

The shared rate limiter's Redis (a server of the test's own: the shared one is never
stopped) goes away in the middle of a broadcast for longer than the retry policy's
attempts and backoff would last. Nothing reached the platform meanwhile, so nothing
may be charged: once Redis is back every person gets exactly one copy, no delivery
failed, and the log has a few lines about the outage instead of a traceback per send.
And the work listener outlives an error of a kind it did not expect.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from rundfunk.channels.base import InboundEvent, OutboundMessage, SendResult
from rundfunk.core.ratelimit import Rate
from rundfunk.db.session import Database
from rundfunk.services.outcomes import RetryPolicy
from rundfunk.worker.redis_limiter import RedisLimiter
from rundfunk.worker.wakeup import WorkListener
from service_world import World, running, wait_until

PEOPLE = 60
OUTAGE_S = 2.0
# Three attempts 0.1-0.2 s apart: under a second, far shorter than the outage.
SHORT_RETRIES = RetryPolicy(
    max_attempts=3, base_seconds=0.1, cap_seconds=0.2, pause_min_sample=10_000
)


class _Accepting:
    """A platform that accepts every send and counts who got how many."""

    kind = "sandbox"

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id
        self.copies: Counter[str] = Counter()

    async def send(self, message: OutboundMessage) -> SendResult:
        self.copies[message.address] += 1
        return SendResult(provider_message_id=f"wamid.{message.address}.{self.copies.total()}")

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        return None

    def parse(self, body: bytes) -> list[InboundEvent]:
        return []

    async def close(self) -> None:
        return None


class _Redis:
    """``redis-server`` on a free loopback port, no persistence: stopped and started again."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.root = Path(tempfile.mkdtemp(prefix="rundfunk-outage-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self._answer(b"PING\r\n").startswith(b"+PONG"):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def shutdown(self) -> None:
        self._answer(b"SHUTDOWN NOSAVE\r\n")
        assert self.process is not None
        self.process.wait(timeout=10)

    def _answer(self, command: bytes) -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(command)
                return sock.recv(16)
        except OSError:
            return b""

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[_Redis]:
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server")
    server = _Redis()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


async def test_a_redis_outage_longer_than_the_retries_defers_sends_without_charging_them(
    world: World, private_redis: _Redis, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(PEOPLE):
        await world.subscriber(f"+4971{n:03}")
    await world.drain_outbox()
    platform = _Accepting(world.channel_id)
    world.registry.register(platform, Rate(50, 1))  # 60 people: 1.2 s without the outage
    broadcast_id = await world.send("News")
    limiter = RedisLimiter(f"redis://127.0.0.1:{private_redis.port}/0")
    await limiter.start()
    dispatcher = world.dispatcher(SHORT_RETRIES, chunk_size=10, limiter=limiter)
    caplog.set_level(logging.WARNING, logger="rundfunk")

    try:
        async with running(dispatcher):
            await wait_until(lambda: _sent(platform, 3), what="the first sends")
            private_redis.shutdown()
            down = platform.copies.total()
            await asyncio.sleep(OUTAGE_S)
            # Nothing went out without the limiter, and nothing was given up on.
            # (at most the two chunks in flight: sends with slots reserved before)
            assert platform.copies.total() - down <= 20
            assert dispatcher.outage.deferred > 0 and dispatcher.outage.active
            private_redis.start()
            await wait_until(
                lambda: world.is_done(broadcast_id), timeout=8, what="broadcast done"
            )
    finally:
        await limiter.close()

    assert sorted(platform.copies.values()) == [1] * PEOPLE, platform.copies
    rows = await world.deliveries_of(broadcast_id)
    assert {row.status for row in rows} == {"sent"}
    assert {row.attempts for row in rows} == {1}  # the deferrals were not attempts
    assert not dispatcher.outage.active and dispatcher.outage.outages == 1
    # One line when the outage began and one when it ended; no traceback per send.
    assert not [r for r in caplog.records if r.exc_info], [r.message for r in caplog.records]
    held = [r for r in caplog.records if r.name == "rundfunk.worker.outages"]
    assert len(held) == 2, [r.message for r in held]
    assert "sending held" in held[0].getMessage() and "Redis" in held[0].getMessage()


async def _sent(platform: _Accepting, count: int) -> bool:
    return platform.copies.total() >= count


async def test_the_work_listener_outlives_an_unexpected_error(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An error of a kind the listener does not know (here ``OverflowError`` from a port
    out of range) is logged with its traceback, and it tries again, not ending."""
    woken = asyncio.Event()
    listener = WorkListener("postgresql://127.0.0.1:99999/test", woken.set)
    listener.RECONNECT_SECONDS = 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    db = Database(postgres_url)
    try:
        await asyncio.sleep(0.3)
        assert not task.done()
        failed = [r for r in caplog.records if r.name == "rundfunk.worker.wakeup"]
        assert failed and all(r.exc_info for r in failed)
        assert 2 <= len(failed) <= 4  # tried again, with a growing wait
        listener._dsn = db.libpq_url  # the address is right again
        await asyncio.wait_for(listener.connected.wait(), timeout=10)
        assert woken.is_set()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await db.dispose()
