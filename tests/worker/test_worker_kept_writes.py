"""A live worker never forgets what it sent: outcomes whose write fails are kept and
written again once the database takes them, and nothing new is claimed meanwhile.

The database itself fails the writes here, with a trigger on every update of a
delivery to ``sent``, while claims still work: answering PostgreSQL's own "starting
up" error (SQLSTATE 57P03), the state of a database that is restarting; or refusing
one row for what it holds (both engines), which must not stop the worker. The
platform is a small in-memory fake that accepts every send (what a real one does
while our database is down).
``tests/e2e/test_e2e_outage.py`` does the same with PostgreSQL really stopped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping

import pytest
from sqlalchemy import func, select, text

from rundfunk.channels.base import InboundEvent, OutboundMessage, SendResult
from rundfunk.core.ratelimit import Rate
from rundfunk.db.tables import deliveries
from rundfunk.worker.dispatcher import Dispatcher
from service_world import World, _open_world, running, wait_until

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


# PostgreSQL's own answer while it starts up or shuts down (SQLSTATE 57P03).
_RESTARTING = [
    "CREATE FUNCTION refuse_outcomes() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'the database system is starting up' USING ERRCODE = '57P03'; "
    "END $$",
    "CREATE TRIGGER refuse_outcomes BEFORE UPDATE ON deliveries FOR EACH ROW "
    "WHEN (NEW.status = 'sent') EXECUTE FUNCTION refuse_outcomes()",
]
_BACK = ["DROP TRIGGER refuse_outcomes ON deliveries", "DROP FUNCTION refuse_outcomes()"]


def _refuse_one(world: World, delivery_id: int) -> list[str]:
    """A write the database refuses for what it says (not an outage), for one row."""
    if world.db.is_sqlite:
        return [
            "CREATE TRIGGER refuse_one BEFORE UPDATE OF status ON deliveries WHEN "
            f"NEW.status = 'sent' AND OLD.id = {delivery_id} "
            "BEGIN SELECT RAISE(ABORT, 'value too long'); END"
        ]
    return [
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'value too long' USING ERRCODE = '22001'; END $$",
        "CREATE TRIGGER refuse_one BEFORE UPDATE ON deliveries FOR EACH ROW "
        f"WHEN (NEW.status = 'sent' AND OLD.id = {delivery_id}) EXECUTE FUNCTION refuse_one()",
    ]


def _unrefuse(world: World) -> list[str]:
    if world.db.is_sqlite:
        return ["DROP TRIGGER refuse_one"]
    return ["DROP TRIGGER refuse_one ON deliveries", "DROP FUNCTION refuse_one()"]


async def _ddl(world: World, statements: list[str]) -> None:
    async with world.db.write() as conn:
        for statement in statements:
            await conn.execute(text(statement))


@pytest.fixture
async def pg_world(postgres_url: str) -> AsyncIterator[World]:
    """The world on PostgreSQL whatever the engine (its restart error is PostgreSQL's)."""
    async with _open_world(postgres_url) as opened:
        yield opened


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


async def test_outcomes_kept_through_a_restart_are_written_once_the_database_is_back(
    pg_world: World,
) -> None:
    world = pg_world
    platform, broadcast_id = await _setup(world)
    await _ddl(world, _RESTARTING)
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

        await _ddl(world, _BACK)  # the database is back
        await wait_until(lambda: world.is_done(broadcast_id), what="broadcast done")

    assert sorted(platform.copies.values()) == [1] * PEOPLE
    rows = await world.deliveries_of(broadcast_id)
    assert {row.status for row in rows} == {"sent"}
    assert {row.attempts for row in rows} == {1}  # nothing was sent again
    assert all(row.provider_message_id.startswith("wamid.") for row in rows)
    assert dispatcher.kept.written_late >= 1 and dispatcher.sent == PEOPLE


async def _kept(dispatcher: Dispatcher) -> bool:
    return dispatcher.kept.kept > 0


async def test_a_stopping_worker_gives_up_kept_outcomes_after_its_grace(
    pg_world: World,
) -> None:
    """Stopped while the database still refuses: the worker leaves after ``stop_grace``
    instead of hanging, and its rows stay ``sending`` for the callbacks and the settle
    time, as a dead worker's."""
    world = pg_world
    platform, broadcast_id = await _setup(world)
    await _ddl(world, _RESTARTING)
    dispatcher = world.dispatcher(chunk_size=CHUNK)
    dispatcher.kept.stop_grace = 0.2

    async with running(dispatcher):
        await wait_until(lambda: _kept(dispatcher), what="outcomes kept")
    # ``running`` returned: the loop stopped within its grace.
    assert dispatcher.kept.given_up >= 1 and dispatcher.kept.kept == 0
    assert await _count(world, broadcast_id, "sending") == platform.copies.total() > 0
    await _ddl(world, _BACK)


async def test_an_outcome_the_database_refuses_costs_only_its_own_row(world: World) -> None:
    """Not an outage: waiting would never end. The chunk is recorded one by one, the bad
    row is left to its callback and the settle time, and the worker goes on."""
    platform, broadcast_id = await _setup(world)
    bad = (await world.deliveries_of(broadcast_id))[3].id
    await _ddl(world, _refuse_one(world, bad))
    dispatcher = world.dispatcher(chunk_size=CHUNK)

    try:
        async with running(dispatcher):
            await wait_until(
                lambda: _count_is(world, broadcast_id, "sent", PEOPLE - 1), what="the rest sent"
            )
    finally:  # (a PostgreSQL test database is emptied and reused: the trigger would stay)
        await _ddl(world, _unrefuse(world))

    assert sorted(platform.copies.values()) == [1] * PEOPLE
    rows = {row.id: row for row in await world.deliveries_of(broadcast_id)}
    assert rows[bad].status == "sending"  # its status callback or the settle time decides
    assert dispatcher.kept.refused >= 1 and dispatcher.kept.kept == 0


async def _count_is(world: World, broadcast_id: int, status: str, expected: int) -> bool:
    return await _count(world, broadcast_id, status) == expected
