"""The dispatcher's broadcast state cache: signals, re-reads, and which of them wins."""

from __future__ import annotations

import asyncio

import pytest

from rundfunk.services import broadcasts
from rundfunk.services.actors import Actor, Role
from rundfunk.services.errors import NotFound
from rundfunk.worker.broadcast_states import BroadcastStates
from service_world import World


async def _sending_broadcast(world: World) -> int:
    await world.subscriber("+4915000001")
    return await world.send("Hello")


async def test_a_committed_pause_reaches_the_cache_before_the_call_returns(world: World) -> None:
    halted: list[int] = []
    states = BroadcastStates(world.db, on_halt=halted.append)
    world.db.broadcast_signals.on_moved(states.moved)
    broadcast_id = await _sending_broadcast(world)
    assert not states.halted(broadcast_id)  # never heard of: it was claimed sending

    await broadcasts.pause_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
    assert states.halted(broadcast_id) and halted == [broadcast_id]
    await broadcasts.send_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
    assert not states.halted(broadcast_id)
    await broadcasts.cancel_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
    assert states.status(broadcast_id) == "cancelled" and halted == [broadcast_id] * 2


async def test_a_rereading_that_a_signal_overtook_is_not_applied(world: World) -> None:
    broadcast_id = await _sending_broadcast(world)
    states = BroadcastStates(world.db)  # hears no signal by itself: told by hand below
    await broadcasts.pause_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)

    reading = asyncio.ensure_future(states.reread([broadcast_id]))
    await asyncio.sleep(0)  # the re-read has started and waits for the database
    states.moved(broadcast_id, "sending")  # a resume committed meanwhile
    await reading
    assert states.status(broadcast_id) == "sending", "an older re-read overwrote the signal"

    await states.reread([broadcast_id])  # nothing overtook this one: the database wins
    assert states.status(broadcast_id) == "paused"


async def test_a_claim_that_disagrees_with_the_cache_asks_the_database(world: World) -> None:
    broadcast_id = await _sending_broadcast(world)
    states = BroadcastStates(world.db)
    states.moved(broadcast_id, "paused")  # a resume whose signal was lost follows
    await states.confirm([broadcast_id])
    assert not states.halted(broadcast_id)
    assert states.rereads == 1
    await states.confirm([broadcast_id])  # no doubt, no query
    assert states.rereads == 1


async def test_an_expected_pause_stands_against_rereads_until_its_commit(world: World) -> None:
    """A pause in this process stops the sends before its write (which may wait for
    SQLite's lock); a re-read meanwhile, which still finds the broadcast sending, does
    not undo it, and neither does one after the commit."""
    broadcast_id = await _sending_broadcast(world)
    halted: list[int] = []
    states = BroadcastStates(world.db, on_halt=halted.append)
    world.db.broadcast_signals.on_moved(states.moved)
    world.db.broadcast_signals.on_expected(states.expected)

    world.db.broadcast_signals.expect(broadcast_id, "paused")
    assert states.halted(broadcast_id) and halted == [broadcast_id]
    await states.reread([broadcast_id])  # not committed yet: the database says sending
    assert states.halted(broadcast_id)
    await broadcasts.pause_broadcast(world.db, actor=world.owner, broadcast_id=broadcast_id)
    await states.reread([broadcast_id])
    assert states.status(broadcast_id) == "paused"


async def test_a_pause_of_another_workspaces_broadcast_stops_nothing(world: World) -> None:
    broadcast_id = await _sending_broadcast(world)
    states = BroadcastStates(world.db)
    world.db.broadcast_signals.on_expected(states.expected)
    stranger = Actor(workspace_id=world.workspace_id + 1000, role=Role.OWNER, label="x")
    with pytest.raises(NotFound):
        await broadcasts.pause_broadcast(world.db, actor=stranger, broadcast_id=broadcast_id)
    assert not states.halted(broadcast_id)
