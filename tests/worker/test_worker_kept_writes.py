"""A live worker never forgets what it sent: outcomes whose write fails are kept and
written again once the database takes them, and nothing new is claimed meanwhile.

The database itself refuses the writes here (a trigger that fails every update of a
delivery to ``sent``, on the engine under test), while claims still work: the state of
a database that is restarting or failing over. The platform is a small in-memory fake
that accepts every send (what a real one does while our database is down).
``tests/e2e/test_e2e_outage.py`` does the same with PostgreSQL really stopped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

from sqlalchemy import func, select, text

from rundfunk.channels.base import InboundEvent, OutboundMessage, SendResult
from rundfunk.core.ratelimit import Rate
from rundfunk.db.tables import deliveries
from rundfunk.worker.dispatcher import Dispatcher
from service_world import World, running, wait_until

CHUNK = 8
PEOPLE = 24


class _Accepting:
    """A platform that accepts every send and remembers who got what."""

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


_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_outcomes BEFORE UPDATE OF status ON deliveries "
        "WHEN NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'outcomes refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_outcomes() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'outcomes refused'; END $$",
        "CREATE TRIGGER refuse_outcomes BEFORE UPDATE ON deliveries FOR EACH ROW "
        "WHEN (NEW.status = 'sent') EXECUTE FUNCTION refuse_outcomes()",
    ],
}
_ACCEPT = {
    "sqlite": ["DROP TRIGGER refuse_outcomes"],
    "postgresql": [
        "DROP TRIGGER refuse_outcomes ON deliveries",
        "DROP FUNCTION refuse_outcomes()",
    ],
}


async def _ddl(world: World, statements: dict[str, list[str]]) -> None:
    engine = "sqlite" if world.db.is_sqlite else "postgresql"
    async with world.db.write() as conn:
        for statement in statements[engine]:
            await conn.execute(text(statement))


async def _count(world: World, broadcast_id: int, status: str) -> int:
    query = select(func.count()).where(
        deliveries.c.broadcast_id == broadcast_id, deliveries.c.status == status
    )
    return int(await world.scalar(query))


async def _setup(world: World) -> tuple[_Accepting, int]:
    for n in range(PEOPLE):
        await world.subscriber(f"+4970{n:03}")
    await world.drain_outbox()  # the welcomes go out before the platform is swapped
    platform = _Accepting(world.channel_id)
    world.registry.register(platform, Rate(1000, 50))
    return platform, await world.send("News")


async def test_outcomes_the_database_refused_are_written_once_it_takes_them(
    world: World,
) -> None:
    platform, broadcast_id = await _setup(world)
    await _ddl(world, _REFUSE)
    dispatcher = world.dispatcher(chunk_size=CHUNK)

    async with running(dispatcher):
        await wait_until(lambda: _kept(dispatcher), what="outcomes kept")
        await asyncio.sleep(0.3)  # a dozen poll intervals: time enough to claim more
        # What was in flight (at most two chunks) went out once; nothing new was claimed.
        sent_then = platform.copies.total()
        assert CHUNK <= sent_then <= 2 * CHUNK, platform.copies
        assert await _count(world, broadcast_id, "sending") == sent_then
        assert await _count(world, broadcast_id, "queued") == PEOPLE - sent_then
        assert dispatcher.sent == 0

        await _ddl(world, _ACCEPT)  # the database is back
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    assert sorted(platform.copies.values()) == [1] * PEOPLE
    rows = await world.deliveries_of(broadcast_id)
    assert {row.status for row in rows} == {"sent"}
    assert {row.attempts for row in rows} == {1}  # nothing was sent again
    assert all(row.provider_message_id.startswith("wamid.") for row in rows)
    assert dispatcher.kept.written_late >= 1 and dispatcher.sent == PEOPLE


async def _kept(dispatcher: Dispatcher) -> bool:
    return dispatcher.kept.kept > 0


async def test_a_stopping_worker_gives_up_kept_outcomes_after_its_grace(world: World) -> None:
    """Stopped while the database still refuses: the worker leaves after ``stop_grace``
    instead of hanging, and its rows stay ``sending`` for the callbacks and the settle
    time, as a dead worker's."""
    platform, broadcast_id = await _setup(world)
    await _ddl(world, _REFUSE)
    dispatcher = world.dispatcher(chunk_size=CHUNK)
    dispatcher.kept.stop_grace = 0.2

    async with running(dispatcher):
        await wait_until(lambda: _kept(dispatcher), what="outcomes kept")
    # ``running`` returned: the loop stopped within its grace.
    assert dispatcher.kept.given_up >= 1 and dispatcher.kept.kept == 0
    assert await _count(world, broadcast_id, "sending") == platform.copies.total() > 0
    await _ddl(world, _ACCEPT)
